// bench_gemm: one float32 GEMM at the encoder's shapes, OpenBLAS's cblas_sgemm (weights stored
// [out, in], as in the checkpoints) against oneDNN's matmul on weights packed once into the
// layout its brgemm kernel picks, same inputs, GFLOP/s of each over about 1 s, and the largest
// difference between the two outputs. Run by hand (never by the test suite):
//
//   cc -O2 bench/encoder/bench_gemm.c -o /tmp/bench_gemm -ldnnl -lopenblas -lgomp
//   /tmp/bench_gemm 1; /tmp/bench_gemm 2        # thread count of both libraries
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void omp_set_num_threads(int n);
void openblas_set_num_threads(int n);

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "bench_gemm: %s failed (%d)\n", #call, (int)st_);                      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    // rows = 8 images x 50 tokens (ViT-B/32, a shard of 8) or 1 image; in/out of qkv, out, fc, proj
    static const int shapes[][3] = {{400, 768, 2304}, {400, 768, 768}, {400, 768, 3072},
                                    {400, 3072, 768}, {50, 768, 2304}, {50, 3072, 768}};
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * K * N);
        float *c_blas = malloc(sizeof(float) * M * N), *c_dnnl = malloc(sizeof(float) * M * N);
        srand(1);
        for (long i = 0; i < (long)M * K; i++)
            a[i] = (float)(rand() % 1000) / 1000.0f - 0.5f;
        for (long i = 0; i < (long)K * N; i++)
            w[i] = (float)(rand() % 1000) / 1000.0f - 0.5f;
        double flops = 2.0 * M * K * N, t0 = now_s();
        int reps = 0;
        while (now_s() - t0 < 1.0 || reps < 3) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, w, K, 0.0f,
                        c_blas, N);
            reps++;
        }
        double t_blas = (now_s() - t0) / reps;

        dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N};
        dnnl_memory_desc_t smd, wmd, dmd, umd;
        CHECK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_ab));
        CHECK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab));
        CHECK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&umd, 2, wd, dnnl_f32, dnnl_ba)); // [out, in] storage
        dnnl_matmul_desc_t md;
        dnnl_primitive_desc_t pd, rpd;
        CHECK(dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd));
        CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
        const char *impl = "?";
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_memory_t user, packed, src, dst;
        CHECK(dnnl_memory_create(&user, &umd, eng, w));
        CHECK(dnnl_memory_create(&packed, pmd, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, &umd, eng, pmd, eng, NULL));
        dnnl_primitive_t reorder, mm;
        CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, packed}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, rargs));
        CHECK(dnnl_stream_wait(stream));
        CHECK(dnnl_memory_create(&src, &smd, eng, a));
        CHECK(dnnl_memory_create(&dst, &dmd, eng, c_dnnl));
        CHECK(dnnl_primitive_create(&mm, pd));
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}};
        reps = 0;
        t0 = now_s();
        while (now_s() - t0 < 1.0 || reps < 3) {
            CHECK(dnnl_primitive_execute(mm, stream, 3, args));
            CHECK(dnnl_stream_wait(stream));
            reps++;
        }
        double t_dnnl = (now_s() - t0) / reps, max_diff = 0;
        for (long i = 0; i < (long)M * N; i++) {
            double d = c_blas[i] > c_dnnl[i] ? c_blas[i] - c_dnnl[i] : c_dnnl[i] - c_blas[i];
            max_diff = d > max_diff ? d : max_diff;
        }
        printf("{\"threads\":%d,\"rows\":%d,\"in\":%d,\"out\":%d,\"openblas_gflops\":%.1f,"
               "\"onednn_gflops\":%.1f,\"speedup\":%.3f,\"max_abs_diff\":%.2g,\"kernel\":\"%s\"}\n",
               threads, M, K, N, flops / t_blas * 1e-9, flops / t_dnnl * 1e-9, t_blas / t_dnnl,
               max_diff, impl);
        dnnl_primitive_destroy(mm);
        dnnl_primitive_destroy(reorder);
        dnnl_primitive_desc_destroy(rpd);
        dnnl_primitive_desc_destroy(pd);
        dnnl_memory_destroy(user);
        dnnl_memory_destroy(packed);
        dnnl_memory_destroy(src);
        dnnl_memory_destroy(dst);
        free(a);
        free(w);
        free(c_blas);
        free(c_dnnl);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
