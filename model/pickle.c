// A restricted pickle VM: the opcodes that torch.save state dicts (and open_clip training
// checkpoints around them) use, protocols 2 to 5. It builds plain data only; every class or
// function a pickle names goes through the caller's hooks, which allow a fixed list and build
// those objects themselves. Nothing is imported or executed. Memory, stack, marks and memo are
// bounded by the input size, so hostile input ends in an error, not a crash.
#define GS_LOG_MODULE "model"
#include <inttypes.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/weights_int.h"

#define MAX_STACK (1u << 20) // objects on the stack
#define MAX_MARKS (1u << 16) // nested MARKs
#define MAX_MEMO (1u << 24)  // memo slots (also at most the input length)
#define CHUNK_NBYTES (64u << 10)

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    uint64_t data[]; // 8-aligned storage
} chunk_t;

struct gs__pk_vm {
    chunk_t *chunks;
    size_t total_nbytes, cap_nbytes; // memory handed out by chunks, and its bound
    gs__pk_t **stack;
    size_t n_stack, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    gs__pk_t **memo;
    size_t n_memo, cap_memo, max_memo;
    const gs__pk_hooks_t *hooks;
    const uint8_t *buf;
    size_t n, pos, op_pos;
};

// ---- memory -------------------------------------------------------------------------------

void *gs__pk_alloc(gs__pk_vm_t *vm, size_t n)
{
    if (n == 0 || n > vm->cap_nbytes)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    chunk_t *c = vm->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_NBYTES ? n : CHUNK_NBYTES;
        if (vm->total_nbytes + size > vm->cap_nbytes)
            return NULL;
        c = gs_trymalloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->used = 0;
        c->size = size;
        c->next = vm->chunks;
        vm->chunks = c;
        vm->total_nbytes += size;
    }
    void *p = (uint8_t *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

gs__pk_t *gs__pk_new(gs__pk_vm_t *vm, gs__pk_kind_t kind)
{
    gs__pk_t *o = gs__pk_alloc(vm, sizeof *o);
    if (o)
        o->kind = kind;
    return o;
}

gs_err gs__pk_append(gs__pk_vm_t *vm, gs__pk_t *seq, gs__pk_t *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t ncap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 4;
        gs__pk_t **items =
            ncap < SIZE_MAX / sizeof *items ? gs__pk_alloc(vm, ncap * sizeof *items) : NULL;
        if (!items)
            return GS_ETOOBIG;
        if (seq->u.seq.n)
            memcpy(items, seq->u.seq.items, seq->u.seq.n * sizeof *items);
        seq->u.seq.items = items; // the old array stays in its chunk until the VM goes
        seq->u.seq.cap = ncap;
    }
    seq->u.seq.items[seq->u.seq.n++] = item;
    return GS_OK;
}

const gs__pk_t *gs__pk_dict_get(const gs__pk_t *dict, const char *key)
{
    if (!dict || dict->kind != GS_PK_DICT)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i + 1 < dict->u.seq.n; i += 2) {
        const gs__pk_t *k = dict->u.seq.items[i];
        if (k->kind == GS_PK_STR && k->u.str.len == len && memcmp(k->u.str.s, key, len) == 0)
            return dict->u.seq.items[i + 1];
    }
    return NULL;
}

