// Helpers shared by the test suites (header-only, test code only).
#pragma once

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The ../shared folder (fixtures, real data); NULL when absent (tests then skip with a message).
static inline const char *gs_test_shared(void)
{
    struct stat st;
    return stat(GS_SHARED_DIR, &st) == 0 ? GS_SHARED_DIR : NULL;
}

// GS_NEED_SHARED: skip (return from) the current test when ../shared is absent.
#define GS_NEED_SHARED()                                                                  \
    do {                                                                                  \
        if (!gs_test_shared()) {                                                          \
            fprintf(stderr, "SKIP %s: ../shared is absent (fixtures and data live there)\n", \
                    __func__);                                                            \
            return;                                                                       \
        }                                                                                 \
    } while (0)

// GS_TEST_MPI_ENV: the environment prefix of a shell command that runs geoscribe under mpirun
// in a test: MPI as root on one machine (README), and the ASan settings of tests/mpi_ping.sh.
// One-process runs do not initialise MPI (cli/cmd_ingest.c), so they need none of it.
#define GS_TEST_MPI_ENV                                                                            \
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "                                   \
    "OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mca_base_component_disable_dlclose=1 "           \
    "PMIX_MCA_mca_base_component_disable_dlclose=1 "                                               \
    "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0\" OMP_WAIT_POLICY=PASSIVE "

// gs_test_tmpdir: a fresh empty directory under the build tree for this test; static storage.
static inline const char *gs_test_tmpdir(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s.%ld", GS_TEST_TMP, name, (long)getpid());
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0)
        return NULL;
    return path;
}

// gs_test_check_close: compares float arrays with |got-want| <= atol + rtol*|want|; prints the
// first mismatches and the maximum difference; returns the number of mismatches.
static inline size_t gs_test_check_close(const char *what, const float *got, const float *want,
                                         size_t n, double atol, double rtol)
{
    size_t bad = 0;
    double maxdiff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        if (d < 0)
            d = -d;
        if (d > maxdiff || d != d)
            maxdiff = d;
        double lim = atol + rtol * (want[i] < 0 ? -want[i] : want[i]);
        if (!(d <= lim)) {
            if (bad < 5)
                fprintf(stderr, "%s[%zu]: got %.9g want %.9g (diff %.3g)\n", what, i, got[i],
                        want[i], d);
            bad++;
        }
    }
    if (bad)
        fprintf(stderr, "%s: %zu of %zu mismatches, max diff %.3g\n", what, bad, n, maxdiff);
    return bad;
}
