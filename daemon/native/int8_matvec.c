/* int8 weights times a few float32 activation rows, for the MusicGen decode step.

   y[m][n] = scale[n] * sum_k x[m][k] * w[n][k]

   A decode step multiplies two activation rows (guidance's conditional and null halves) by every
   weight matrix once, so its time is the time to stream the weights from memory: int8 weights
   are a quarter of float32's bytes. Widening each weight byte to float costs more instructions
   than the memory system leaves time for, so the kernel stays in integers instead (AVX-512
   VNNI, or AVX-VNNI on 256-bit vectors; see simd.h): each activation row is quantised to 16-bit fixed point with its own scale (error below
   2e-5 of the row's largest value, far under the weights' own int8 error) and split into a high
   and a low byte, and `vpdpbusd` multiplies both bytes by four weights at a time into int32.

   Weights are packed once at load into blocks of 32 output rows, four inputs deep:
   packed[n / 32][k / 4][32][4], so a block is one sequential stream and each vector load feeds
   as many output rows directly (no horizontal sums). Output rows are split across OpenMP threads;
   the library links libgomp by its soname, so inside a process that has loaded torch it shares
   torch's thread pool instead of starting a second one. */

#include <stdint.h>

#include "riffd_native.h"

#define BLOCK_ROWS 32 /* output rows per packed block */
#define GROUP 4       /* inputs per vpdpbusd lane */
#define MAX_ROWS 4    /* activation rows served by one pass over the weights */
#define MAX_K 16384
#define COL_MULTIPLE 16 /* the quantiser works a vector at a time (16 floats at most) */
/* Software prefetch distances: far into L2, near into L1. Measured on a 2-core Xeon (Sapphire
   Rapids class) against the same buffers read with no arithmetic: L1 prefetch alone reached 74 %
   of that read rate, this pair 86 %, none at all 62 %. */
#define PREFETCH_L2_BYTES 4096
#define PREFETCH_L1_BYTES 512

int riffd_int8_block_rows(void) { return BLOCK_ROWS; }
int riffd_int8_group(void) { return GROUP; }
/* Columns (k) must be a multiple of this. */
int riffd_int8_col_multiple(void) { return COL_MULTIPLE; }
int riffd_int8_max_k(void) { return MAX_K; }

#ifdef RIFFD_VNNI
int riffd_int8_supported(void) { return 1; }
int riffd_simd_bits(void) { return RIFFD_SIMD_BITS; }

/* Rows of a block one pass accumulates: two vectors of VL rows (AVX-512: the whole block;
   AVX2, with half the registers: half of it per pass). */
#define PASS_ROWS (2 * VL)

/* Quantise one activation row to 16-bit fixed point, stored as biased high bytes and low bytes:
   q = round(x / s) = 256 * (high - 128) + low, with s = max|x| / 32767. Returns s. */
static float quantize_row(const float *x, int64_t k, uint8_t *high, uint8_t *low) {
    vf amax = vf_zero();
    for (int64_t j = 0; j < k; j += VL) amax = vf_max(amax, vf_abs(vf_load(x + j)));
    float largest = vf_largest(amax);
    float s = largest > 0.0f ? largest / 32767.0f : 1.0f;
    vf inv = vf_set1(1.0f / s);
    vi lo_limit = vi_set1(-32767), hi_limit = vi_set1(32767), bias = vi_set1(128), mask = vi_set1(255);
    for (int64_t j = 0; j < k; j += VL) {
        vi q = vi_min(vi_max(vf_to_int(vf_mul(vf_load(x + j), inv)), lo_limit), hi_limit);
        vi_store_bytes(high + j, vi_add(vi_shift_right(q, 8), bias));
        vi_store_bytes(low + j, vi_and(q, mask));
    }
    return s;
}

/* PASS_ROWS outputs from r0 (inside the packed block starting at n0) against `rows` quantised
   activation rows. `rows` is a compile-time constant at each call site, so the accumulators stay
   in registers. */
