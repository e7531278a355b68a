/* C harness for riffd's int8 matvecs (daemon/native/int8_matvec.c: 16-bit activations, int8, and
   8-bit ones, int8a8): GB/s of each kernel over
   musicgen-small's decoder matrices (24 layers of qkv, out, cross q, cross out, fc1, fc2, and the lm
   heads: 344 MB of int8, far past any cache), against a plain read of the same packed buffers split
   the same way across the same threads. Built by bench/native_int8.py with the library's own flags
   and sources; timed in C, so no Python call sits between two matrices.

   usage: native_int8_harness REPEATS ROWS... (1 to MAX_ROWS); prints one JSON object per line (RIFFD_KERNELS=int8,int8a8
   picks the kernels; default both) */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "riffd_native.h"

const char *riffd_isa(void);

typedef struct {
    int8_t *packed;
    int32_t *row_sums;
    float *scales;
    int64_t rows, cols;
} matrix;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of this process (all threads): time spent descheduled on a shared machine does not count,
   so the kernel's compute cost shows even when the wall clock is noisy. */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static matrix make(int64_t rows, int64_t cols, unsigned seed) {
    matrix m = {aligned_alloc(64, (size_t)(rows * cols)), aligned_alloc(64, (size_t)rows * 4),
                aligned_alloc(64, (size_t)rows * 4), rows, cols};
    srand(seed);
    for (int64_t i = 0; i < rows * cols; i++) m.packed[i] = (int8_t)(rand() % 255 - 127);
    for (int64_t r = 0; r < rows; r++) m.row_sums[r] = 0, m.scales[r] = 1e-3f;
    return m; /* the codes' order does not matter for speed; row sums only shift the result */
}

typedef struct {
    const int8_t *base;
    int64_t block;
    int prefetch;
    _Atomic long long check;
} read_job;

/* Blocks [begin, end) of one matrix read with vector loads, on one thread. */
static void read_blocks(void *ctx, int64_t begin, int64_t end) {
    read_job *job = ctx;
    long long check = 0;
    for (int64_t b = begin; b < end; b++) {
        const int8_t *p = job->base + b * job->block;
        vi acc0 = vi_zero(), acc1 = vi_zero();
        for (int64_t j = 0; j < job->block; j += 2 * (int64_t)sizeof(vi)) {
            if (job->prefetch && j % 128 == 0) {
                __builtin_prefetch(p + j + 4096, 0, 2);
                __builtin_prefetch(p + j + 4096 + 64, 0, 2);
                __builtin_prefetch(p + j + 512, 0, 3);
                __builtin_prefetch(p + j + 512 + 64, 0, 3);
            }
            acc0 = vi_add(acc0, vi_load(p + j));
            acc1 = vi_add(acc1, vi_load(p + j + sizeof(vi)));
        }
        int32_t lanes[VL];
        memcpy(lanes, &acc0, sizeof lanes);
        check += lanes[0] + lanes[VL - 1];
        memcpy(lanes, &acc1, sizeof lanes);
        check += lanes[1];
    }
    atomic_fetch_add(&job->check, check);
}

/* Every byte of the packed matrices, vector loads split by the kernel's 32-row blocks across the
   same threads (the same pool); `prefetch` with the kernel's software prefetch distances. */
static long long plain_read(const matrix *ms, int count, int threads, int prefetch) {
    long long check = 0;
    for (int i = 0; i < count; i++) {
        read_job job = {ms[i].packed, 32 * ms[i].cols, prefetch, 0};
        riffd_parallel(ms[i].rows / 32, 0, threads, read_blocks, &job);
        check += atomic_load(&job.check);
    }
    return check;
}

typedef void (*matvec_fn)(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                          const float *scale, float *y, int64_t n, int threads);

static void sweep(matvec_fn kernel, const matrix *ms, int count, int rows, const float *x, float *y, int threads) {
    for (int i = 0; i < count; i++)
        kernel(x, rows, ms[i].cols, ms[i].packed, ms[i].row_sums, ms[i].scales, y, ms[i].rows, threads);
}

