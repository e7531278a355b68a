/* float32 or bfloat16 weights times a handful of activation rows: y[m][n] = sum_k x[m][k] * w[n][k].

   For the products PyTorch's library calls serve poorly on a CPU: a decode step multiplies 2 rows
   (a guided stream; 12 in speculative decoding's checking pass) by every weight once, so its floor
   is the time to read the weights. There, on an AMD EPYC Zen 4, MKL's sgemm reached 20-31 % of the
   memory-read rate (its 1-row sgemv 56 %), oneDNN's bfloat16 matmul 32-42 %, and this kernel 38-66 %
   in float32 and 48-57 % in bfloat16 (bench/dense_matvec.py). It keeps the weight stream going: the
   checkpoint's own row-major tensors (no copy), two weight rows at a time against every activation
   row, a vector of inputs per instruction, prefetching ahead. bfloat16 weights are widened to float
   on load (a bfloat16 is a float's top half: every product is exact in float32, the sums float32's). */

#include <stdint.h>

#include "riffd_native.h"

#ifdef RIFFD_KERNELS

/* Activation rows per pass: 2 weight rows x 12 accumulators stay in AVX-512's 32 registers (AVX2
   has 16: it spills some at the top of the range, still one read of the weights). */
#define F32_MAX_ROWS 12
#define F32_PREFETCH_L2_BYTES 4096
#define F32_PREFETCH_L1_BYTES 512

/* VL weights from element j of row `w` (float32, or bfloat16 widened), for a compile-time `bf16`. */
static inline __attribute__((always_inline)) vf weights_at(const void *w, int64_t j, const int bf16) {
    return bf16 ? vf_load_bf16((const uint16_t *)w + j) : vf_load((const float *)w + j);
}

static inline __attribute__((always_inline)) void two_rows(const float *x, const int rows, int64_t k, const void *w,
                                                           const int bf16, float *y, int64_t n, int64_t r) {
    vf acc0[F32_MAX_ROWS], acc1[F32_MAX_ROWS];
    for (int m = 0; m < F32_MAX_ROWS; m++) acc0[m] = acc1[m] = vf_zero();
    const int64_t size = bf16 ? 2 : 4; /* bytes a weight */
    const char *w0 = (const char *)w + r * k * size, *w1 = w0 + k * size;
    for (int64_t j = 0; j < k; j += VL) {
        __builtin_prefetch(w0 + j * size + F32_PREFETCH_L2_BYTES, 0, 2);
        __builtin_prefetch(w1 + j * size + F32_PREFETCH_L2_BYTES, 0, 2);
        __builtin_prefetch(w0 + j * size + F32_PREFETCH_L1_BYTES, 0, 3);
        __builtin_prefetch(w1 + j * size + F32_PREFETCH_L1_BYTES, 0, 3);
        vf a = weights_at(w0, j, bf16), b = weights_at(w1, j, bf16);
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

#define TWO_ROWS_CASE(R) case R: two_rows(xs, R, k, w, bf16, ys, n, 2 * i); break;

int riffd_f32_max_rows(void) { return F32_MAX_ROWS; }

typedef struct {
    const float *x;
    int rows;
    int64_t k;
    const void *w; /* float32, or bfloat16 (riffd_bf16_matmul) */
    float *y;
    int64_t n;
} pairs_job;

/* Weight row pairs [begin, end) against up to F32_MAX_ROWS activation rows, on one thread; one
   function per weight type (BF16 0 or 1), the rows' count a constant in each case. */
#define PAIRS(NAME, BF16)                                                                                      \
    static void NAME(void *ctx, int64_t begin, int64_t end) {                                                  \
        const pairs_job *j = ctx;                                                                              \
        const float *xs = j->x;                                                                                \
        const void *w = j->w;                                                                                  \
        float *ys = j->y;                                                                                      \
        const int64_t k = j->k, n = j->n;                                                                      \
        const int bf16 = BF16; /* a constant: each function is compiled for its type */                       \
        for (int64_t i = begin; i < end; i++) {                                                                \
            switch (j->rows) {                                                                                 \
                TWO_ROWS_CASE(1) TWO_ROWS_CASE(2) TWO_ROWS_CASE(3) TWO_ROWS_CASE(4) TWO_ROWS_CASE(5)           \
                TWO_ROWS_CASE(6) TWO_ROWS_CASE(7) TWO_ROWS_CASE(8) TWO_ROWS_CASE(9) TWO_ROWS_CASE(10)          \
                TWO_ROWS_CASE(11)                                                                              \
                default: two_rows(xs, F32_MAX_ROWS, k, w, bf16, ys, n, 2 * i); break;                          \
            }                                                                                                  \
        }                                                                                                      \
    }
PAIRS(f32_pairs, 0)
PAIRS(bf16_pairs, 1)

static void matmul(const float *x, int64_t m, int64_t k, const void *w, riffd_range_fn pairs, float *y, int64_t n,
                   int threads) {
    for (int64_t m0 = 0; m0 < m; m0 += F32_MAX_ROWS) {
        int rows = (int)((m - m0) < F32_MAX_ROWS ? (m - m0) : F32_MAX_ROWS);
        pairs_job job = {x + m0 * k, rows, k, w, y + m0 * n, n};
        riffd_parallel(n / 2, 0, threads, pairs, &job);
    }
}

/* x [m][k], w [n][k] (row-major, as a checkpoint holds it), y [m][n]; k % 16 == 0, n % 2 == 0. */
void riffd_f32_matmul(const float *x, int64_t m, int64_t k, const float *w, float *y, int64_t n, int threads) {
    matmul(x, m, k, w, f32_pairs, y, n, threads);
}

/* The same with w [n][k] bfloat16 (the top halves of floats); x and y stay float32. */
void riffd_bf16_matmul(const float *x, int64_t m, int64_t k, const uint16_t *w, float *y, int64_t n, int threads) {
    matmul(x, m, k, w, bf16_pairs, y, n, threads);
}
#else
int riffd_f32_max_rows(void) { return 0; }
void riffd_f32_matmul(const float *x, int64_t m, int64_t k, const float *w, float *y, int64_t n, int threads) {
    (void)x; (void)m; (void)k; (void)w; (void)y; (void)n; (void)threads;
}
void riffd_bf16_matmul(const float *x, int64_t m, int64_t k, const uint16_t *w, float *y, int64_t n, int threads) {
    (void)x; (void)m; (void)k; (void)w; (void)y; (void)n; (void)threads;
}
#endif