const char *gs__pk_kind_name(gs__pk_kind_t k)
{
    static const char *names[] = {"None",  "bool", "int",  "float",  "str",   "bytes",
                                  "tuple", "list", "dict", "global", "object"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void gs__pk_vm_destroy(gs__pk_vm_t **p)
{
    if (!p || !*p)
        return;
    gs__pk_vm_t *vm = *p;
    for (chunk_t *c = vm->chunks, *next; c; c = next) {
        next = c->next;
        gs_free(c);
    }
    gs_free(vm->stack);
    gs_free(vm->marks);
    gs_free(vm->memo);
    gs_free(vm);
    *p = NULL;
}

// ---- errors and operand reading -----------------------------------------------------------

static gs_err bad(gs__pk_vm_t *vm, const char *why)
{
    GS_LOG_ERROR("pickle %s is malformed at byte %zu (opcode 0x%02x): %s", vm->hooks->what,
                 vm->op_pos, vm->op_pos < vm->n ? vm->buf[vm->op_pos] : 0, why);
    return GS_EFORMAT;
}

static gs_err too_big(gs__pk_vm_t *vm, const char *what)
{
    GS_LOG_ERROR("pickle %s exceeds the %s bound at byte %zu", vm->hooks->what, what, vm->op_pos);
    return GS_ETOOBIG;
}

static int take(gs__pk_vm_t *vm, size_t k, const uint8_t **out)
{
    if (vm->n - vm->pos < k)
        return -1;
    *out = vm->buf + vm->pos;
    vm->pos += k;
    return 0;
}

static uint64_t le(const uint8_t *p, int k)
{
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

// ---- stack --------------------------------------------------------------------------------

static gs_err push(gs__pk_vm_t *vm, gs__pk_t *o)
{
    if (!o)
        return too_big(vm, "memory");
    if (vm->n_stack == vm->cap_stack) {
        if (vm->cap_stack >= MAX_STACK)
            return too_big(vm, "stack depth");
        size_t ncap = vm->cap_stack ? vm->cap_stack * 2 : 64;
        gs__pk_t **s = gs_tryrealloc(vm->stack, ncap * sizeof *s);
        if (!s)
            return GS_ENOMEM;
        vm->stack = s;
        vm->cap_stack = ncap;
    }
    vm->stack[vm->n_stack++] = o;
    return GS_OK;
}

// the first stack index above the innermost mark (the mark is stack-only, as in CPython)
static gs_err pop_mark(gs__pk_vm_t *vm, size_t *out_base)
{
    if (vm->n_marks == 0)
        return bad(vm, "no MARK on the stack");
    *out_base = vm->marks[--vm->n_marks];
    return GS_OK;
}

static size_t floor_of_stack(const gs__pk_vm_t *vm)
{
    return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

static gs_err pop(gs__pk_vm_t *vm, gs__pk_t **out)
{
    if (vm->n_stack <= floor_of_stack(vm))
        return bad(vm, "stack underflow");
    *out = vm->stack[--vm->n_stack];
    return GS_OK;
}

static gs_err top(gs__pk_vm_t *vm, gs__pk_t **out)
{
    if (vm->n_stack <= floor_of_stack(vm))
        return bad(vm, "stack underflow");
    *out = vm->stack[vm->n_stack - 1];
    return GS_OK;
}

// ---- opcodes ------------------------------------------------------------------------------

static gs__pk_t *new_str(gs__pk_vm_t *vm, gs__pk_kind_t kind, const uint8_t *s, size_t len)
{
    gs__pk_t *o = gs__pk_new(vm, kind);
    char *copy = len < vm->cap_nbytes ? gs__pk_alloc(vm, len + 1) : NULL;
    if (!o || !copy)
        return NULL;
    if (len)
        memcpy(copy, s, len);
    o->u.str.s = copy;
    o->u.str.len = len;
    return o;
}

static gs_err op_string(gs__pk_vm_t *vm, gs__pk_kind_t kind, int len_bytes)
{
    const uint8_t *p;
    if (take(vm, (size_t)len_bytes, &p) != 0)
        return bad(vm, "truncated length");
    uint64_t len = le(p, len_bytes);
    if (len > vm->n - vm->pos || take(vm, (size_t)len, &p) != 0)
        return bad(vm, "string runs past the end");
    return push(vm, new_str(vm, kind, p, (size_t)len));
}

static gs_err op_int(gs__pk_vm_t *vm, int k, int is_signed)
{
    const uint8_t *p;
    if (take(vm, (size_t)k, &p) != 0)
        return bad(vm, "truncated integer");
    uint64_t u = le(p, k);
    int64_t v = (int64_t)u;
    if (is_signed && k < 8 && (u >> (8 * k - 1)) & 1)
        v = (int64_t)(u | ~(uint64_t)0 << (8 * k));
    gs__pk_t *o = gs__pk_new(vm, GS_PK_INT);
    if (o)
        o->u.i = v;
    return push(vm, o);
}

// LONG1 / LONG4: little-endian two's complement of n bytes; more than 8 is refused
static gs_err op_long(gs__pk_vm_t *vm, int len_bytes)
{
    const uint8_t *p;
    if (take(vm, (size_t)len_bytes, &p) != 0)
        return bad(vm, "truncated length");
    uint64_t len = le(p, len_bytes);
    if (len > 8) {
        GS_LOG_ERROR("pickle %s holds an integer of %" PRIu64 " bytes at byte %zu; at most 8 "
                     "are supported",
                     vm->hooks->what, len, vm->op_pos);
        return GS_EUNSUPPORTED;
    }
    if (take(vm, (size_t)len, &p) != 0)
        return bad(vm, "truncated integer");
    gs__pk_t *o = gs__pk_new(vm, GS_PK_INT);
    if (o && len) {
        uint64_t u = le(p, (int)len);
        if (len < 8 && (u >> (8 * len - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * len);
        o->u.i = (int64_t)u;
    }
    return push(vm, o);
}

static gs_err op_float(gs__pk_vm_t *vm)
{
    const uint8_t *p;
    if (take(vm, 8, &p) != 0)
        return bad(vm, "truncated float");
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) // big-endian
        u = u << 8 | p[i];
    gs__pk_t *o = gs__pk_new(vm, GS_PK_FLOAT);
    if (o)
        memcpy(&o->u.f, &u, sizeof u);
    return push(vm, o);
}

// op_seq_from: a tuple/list/dict of the items above index `base`, which are popped
static gs_err op_seq_from(gs__pk_vm_t *vm, gs__pk_kind_t kind, size_t base)
{
    size_t k = vm->n_stack - base;
    if (kind == GS_PK_DICT && (k & 1))
        return bad(vm, "odd number of items for a dict");
    gs__pk_t *o = gs__pk_new(vm, kind);
    if (!o)
        return too_big(vm, "memory");
    if (k) {
        o->u.seq.items = gs__pk_alloc(vm, k * sizeof(gs__pk_t *));
        if (!o->u.seq.items)
            return too_big(vm, "memory");
        memcpy(o->u.seq.items, vm->stack + base, k * sizeof(gs__pk_t *));
        o->u.seq.n = o->u.seq.cap = k;
    }
    vm->n_stack = base;
    return push(vm, o);
}

static gs_err op_tuple_n(gs__pk_vm_t *vm, size_t k)
{
    if (vm->n_stack - floor_of_stack(vm) < k)
        return bad(vm, "stack underflow");
    return op_seq_from(vm, GS_PK_TUPLE, vm->n_stack - k);
}

static gs_err op_mark(gs__pk_vm_t *vm)
{
    if (vm->n_marks == vm->cap_marks) {
        if (vm->cap_marks >= MAX_MARKS)
            return too_big(vm, "mark depth");
        size_t ncap = vm->cap_marks ? vm->cap_marks * 2 : 16;
        size_t *m = gs_tryrealloc(vm->marks, ncap * sizeof *m);
        if (!m)
            return GS_ENOMEM;
        vm->marks = m;
        vm->cap_marks = ncap;
    }
    vm->marks[vm->n_marks++] = vm->n_stack;
    return GS_OK;
}

// APPEND(S) / SETITEM(S) / ADDITEMS: items above `base` go into the object just below it
static gs_err op_extend(gs__pk_vm_t *vm, size_t base, gs__pk_kind_t want)
{
    if (base == 0 || base - 1 < floor_of_stack(vm))
        return bad(vm, "no target object below the items");
    gs__pk_t *target = vm->stack[base - 1];
    if (target->kind != want)
        return bad(vm, want == GS_PK_DICT ? "SETITEM(S) target is not a dict"
                                          : "APPEND(S) target is not a list");
    if (want == GS_PK_DICT && ((vm->n_stack - base) & 1))
        return bad(vm, "odd number of items for a dict");
    for (size_t i = base; i < vm->n_stack; i++)
        if (gs__pk_append(vm, target, vm->stack[i]) != GS_OK)
            return too_big(vm, "memory");
    vm->n_stack = base;
    return GS_OK;
}

static gs_err op_global(gs__pk_vm_t *vm, const char *module, size_t mlen, const char *name,
                        size_t nlen)
{
    gs__pk_t *o = gs__pk_new(vm, GS_PK_GLOBAL);
    gs__pk_t *m = new_str(vm, GS_PK_STR, (const uint8_t *)module, mlen);
    gs__pk_t *nm = new_str(vm, GS_PK_STR, (const uint8_t *)name, nlen);
    if (!o || !m || !nm)
        return too_big(vm, "memory");
    int id = -1;
    if (strlen(m->u.str.s) == mlen && strlen(nm->u.str.s) == nlen)
        id = vm->hooks->find_class(vm->hooks->ud, m->u.str.s, nm->u.str.s);
    if (id < 0) {
        GS_LOG_ERROR("pickle %s refers to \"%.100s.%.100s\", which is not a state dict type "
                     "(only tensors, storages and dicts are read; nothing is executed)",
                     vm->hooks->what, m->u.str.s, nm->u.str.s);
        return GS_EUNSUPPORTED;
    }
    o->u.global.id = id;
    o->u.global.module = m->u.str.s;
    o->u.global.name = nm->u.str.s;
    return push(vm, o);
}

// GLOBAL: "module\nname\n"
static gs_err op_global_text(gs__pk_vm_t *vm)
{
    const uint8_t *start = vm->buf + vm->pos, *end = vm->buf + vm->n;
    const uint8_t *nl1 = memchr(start, '\n', (size_t)(end - start));
    const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (!nl2)
        return bad(vm, "GLOBAL without two lines");
    vm->pos = (size_t)(nl2 + 1 - vm->buf);
    return op_global(vm, (const char *)start, (size_t)(nl1 - start), (const char *)nl1 + 1,
                     (size_t)(nl2 - nl1 - 1));
}

static gs_err op_stack_global(gs__pk_vm_t *vm)
{
    gs__pk_t *name, *module;
    GS_TRY(pop(vm, &name));
    GS_TRY(pop(vm, &module));
    if (name->kind != GS_PK_STR || module->kind != GS_PK_STR)
        return bad(vm, "STACK_GLOBAL needs two strings");
    return op_global(vm, module->u.str.s, module->u.str.len, name->u.str.s, name->u.str.len);
}

static gs_err op_reduce(gs__pk_vm_t *vm)
{
    gs__pk_t *args, *fn, *res = NULL;
    GS_TRY(pop(vm, &args));
    GS_TRY(pop(vm, &fn));
    if (fn->kind != GS_PK_GLOBAL || args->kind != GS_PK_TUPLE)
        return bad(vm, "REDUCE needs a global and an argument tuple");
    GS_TRY(vm->hooks->reduce(vm->hooks->ud, vm, fn->u.global.id, args, &res));
    return push(vm, res);
}

static gs_err op_persid(gs__pk_vm_t *vm)
{
    gs__pk_t *pid, *res = NULL;
    GS_TRY(pop(vm, &pid));
    GS_TRY(vm->hooks->persistent_load(vm->hooks->ud, vm, pid, &res));
    return push(vm, res);
}

static gs_err op_put(gs__pk_vm_t *vm, int k)
{
    const uint8_t *p;
    uint64_t idx = vm->n_memo;
    if (k > 0) {
        if (take(vm, (size_t)k, &p) != 0)
            return bad(vm, "truncated memo index");
        idx = le(p, k);
    }
    gs__pk_t *o;
    GS_TRY(top(vm, &o));
    if (idx >= vm->max_memo)
        return too_big(vm, "memo size");
    if (idx >= vm->cap_memo) {
        size_t ncap = vm->cap_memo ? vm->cap_memo * 2 : 256;
        while (ncap <= idx)
            ncap *= 2;
        gs__pk_t **m = gs_tryrealloc(vm->memo, ncap * sizeof *m);
        if (!m)
            return GS_ENOMEM;
        memset(m + vm->cap_memo, 0, (ncap - vm->cap_memo) * sizeof *m);
        vm->memo = m;
        vm->cap_memo = ncap;
    }
    if (idx >= vm->n_memo)
        vm->n_memo = (size_t)idx + 1;
    vm->memo[idx] = o;
    return GS_OK;
}

static gs_err op_get(gs__pk_vm_t *vm, int k)
{
    const uint8_t *p;
    if (take(vm, (size_t)k, &p) != 0)
        return bad(vm, "truncated memo index");
    uint64_t idx = le(p, k);
    if (idx >= vm->n_memo || !vm->memo[idx])
        return bad(vm, "memo index not set");
    return push(vm, vm->memo[idx]);
}

// ---- the loop -----------------------------------------------------------------------------

// step: runs the opcode at vm->pos; *out_done when STOP left the result in *out_root
static gs_err step(gs__pk_vm_t *vm, gs__pk_t **out_root, int *out_done)
{
    const uint8_t *p;
    size_t base;
    gs__pk_t *a, *b;
    vm->op_pos = vm->pos;
    uint8_t op = vm->buf[vm->pos++];
    switch (op) {
    case 0x80: // PROTO
        if (take(vm, 1, &p) != 0 || p[0] < 2 || p[0] > 5)
            return bad(vm, "protocol must be 2 to 5");
        return GS_OK;
    case 0x95: // FRAME: a length hint, the framed opcodes follow inline
        return take(vm, 8, &p) == 0 ? GS_OK : bad(vm, "truncated FRAME");
    case '.': // STOP
        GS_TRY(pop(vm, out_root));
        *out_done = 1;
        return GS_OK;
    case '(': return op_mark(vm);
    case '0': return pop(vm, &a);
    case '1': // POP_MARK
        GS_TRY(pop_mark(vm, &base));
        vm->n_stack = base;
        return GS_OK;
    case '2': GS_TRY(top(vm, &a)); return push(vm, a);
    case 'N': return push(vm, gs__pk_new(vm, GS_PK_NONE));
    case 0x88: // NEWTRUE
    case 0x89: // NEWFALSE
        a = gs__pk_new(vm, GS_PK_BOOL);
        if (a)
            a->u.i = op == 0x88;
        return push(vm, a);
    case 'J': return op_int(vm, 4, 1);                      // BININT
    case 'K': return op_int(vm, 1, 0);                      // BININT1
    case 'M': return op_int(vm, 2, 0);                      // BININT2
    case 0x8a: return op_long(vm, 1);                       // LONG1
    case 0x8b: return op_long(vm, 4);                       // LONG4
    case 'G': return op_float(vm);                          // BINFLOAT
    case 'X': return op_string(vm, GS_PK_STR, 4);           // BINUNICODE
    case 0x8c: return op_string(vm, GS_PK_STR, 1);          // SHORT_BINUNICODE
    case 0x8d: return op_string(vm, GS_PK_STR, 8);          // BINUNICODE8
    case 'T': return op_string(vm, GS_PK_STR, 4);           // BINSTRING
    case 'U': return op_string(vm, GS_PK_STR, 1);           // SHORT_BINSTRING
    case 'B': return op_string(vm, GS_PK_BYTES, 4);         // BINBYTES
    case 'C': return op_string(vm, GS_PK_BYTES, 1);         // SHORT_BINBYTES
    case 0x8e: return op_string(vm, GS_PK_BYTES, 8);        // BINBYTES8
    case ')': return push(vm, gs__pk_new(vm, GS_PK_TUPLE)); // EMPTY_TUPLE
    case 't': GS_TRY(pop_mark(vm, &base)); return op_seq_from(vm, GS_PK_TUPLE, base);
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case ']': return push(vm, gs__pk_new(vm, GS_PK_LIST));  // EMPTY_LIST
    case 0x8f: return push(vm, gs__pk_new(vm, GS_PK_LIST)); // EMPTY_SET
    case 'l': GS_TRY(pop_mark(vm, &base)); return op_seq_from(vm, GS_PK_LIST, base);
    case 0x91: GS_TRY(pop_mark(vm, &base)); return op_seq_from(vm, GS_PK_LIST, base);
    case '}': return push(vm, gs__pk_new(vm, GS_PK_DICT)); // EMPTY_DICT
    case 'd': GS_TRY(pop_mark(vm, &base)); return op_seq_from(vm, GS_PK_DICT, base);
    case 'a': // APPEND
        if (vm->n_stack - floor_of_stack(vm) < 2)
            return bad(vm, "stack underflow");
        return op_extend(vm, vm->n_stack - 1, GS_PK_LIST);
    case 'e':  // APPENDS
    case 0x90: // ADDITEMS
        GS_TRY(pop_mark(vm, &base));
        return op_extend(vm, base, GS_PK_LIST);
    case 's': // SETITEM
        if (vm->n_stack - floor_of_stack(vm) < 3)
            return bad(vm, "stack underflow");
        return op_extend(vm, vm->n_stack - 2, GS_PK_DICT);
    case 'u': // SETITEMS
        GS_TRY(pop_mark(vm, &base));
        return op_extend(vm, base, GS_PK_DICT);
    case 'c': return op_global_text(vm);
    case 0x93: return op_stack_global(vm);
    case 'R': return op_reduce(vm);
    case 0x81: return op_reduce(vm); // NEWOBJ: cls.__new__(cls, *args), the same hook
    case 'b': // BUILD: the state (OrderedDict._metadata of a state dict) is dropped
        GS_TRY(pop(vm, &a));
        return top(vm, &b);
    case 'Q': return op_persid(vm);
    case 'q': return op_put(vm, 1);  // BINPUT
    case 'r': return op_put(vm, 4);  // LONG_BINPUT
    case 0x94: return op_put(vm, 0); // MEMOIZE
    case 'h': return op_get(vm, 1);  // BINGET
    case 'j': return op_get(vm, 4);  // LONG_BINGET
    default:
        GS_LOG_ERROR("pickle %s uses opcode 0x%02x at byte %zu, which is not supported",
                     vm->hooks->what, op, vm->op_pos);
        return GS_EUNSUPPORTED;
    }
}

gs_err gs__pk_run(const uint8_t *buf, size_t n, const gs__pk_hooks_t *hooks, gs__pk_vm_t **out_vm,
                  gs__pk_t **out_root)
{
    *out_vm = NULL;
    *out_root = NULL;
    gs__pk_vm_t *vm = gs_trycalloc(1, sizeof *vm);
    if (!vm)
        return GS_ENOMEM;
    vm->hooks = hooks;
    vm->buf = buf;
    vm->n = n;
    vm->max_memo = n < MAX_MEMO ? n : MAX_MEMO;
    // a sane pickle needs a few dozen bytes of objects per input byte; the bound leaves room
    size_t per_byte = 128, base = 64u << 20;
    vm->cap_nbytes = n > (SIZE_MAX - base) / per_byte ? SIZE_MAX : base + n * per_byte;
    gs__pk_t *root = NULL;
    int done = 0;
    gs_err e = GS_OK;
    while (e == GS_OK && !done && vm->pos < n)
        e = step(vm, &root, &done);
    if (e == GS_OK && !done)
        e = bad(vm, "no STOP before the end");
    if (e != GS_OK) {
        gs__pk_vm_destroy(&vm);
        return e;
    }
    *out_vm = vm;
    *out_root = root;
    return GS_OK;
}