#define MAX_ROWS 4096

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPEATS ROWS...\n", argv[0]);
        return 2;
    }
    const char *wanted = getenv("RIFFD_THREADS");
    int repeats = atoi(argv[1]), threads = wanted ? atoi(wanted) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    enum { LAYERS = 24, HIDDEN = 1024, FFN = 4096, HEADS_OUT = 8192 };
    static matrix ms[LAYERS * 6 + 1];
    int count = 0;
    double bytes = 0;
    for (int l = 0; l < LAYERS; l++) {
        int64_t shapes[6][2] = {{3 * HIDDEN, HIDDEN}, {HIDDEN, HIDDEN}, {HIDDEN, HIDDEN},
                                {HIDDEN, HIDDEN},     {FFN, HIDDEN},    {HIDDEN, FFN}};
        for (int s = 0; s < 6; s++) ms[count] = make(shapes[s][0], shapes[s][1], (unsigned)count), count++;
    }
    ms[count] = make(HEADS_OUT, HIDDEN, 999), count++;
    for (int i = 0; i < count; i++) bytes += (double)(ms[i].rows * ms[i].cols);

    int max_rows = 16; /* a decode step's few rows, or a prefill's hundreds (a long-form window's 1202) */
    for (int a = 2; a < argc; a++)
        if (atoi(argv[a]) > max_rows) max_rows = atoi(argv[a]);
    float *x = malloc(sizeof(float) * (size_t)max_rows * FFN), *y = malloc(sizeof(float) * (size_t)max_rows * HEADS_OUT);
    for (int64_t i = 0; i < (int64_t)max_rows * FFN; i++) x[i] = (float)((i * 37) % 101 - 50) * 0.01f;

    /* Interleaved: every repeat reads the buffers plainly and runs every row count once, so a busy
       moment on a shared machine hits all of them alike; the best of the repeats is kept for each. */
    const char *kernels = getenv("RIFFD_KERNELS") ? getenv("RIFFD_KERNELS") : "int8,int8a8";
    static const struct { const char *name; matvec_fn fn; } known[] = {{"int8", riffd_int8_matvec},
                                                                       {"int8a8", riffd_int8a8_matvec}};
    int counts[32], which[32], configs = 0;
    for (int a = 2; a < argc; a++) {
        int rows = atoi(argv[a]);
        for (int kind = 0; kind < 2; kind++) {
            char comma_name[16];
            snprintf(comma_name, sizeof comma_name, ",%s,", known[kind].name);
            char padded[64];
            snprintf(padded, sizeof padded, ",%s,", kernels);
            if (rows >= 1 && rows <= MAX_ROWS && configs < 32 && strstr(padded, comma_name))
                counts[configs] = rows, which[configs++] = kind;
        }
    }
    double read_s = 1e9, read_prefetch_s = 1e9, best[32], best_cpu[32];
    for (int c = 0; c < configs; c++) best[c] = best_cpu[c] = 1e9;
    long long check = 0;
    for (int r = 0; r < repeats + 1; r++) { /* the first round warms up */
        double t0 = now_s();
        check += plain_read(ms, count, threads, 0);
        double t1 = now_s();
        check += plain_read(ms, count, threads, 1);
        double t2 = now_s();
        if (r && t1 - t0 < read_s) read_s = t1 - t0;
        if (r && t2 - t1 < read_prefetch_s) read_prefetch_s = t2 - t1;
        for (int c = 0; c < configs; c++) {
            double start = now_s(), start_cpu = cpu_s();
            sweep(known[which[c]].fn, ms, count, counts[c], x, y, threads);
            double took = now_s() - start, took_cpu = cpu_s() - start_cpu;
            if (r && took < best[c]) best[c] = took;
            if (r && took_cpu < best_cpu[c]) best_cpu[c] = took_cpu;
        }
    }
    double floor_s = read_s < read_prefetch_s ? read_s : read_prefetch_s;
    printf("{\"isa\": \"%s\", \"threads\": %d, \"mb\": %.1f, \"read_gb_s\": %.2f, \"read_prefetch_gb_s\": %.2f, "
           "\"check\": %lld}\n", riffd_isa(), threads, bytes / 1e6, bytes / read_s / 1e9, bytes / read_prefetch_s / 1e9,
           check % 7);
    for (int c = 0; c < configs; c++)
        printf("{\"isa\": \"%s\", \"kernel\": \"%s\", \"rows\": %d, \"kernel_ms\": %.2f, \"kernel_cpu_ms\": %.2f, "
               "\"kernel_gb_s\": %.2f, \"share_of_read\": %.3f}\n", riffd_isa(), known[which[c]].name, counts[c], best[c] * 1e3,
               best_cpu[c] * 1e3, bytes / best[c] / 1e9, floor_s / best[c]);
    return 0;
}
