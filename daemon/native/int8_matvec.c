/* int8 weights times a few float32 activation rows, for the MusicGen decode step.

   y[m][n] = scale[n] * sum_k x[m][k] * w[n][k]

   A decode step multiplies two activation rows (guidance's conditional and null halves) by every
   weight matrix once, so its time is the time to stream the weights from memory: int8 weights
   are a quarter of float32's bytes. Widening each weight byte to float costs more instructions
   than the memory system leaves time for, so the kernel stays in integers instead (AVX-512
   VNNI): each activation row is quantised to 16-bit fixed point with its own scale (error below
   2e-5 of the row's largest value, far under the weights' own int8 error) and split into a high
   and a low byte, and `vpdpbusd` multiplies both bytes by four weights at a time into int32.

   Weights are packed once at load into blocks of 32 output rows, four inputs deep:
   packed[n / 32][k / 4][32][4], so a block is one sequential stream and each 64-byte load feeds
   16 output rows directly (no horizontal sums). Output rows are split across OpenMP threads;
   the library links libgomp by its soname, so inside a process that has loaded torch it shares
   torch's thread pool instead of starting a second one. */

#include <stdint.h>

#include "riffd_native.h"

#define LANES 16
#define UNROLL 2
#define BLOCK_ROWS (LANES * UNROLL) /* output rows per packed block */
#define GROUP 4                     /* inputs per vpdpbusd lane */
#define MAX_ROWS 4                  /* activation rows served by one pass over the weights */
#define MAX_K 16384
/* Software prefetch distances: far into L2, near into L1. Measured on a 2-core Xeon (Sapphire
   Rapids class) against the same buffers read with no arithmetic: L1 prefetch alone reached 74 %
   of that read rate, this pair 86 %, none at all 62 %. */
#define PREFETCH_L2_BYTES 4096
#define PREFETCH_L1_BYTES 512

int riffd_int8_block_rows(void) { return BLOCK_ROWS; }
int riffd_int8_group(void) { return GROUP; }
/* Columns (k) must be a multiple of this: the activation quantiser works 16 at a time. */
int riffd_int8_col_multiple(void) { return LANES; }
int riffd_int8_max_k(void) { return MAX_K; }

#ifdef RIFFD_VNNI
int riffd_int8_supported(void) { return 1; }

/* Quantise one activation row to 16-bit fixed point, stored as biased high bytes and low bytes:
   q = round(x / s) = 256 * (high - 128) + low, with s = max|x| / 32767. Returns s. */
static float quantize_row(const float *x, int64_t k, uint8_t *high, uint8_t *low) {
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += LANES) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    float largest = _mm512_reduce_max_ps(amax);
    float s = largest > 0.0f ? largest / 32767.0f : 1.0f;
    __m512 inv = _mm512_set1_ps(1.0f / s);
    __m512i lo_limit = _mm512_set1_epi32(-32767), hi_limit = _mm512_set1_epi32(32767);
    __m512i bias = _mm512_set1_epi32(128), mask = _mm512_set1_epi32(255);
    for (int64_t j = 0; j < k; j += LANES) {
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), inv)); /* nearest, ties even */
        q = _mm512_min_epi32(_mm512_max_epi32(q, lo_limit), hi_limit);
        _mm_storeu_si128((__m128i *)(high + j), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_srai_epi32(q, 8), bias)));
        _mm_storeu_si128((__m128i *)(low + j), _mm512_cvtepi32_epi8(_mm512_and_si512(q, mask)));
    }
    return s;
}