static inline __attribute__((always_inline)) void block(const uint8_t *high, const uint8_t *low, const int rows,
                                                        int64_t k, const int8_t *packed, const int32_t *row_sums,
                                                        const float *scale, const float *x_scale, float *y, int64_t n,
                                                        int64_t n0, int64_t r0) {
    vi acc_high[MAX_ROWS][2], acc_low[MAX_ROWS][2];
    for (int m = 0; m < MAX_ROWS; m++)
        for (int u = 0; u < 2; u++) acc_high[m][u] = acc_low[m][u] = vi_zero();
    const int8_t *w = packed + n0 * k + (r0 - n0) * GROUP;
    for (int64_t j = 0; j < k; j += GROUP) {
        /* The hardware prefetchers stop at page boundaries; a block is one long stream, so ask ahead. */
        _mm_prefetch((const char *)(w + PREFETCH_L2_BYTES), _MM_HINT_T1);
        _mm_prefetch((const char *)(w + PREFETCH_L1_BYTES), _MM_HINT_T0);
        if (PASS_ROWS * GROUP > 64) {
            _mm_prefetch((const char *)(w + PREFETCH_L2_BYTES + 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(w + PREFETCH_L1_BYTES + 64), _MM_HINT_T0);
        }
        vi wv[2];
        for (int u = 0; u < 2; u++) wv[u] = vi_load(w + u * VL * GROUP);
        w += BLOCK_ROWS * GROUP;
        for (int m = 0; m < rows; m++) {
            vi h = vi_set1(*(const int32_t *)(high + m * k + j));
            vi l = vi_set1(*(const int32_t *)(low + m * k + j));
            for (int u = 0; u < 2; u++) {
                acc_high[m][u] = vi_dot_u8s8(acc_high[m][u], h, wv[u]);
                acc_low[m][u] = vi_dot_u8s8(acc_low[m][u], l, wv[u]);
            }
        }
    }
    for (int m = 0; m < rows; m++) {
        vf xs = vf_set1(x_scale[m]);
        for (int u = 0; u < 2; u++) {
            int64_t r = r0 + u * VL;
            /* sum((high - 128) * w) = acc_high - 128 * sum(w); both fit int32 for k <= MAX_K. */
            vi bias = vi_shift_left(vi_load(row_sums + r), 7);
            vf hi = vi_to_float(vi_sub(acc_high[m][u], bias));
            vf dot = vf_fmadd(hi, vf_set1(256.0f), vi_to_float(acc_low[m][u]));
            vf_store(y + m * n + r, vf_mul(dot, vf_mul(vf_load(scale + r), xs)));
        }
    }
}

/* x [m][k] float32; packed int8 as above; row_sums [n] int32 (sum of each weight row); scale [n];
   y [m][n] float32; `threads` as torch.get_num_threads(). Needs k % COL_MULTIPLE == 0, k <= MAX_K,
   n % BLOCK_ROWS == 0 (checked by the caller). */
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    uint8_t high[MAX_ROWS * k], low[MAX_ROWS * k];
    float x_scale[MAX_ROWS];
    int64_t passes = n / PASS_ROWS;
    for (int64_t m0 = 0; m0 < m; m0 += MAX_ROWS) {
        int rows = (int)((m - m0) < MAX_ROWS ? (m - m0) : MAX_ROWS);
        for (int r = 0; r < rows; r++) x_scale[r] = quantize_row(x + (m0 + r) * k, k, high + r * k, low + r * k);
        float *out = y + m0 * n;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < passes; i++) {
            int64_t r0 = i * PASS_ROWS, n0 = r0 - r0 % BLOCK_ROWS;
            switch (rows) {
            case 1: block(high, low, 1, k, packed, row_sums, scale, x_scale, out, n, n0, r0); break;
            case 2: block(high, low, 2, k, packed, row_sums, scale, x_scale, out, n, n0, r0); break;
            case 3: block(high, low, 3, k, packed, row_sums, scale, x_scale, out, n, n0, r0); break;
            default: block(high, low, 4, k, packed, row_sums, scale, x_scale, out, n, n0, r0); break;
            }
        }
    }
}
#else
/* Built for a CPU without AVX-512 VNNI or AVX-VNNI: the caller uses PyTorch's int8 kernel instead. */
int riffd_int8_supported(void) { return 0; }
int riffd_simd_bits(void) { return 0; }
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    (void)threads; (void)x; (void)m; (void)k; (void)packed; (void)row_sums; (void)scale; (void)y; (void)n;
}
#endif
