/* float32 weights times a handful of activation rows: y[m][n] = sum_k x[m][k] * w[n][k].

   For speculative decoding's checking pass (speculative.py): the float32 model scores a few
   drafted columns at once, 4 to 12 rows, reading its 1.4 GB of weights once. MKL's sgemm is
   near memory bandwidth at 2 rows but falls to a third of it at 4 to 10, so this kernel keeps
   the weight stream going instead: the checkpoint's own row-major tensors (no copy), two weight
   rows at a time against every activation row, a vector of inputs per instruction, prefetching ahead. */

#include <stdint.h>

#include "riffd_native.h"

#ifdef RIFFD_KERNELS

/* Activation rows per pass: 2 weight rows x 12 accumulators stay in AVX-512's 32 registers (AVX2
   has 16: it spills some at the top of the range, still one read of the weights). */
#define F32_MAX_ROWS 12
#define F32_PREFETCH_L2_BYTES 4096
#define F32_PREFETCH_L1_BYTES 512

static inline __attribute__((always_inline)) void two_rows(const float *x, const int rows, int64_t k, const float *w,
                                                           float *y, int64_t n, int64_t r) {
    vf acc0[F32_MAX_ROWS], acc1[F32_MAX_ROWS];
    for (int m = 0; m < F32_MAX_ROWS; m++) acc0[m] = acc1[m] = vf_zero();
    const float *w0 = w + r * k, *w1 = w0 + k;
    for (int64_t j = 0; j < k; j += VL) {
        __builtin_prefetch((const char *)(w0 + j) + F32_PREFETCH_L2_BYTES, 0, 2);
        __builtin_prefetch((const char *)(w1 + j) + F32_PREFETCH_L2_BYTES, 0, 2);
        __builtin_prefetch((const char *)(w0 + j) + F32_PREFETCH_L1_BYTES, 0, 3);
        __builtin_prefetch((const char *)(w1 + j) + F32_PREFETCH_L1_BYTES, 0, 3);
        vf a = vf_load(w0 + j), b = vf_load(w1 + j);
        for (int m = 0; m < rows; m++) {
            vf xv = vf_load(x + m * k + j);
            acc0[m] = vf_fmadd(a, xv, acc0[m]);
            acc1[m] = vf_fmadd(b, xv, acc1[m]);
        }
    }
    for (int m = 0; m < rows; m++) {
        y[m * n + r] = vf_sum(acc0[m]);
        y[m * n + r + 1] = vf_sum(acc1[m]);
    }
}

#define TWO_ROWS_CASE(R) case R: two_rows(xs, R, k, w, ys, n, 2 * i); break;

int riffd_f32_max_rows(void) { return F32_MAX_ROWS; }

typedef struct {
    const float *x;
    int rows;
    int64_t k;
    const float *w;
    float *y;
    int64_t n;
} pairs_job;

/* Weight row pairs [begin, end) against up to F32_MAX_ROWS activation rows, on one thread. */
static void pairs(void *ctx, int64_t begin, int64_t end) {
    const pairs_job *j = ctx;
    const float *xs = j->x, *w = j->w;
    float *ys = j->y;
    const int64_t k = j->k, n = j->n;
    for (int64_t i = begin; i < end; i++) {
        switch (j->rows) {
            TWO_ROWS_CASE(1) TWO_ROWS_CASE(2) TWO_ROWS_CASE(3) TWO_ROWS_CASE(4) TWO_ROWS_CASE(5) TWO_ROWS_CASE(6)
            TWO_ROWS_CASE(7) TWO_ROWS_CASE(8) TWO_ROWS_CASE(9) TWO_ROWS_CASE(10) TWO_ROWS_CASE(11)
            default: two_rows(xs, F32_MAX_ROWS, k, w, ys, n, 2 * i); break;
        }
    }
}

/* x [m][k], w [n][k] (row-major, as a checkpoint holds it), y [m][n]; k % 16 == 0, n % 2 == 0. */
void riffd_f32_matmul(const float *x, int64_t m, int64_t k, const float *w, float *y, int64_t n, int threads) {
    for (int64_t m0 = 0; m0 < m; m0 += F32_MAX_ROWS) {
        int rows = (int)((m - m0) < F32_MAX_ROWS ? (m - m0) : F32_MAX_ROWS);
        const float *xs = x + m0 * k;
        float *ys = y + m0 * n;
        pairs_job job = {xs, rows, k, w, ys, n};
        riffd_parallel(n / 2, 0, threads, pairs, &job);
    }
}
#else
int riffd_f32_max_rows(void) { return 0; }
void riffd_f32_matmul(const float *x, int64_t m, int64_t k, const float *w, float *y, int64_t n, int threads) {
    (void)x; (void)m; (void)k; (void)w; (void)y; (void)n; (void)threads;
}
#endif
