// A small persistent thread pool for the CLIP encoders: a batch is split into shards, one per
// thread, each running the whole forward pass on its share with single-threaded BLAS. Threads
// are created at model open and joined at close, so an encode call creates nothing.
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/alloc.h"
#include "model/clip_model_int.h"

typedef struct {
    gs__clip_pool_t *pool;
    int index; // 1..n_workers (the caller is 0)
} worker_arg_t;

struct gs__clip_pool {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    pthread_t *threads;
    worker_arg_t *args;
    int n_workers, n_started;
    uint64_t generation; // bumped for each run
    int n_active;        // shards of the current run (workers with index < n_active work)
    int pending;         // worker shards not finished yet
    bool stop;
    void (*fn)(void *arg, int i);
    void *fn_arg;
};

static void *worker_main(void *p)
{
    worker_arg_t *wa = p;
    gs__clip_pool_t *self = wa->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stop && self->generation == seen)
            pthread_cond_wait(&self->start, &self->mu);
        if (self->stop)
            break;
        seen = self->generation;
        if (wa->index >= self->n_active)
            continue;
        void (*fn)(void *, int) = self->fn;
        void *arg = self->fn_arg;
        pthread_mutex_unlock(&self->mu);
        fn(arg, wa->index);
        pthread_mutex_lock(&self->mu);
        if (--self->pending == 0)
            pthread_cond_signal(&self->done);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

gs_err gs__clip_pool_new(int n_workers, gs__clip_pool_t **out)
{
    gs__clip_pool_t *self = gs_xcalloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->start, NULL);
    pthread_cond_init(&self->done, NULL);
    self->threads = gs_xcalloc((size_t)n_workers, sizeof *self->threads);
    self->args = gs_xcalloc((size_t)n_workers, sizeof *self->args);
    self->n_workers = n_workers;
    for (int i = 0; i < n_workers; i++) {
        self->args[i] = (worker_arg_t){self, i + 1};
        if (pthread_create(&self->threads[i], NULL, worker_main, &self->args[i]) != 0) {
            gs__clip_pool_destroy(&self);
            return GS_ENOMEM;
        }
        self->n_started++;
    }
    *out = self;
    return GS_OK;
}

void gs__clip_pool_destroy(gs__clip_pool_t **p)
{
    if (!p || !*p)
        return;
    gs__clip_pool_t *self = *p;
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_broadcast(&self->start);
    pthread_mutex_unlock(&self->mu);
    for (int i = 0; i < self->n_started; i++)
        pthread_join(self->threads[i], NULL);
    pthread_cond_destroy(&self->start);
    pthread_cond_destroy(&self->done);
    pthread_mutex_destroy(&self->mu);
    gs_free(self->threads);
    gs_free(self->args);
    gs_free(self);
    *p = NULL;
}

void gs__clip_pool_run(gs__clip_pool_t *self, int n, void (*fn)(void *arg, int i), void *arg)
{
    if (!self || n <= 1) {
        for (int i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    if (n > self->n_workers + 1)
        n = self->n_workers + 1;
    pthread_mutex_lock(&self->mu);
    self->fn = fn;
    self->fn_arg = arg;
    self->n_active = n;
    self->pending = n - 1;
    self->generation++;
    pthread_cond_broadcast(&self->start);
    pthread_mutex_unlock(&self->mu);
    fn(arg, 0);
    pthread_mutex_lock(&self->mu);
    while (self->pending > 0)
        pthread_cond_wait(&self->done, &self->mu);
    pthread_mutex_unlock(&self->mu);
}