/* One packed block (BLOCK_ROWS outputs from n0) against `rows` quantised activation rows.
   `rows` is a compile-time constant at each call site, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void block(const uint8_t *high, const uint8_t *low, const int rows,
                                                        int64_t k, const int8_t *packed, const int32_t *row_sums,
                                                        const float *scale, const float *x_scale, float *y, int64_t n,
                                                        int64_t n0) {
    __m512i acc_high[MAX_ROWS][UNROLL], acc_low[MAX_ROWS][UNROLL];
    for (int m = 0; m < MAX_ROWS; m++)
        for (int u = 0; u < UNROLL; u++) acc_high[m][u] = acc_low[m][u] = _mm512_setzero_si512();
    const int8_t *w = packed + n0 * k;
    for (int64_t j = 0; j < k; j += GROUP) {
        /* The hardware prefetchers stop at page boundaries; a block is one long stream, so ask ahead. */
        _mm_prefetch((const char *)(w + PREFETCH_L2_BYTES), _MM_HINT_T1);
        _mm_prefetch((const char *)(w + PREFETCH_L2_BYTES + 64), _MM_HINT_T1);
        _mm_prefetch((const char *)(w + PREFETCH_L1_BYTES), _MM_HINT_T0);
        _mm_prefetch((const char *)(w + PREFETCH_L1_BYTES + 64), _MM_HINT_T0);
        __m512i wv[UNROLL];
        for (int u = 0; u < UNROLL; u++) wv[u] = _mm512_loadu_si512((const void *)(w + u * 64));
        w += BLOCK_ROWS * GROUP;
        for (int m = 0; m < rows; m++) {
            __m512i h = _mm512_set1_epi32(*(const int32_t *)(high + m * k + j));
            __m512i l = _mm512_set1_epi32(*(const int32_t *)(low + m * k + j));
            for (int u = 0; u < UNROLL; u++) {
                acc_high[m][u] = _mm512_dpbusd_epi32(acc_high[m][u], h, wv[u]);
                acc_low[m][u] = _mm512_dpbusd_epi32(acc_low[m][u], l, wv[u]);
            }
        }
    }
    for (int m = 0; m < rows; m++) {
        __m512 xs = _mm512_set1_ps(x_scale[m]);
        for (int u = 0; u < UNROLL; u++) {
            int64_t r = n0 + u * LANES;
            /* sum((high - 128) * w) = acc_high - 128 * sum(w); both fit int32 for k <= MAX_K. */
            __m512i bias = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(row_sums + r)), 7);
            __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc_high[m][u], bias));
            __m512 dot = _mm512_fmadd_ps(hi, _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(acc_low[m][u]));
            _mm512_storeu_ps(y + m * n + r, _mm512_mul_ps(dot, _mm512_mul_ps(_mm512_loadu_ps(scale + r), xs)));
        }
    }
}

/* x [m][k] float32; packed int8 as above; row_sums [n] int32 (sum of each weight row); scale [n];
   y [m][n] float32; `threads` as torch.get_num_threads(). Needs k % LANES == 0, k <= MAX_K, n % BLOCK_ROWS == 0 (checked by the caller). */
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    uint8_t high[MAX_ROWS * k], low[MAX_ROWS * k];
    float x_scale[MAX_ROWS];
    int64_t blocks = n / BLOCK_ROWS;
    for (int64_t m0 = 0; m0 < m; m0 += MAX_ROWS) {
        int rows = (int)((m - m0) < MAX_ROWS ? (m - m0) : MAX_ROWS);
        for (int r = 0; r < rows; r++) x_scale[r] = quantize_row(x + (m0 + r) * k, k, high + r * k, low + r * k);
        float *out = y + m0 * n;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < blocks; i++) {
            switch (rows) {
            case 1: block(high, low, 1, k, packed, row_sums, scale, x_scale, out, n, i * BLOCK_ROWS); break;
            case 2: block(high, low, 2, k, packed, row_sums, scale, x_scale, out, n, i * BLOCK_ROWS); break;
            case 3: block(high, low, 3, k, packed, row_sums, scale, x_scale, out, n, i * BLOCK_ROWS); break;
            default: block(high, low, 4, k, packed, row_sums, scale, x_scale, out, n, i * BLOCK_ROWS); break;
            }
        }
    }
}
#else
/* Built for a CPU without AVX-512 VNNI: the caller uses PyTorch's int8 kernel instead. */
int riffd_int8_supported(void) { return 0; }
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    (void)threads; (void)x; (void)m; (void)k; (void)packed; (void)row_sums; (void)scale; (void)y; (void)n;
}
#endif
