/* int8 weights times a few float32 activation rows, for the MusicGen decode step.

   y[m][n] = scale[n] * sum_k x[m][k] * w[n][k]

   A decode step multiplies two activation rows (guidance's conditional and null halves) per stream
   by every weight matrix once, so its time is the time to stream the weights from memory: int8
   weights are a quarter of float32's bytes. Widening each weight byte to float costs more
   instructions than the memory system leaves time for, so the kernel stays in integers instead:
   each activation row is quantised to 16-bit fixed point with its own scale (error below 2e-5 of
   the row's largest value, far under the weights' own int8 error), and simd.h's dot product
   multiplies it by four weights per row at a time, summing exactly (VNNI's vpdpbusd on its high
   and low bytes; on AVX2 without VNNI, vpmaddwd on weights widened to 16 bits).

   Weights are packed once at load into blocks of BLOCK_ROWS output rows (as many as the branch's
   sums keep in registers: 32 with AVX-512, 16 with AVX-VNNI and NEON, 8 with AVX2), four inputs
   deep: packed[n / B][k / 4][B][4], so a block is one sequential stream that one pass reads whole,
   and each vector load feeds as many output rows directly (no horizontal sums). A block is read
   from memory once for all of a decode step's rows (up to ROWS_PER_READ), or for a chunk of a
   prefill's (rows_per_read): the first tile of rows streams it (prefetching ahead), the others find
   it in L1 or L2. Blocks are handed out to pool.c's threads a few at a time.

   Rows are independent: a row's outputs are the same bits whichever rows share the call (each is
   quantised on its own, its integer sums are exact, its float steps the same).

   riffd_int8a8_matvec (the int8a8 mode) takes the same packed weights but quantises each activation
   row to signed 8 bits (scale max|x| / 127): one product instruction per four weights and row
   instead of two, so at 8-16 rows, where the 16-bit path runs out of multiplier throughput before
   memory bandwidth, it stays near the weights' read time. Its int32 sums are exact on every branch
   and the float steps after them the same, so every branch gives the same bits. */

#include <stdint.h>
#include <stdlib.h>

#include "riffd_native.h"

#ifdef RIFFD_KERNELS
#define BLOCK_ROWS (DOT_PASS_VECS * VL) /* output rows per packed block: one pass's */
#else
#define BLOCK_ROWS 32
#endif
#define MAX_K 16384
#define COL_MULTIPLE 16 /* the quantiser works a vector at a time (16 floats at most) */
#define ROWS_PER_READ 16 /* activation rows served by one read of the weights from memory */
/* Software prefetch distances: far into L2, near into L1. Measured on a 2-core Xeon (Sapphire
   Rapids class) against the same buffers read with no arithmetic: L1 prefetch alone reached 74 %
   of that read rate, this pair 86 %, none at all 62 %. */
#define PREFETCH_L2_BYTES 4096
#define PREFETCH_L1_BYTES 512

int riffd_int8_block_rows(void) { return BLOCK_ROWS; }
int riffd_int8_group(void) { return DOT_GROUP; }
/* Columns (k) must be a multiple of this. */
int riffd_int8_col_multiple(void) { return COL_MULTIPLE; }
int riffd_int8_max_k(void) { return MAX_K; }

#ifdef RIFFD_KERNELS
int riffd_int8_supported(void) { return 1; }
int riffd_simd_bits(void) { return RIFFD_SIMD_BITS; }
const char *riffd_isa(void) { return RIFFD_ISA; }

/* Bytes of a block per step (DOT_GROUP inputs of every row), and steps per 64-byte line: the
   prefetches go once a line. */
#define STEP_BYTES (BLOCK_ROWS * DOT_GROUP)
#define STEPS_PER_LINE (STEP_BYTES >= 64 ? 1 : 64 / STEP_BYTES)

/* A row's quantisation scale for `levels` steps either side of zero: max|x| / levels (1 for a row
   of zeros). */
static float row_scale(const float *x, int64_t k, float levels) {
    vf amax = vf_zero();
    for (int64_t j = 0; j < k; j += VL) amax = vf_max(amax, vf_abs(vf_load(x + j)));
    float largest = vf_largest(amax);
    return largest > 0.0f ? largest / levels : 1.0f;
}

/* x[j .. j + VL) times `inv` (1 / the row's scale), rounded and clamped to [-levels, levels]. */
static inline vi quantized(const float *x, int64_t j, vf inv, int levels) {
    return vi_min(vi_max(vf_to_int(vf_mul(vf_load(x + j), inv)), vi_set1(-levels)), vi_set1(levels));
}

/* Quantise one activation row to 16-bit fixed point, q = round(x / s) with s = max|x| / 32767,
   into `act` (2k bytes, simd.h's layout). Returns s. */
static float quantize_row(const float *x, int64_t k, uint8_t *act) {
    float s = row_scale(x, k, 32767.0f);
    vf inv = vf_set1(1.0f / s);
    for (int64_t j = 0; j < k; j += VL) act_store(act, k, j, quantized(x, j, inv, 32767));
    return s;
}

/* Quantise one activation row to signed 8 bits, q = round(x / s) with s = max|x| / 127, into `act`
   (k bytes, simd.h's dot8 layout). Returns s. The same float steps on every branch. */
static float quantize_row8(const float *x, int64_t k, uint8_t *act) {
    float s = row_scale(x, k, 127.0f);
    vf inv = vf_set1(1.0f / s);
    for (int64_t j = 0; j < k; j += VL) act8_store(act, j, quantized(x, j, inv, 127));
    return s;
}

/* The hardware prefetchers stop at page boundaries; a block is one long stream, so ask ahead, a
   line at a time (w: the next step's weights). */
static inline __attribute__((always_inline)) void prefetch_ahead(const int8_t *w) {
    for (int line = 0; line < STEP_BYTES / 64; line++) {
        __builtin_prefetch((const char *)w + PREFETCH_L2_BYTES + 64 * line, 0, 2);
        __builtin_prefetch((const char *)w + PREFETCH_L1_BYTES + 64 * line, 0, 3);
    }
    if (STEP_BYTES < 64) {
        __builtin_prefetch((const char *)w + PREFETCH_L2_BYTES, 0, 2);
        __builtin_prefetch((const char *)w + PREFETCH_L1_BYTES, 0, 3);
    }
}

/* The block starting at output row n0 against `rows` quantised activation rows. `rows` and
   `prefetch` are compile-time constants at each call site, so the sums stay in registers;
   `prefetch` on the block's first tile of rows, the one that reads it from memory. */
static inline __attribute__((always_inline)) void tile(const uint8_t *act, const int rows, const int prefetch,
                                                       int64_t k, const int8_t *packed, const int32_t *row_sums,
                                                       const float *scale, const float *x_scale, float *y, int64_t n,
                                                       int64_t n0) {
    dot_sum sum[DOT_ROW_TILE][DOT_PASS_VECS];
    for (int m = 0; m < rows; m++)
        for (int u = 0; u < DOT_PASS_VECS; u++) sum[m][u] = dot_sum_zero();
    const int8_t *w = packed + n0 * k;
    const int64_t flush = (int64_t)DOT_FLUSH_GROUPS * DOT_GROUP;
    for (int64_t j0 = 0; j0 < k; j0 += flush) {
        const int64_t end = k - j0 < flush ? k : j0 + flush;
        dot_acc acc[DOT_ROW_TILE][DOT_PASS_VECS];
        for (int m = 0; m < rows; m++)
            for (int u = 0; u < DOT_PASS_VECS; u++) acc[m][u] = dot_acc_zero();
        for (int64_t j = j0; j < end; j += STEPS_PER_LINE * DOT_GROUP) {
            if (prefetch) prefetch_ahead(w);
            for (int s = 0; s < STEPS_PER_LINE; s++) { /* k % 16 == 0: whole lines */
                dot_w wv[DOT_PASS_VECS];
                for (int u = 0; u < DOT_PASS_VECS; u++) wv[u] = dot_load_w(w + u * VL * DOT_GROUP);
                w += STEP_BYTES;
                for (int m = 0; m < rows; m++) {
                    dot_act a = dot_load_act(act + m * 2 * k, k, j + s * DOT_GROUP);
                    for (int u = 0; u < DOT_PASS_VECS; u++) acc[m][u] = dot_step(acc[m][u], a, wv[u]);
                }
            }
        }
        for (int m = 0; m < rows; m++)
            for (int u = 0; u < DOT_PASS_VECS; u++) sum[m][u] = dot_flush(sum[m][u], acc[m][u]);
    }
    for (int m = 0; m < rows; m++) {
        vf xs = vf_set1(x_scale[m]);
        for (int u = 0; u < DOT_PASS_VECS; u++) {
            int64_t r = n0 + u * VL;
            vf_store(y + m * n + r, vf_mul(dot_finish(sum[m][u], row_sums + r), vf_mul(vf_load(scale + r), xs)));
        }
    }
}

/* tile() for 8-bit activation rows (`act`: k bytes a row): simd.h's dot8 products, exact in int32
   to the end. */
#define DOT8_PASS_VECS (BLOCK_ROWS / VL)
static inline __attribute__((always_inline)) void tile8(const uint8_t *act, const int rows, const int prefetch,
                                                        int64_t k, const int8_t *packed, const int32_t *row_sums,
                                                        const float *scale, const float *x_scale, float *y, int64_t n,
                                                        int64_t n0) {
    vi acc[DOT8_ROW_TILE][DOT8_PASS_VECS];
    for (int m = 0; m < rows; m++)
        for (int u = 0; u < DOT8_PASS_VECS; u++) acc[m][u] = vi_zero();
    const int8_t *w = packed + n0 * k;
    for (int64_t j = 0; j < k; j += STEPS_PER_LINE * DOT_GROUP) {
        if (prefetch) prefetch_ahead(w);
        for (int s = 0; s < STEPS_PER_LINE; s++) { /* k % 16 == 0: whole lines */
            dot8_w wv[DOT8_PASS_VECS];
            for (int u = 0; u < DOT8_PASS_VECS; u++) wv[u] = dot8_load_w(w + u * VL * DOT_GROUP);
            w += STEP_BYTES;
            for (int m = 0; m < rows; m++) {
                vi a = dot8_load_act(act + m * k, j + s * DOT_GROUP);
                for (int u = 0; u < DOT8_PASS_VECS; u++) acc[m][u] = dot8_step(acc[m][u], a, wv[u]);
            }
        }
    }
    for (int m = 0; m < rows; m++) {
        vf xs = vf_set1(x_scale[m]);
        for (int u = 0; u < DOT8_PASS_VECS; u++) {
            int64_t r = n0 + u * VL;
            vf sums = vi_to_float(dot8_finish(acc[m][u], row_sums + r));
            vf_store(y + m * n + r, vf_mul(sums, vf_mul(vf_load(scale + r), xs)));
        }
    }
}

#define TILE_CASE(FN, R)                                                                                           \
    case R:                                                                                                        \
        if (m0 == 0) FN(a, R, 1, k, packed, row_sums, scale, xs, out, n, n0);                                      \
        else FN(a, R, 0, k, packed, row_sums, scale, xs, out, n, n0);                                              \
        break;

/* One packed block (BLOCK_ROWS outputs) against `rows` activation rows, DOT_ROW_TILE at a time: read
   from memory by the first tile, from the cache by the rest. */
static void one_block(const uint8_t *act, int rows, int64_t k, const int8_t *packed, const int32_t *row_sums,
                      const float *scale, const float *x_scale, float *y, int64_t n, int64_t n0) {
    for (int m0 = 0; m0 < rows; m0 += DOT_ROW_TILE) {
        const int count = rows - m0 < DOT_ROW_TILE ? rows - m0 : DOT_ROW_TILE;
        const uint8_t *a = act + (int64_t)m0 * 2 * k;
        const float *xs = x_scale + m0;
        float *out = y + m0 * n;
        switch (count) {
#if DOT_ROW_TILE > 8
#error "tile cases go up to 8 rows"
#endif
            TILE_CASE(tile, 1) TILE_CASE(tile, 2) TILE_CASE(tile, 3) TILE_CASE(tile, 4)
#if DOT_ROW_TILE > 4
            TILE_CASE(tile, 5) TILE_CASE(tile, 6) TILE_CASE(tile, 7) TILE_CASE(tile, 8)
#endif
        default: break;
        }
    }
}

/* one_block() for 8-bit activation rows, DOT8_ROW_TILE at a time. */
static void one_block8(const uint8_t *act, int rows, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, const float *x_scale, float *y, int64_t n, int64_t n0) {
    for (int m0 = 0; m0 < rows; m0 += DOT8_ROW_TILE) {
        const int count = rows - m0 < DOT8_ROW_TILE ? rows - m0 : DOT8_ROW_TILE;
        const uint8_t *a = act + (int64_t)m0 * k;
        const float *xs = x_scale + m0;
        float *out = y + m0 * n;
        switch (count) {
#if DOT8_ROW_TILE > 8
#error "tile cases go up to 8 rows"
#endif
            TILE_CASE(tile8, 1) TILE_CASE(tile8, 2) TILE_CASE(tile8, 3) TILE_CASE(tile8, 4)
#if DOT8_ROW_TILE > 4
            TILE_CASE(tile8, 5) TILE_CASE(tile8, 6) TILE_CASE(tile8, 7) TILE_CASE(tile8, 8)
#endif
        default: break;
        }
    }
}

typedef struct {
    const uint8_t *act;
    int rows;
    int64_t k;
    const int8_t *packed;
    const int32_t *row_sums;
    const float *scale, *x_scale;
    float *y;
    int64_t n;
    int act8; /* rows of 8-bit activations (one_block8), else 16-bit (one_block) */
} blocks_job;

/* Blocks [begin, end) of one call, on one thread. */
static void blocks(void *ctx, int64_t begin, int64_t end) {
    const blocks_job *j = ctx;
    for (int64_t b = begin; b < end; b++) {
        if (j->act8)
            one_block8(j->act, j->rows, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y, j->n, b * BLOCK_ROWS);
        else
            one_block(j->act, j->rows, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y, j->n, b * BLOCK_ROWS);
    }
}

typedef struct {
    const float *x;
    int64_t k;
    uint8_t *act;
    float *x_scale;
    int act8;
} quantize_job;

/* Rows [begin, end) of x quantised into act (to 8 bits with act8, else 16), their scales into x_scale. */
static void quantize_rows(void *ctx, int64_t begin, int64_t end) {
    const quantize_job *j = ctx;
    const int64_t row_bytes = j->act8 ? j->k : 2 * j->k;
    for (int64_t r = begin; r < end; r++) {
        const float *row = j->x + r * j->k;
        uint8_t *out = j->act + r * row_bytes;
        j->x_scale[r] = j->act8 ? quantize_row8(row, j->k, out) : quantize_row(row, j->k, out);
    }
}

/* matvec_rows' loop: `chunk` rows at a time quantised into `work` (chunk rows of activations, then
   their scales), then every block against them on the pool. */
static void rows_in_chunks(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                           const float *scale, float *y, int64_t n, int threads, int act8, int64_t chunk,
                           uint8_t *work) {
    const int64_t row_bytes = act8 ? k : 2 * k;
    uint8_t *act = work;
    float *x_scale = (float *)(work + chunk * row_bytes);
    for (int64_t m0 = 0; m0 < m; m0 += chunk) {
        int rows = (int)((m - m0) < chunk ? (m - m0) : chunk);
        quantize_job quantize = {x + m0 * k, k, act, x_scale, act8};
        if (rows > ROWS_PER_READ) /* a prefill's chunk: on every thread */
            riffd_parallel(rows, 0, threads, quantize_rows, &quantize);
        else
            quantize_rows(&quantize, 0, rows);
        blocks_job job = {act, rows, k, packed, row_sums, scale, x_scale, y + m0 * n, n, act8};
        riffd_parallel(n / BLOCK_ROWS, 0, threads, blocks, &job);
    }
}

/* Rows served by one read of the weights from memory. A decode step's few rows (up to
   ROWS_PER_READ) go all at once. A prefill's hundreds (a long-form window re-reads 601 context frames,
   1202 rows with guidance) go in chunks whose quantised rows take about PREFILL_ACT_BYTES: with
   the block being multiplied (32 KB to 128 KB), they stay in L2 while every tile of the chunk passes
   over the block. At 16 rows a read, the tile that streams a block from memory waited for it (2 cores
   read 40 GB/s, a tile of VNNI products consumes weights faster), and that wait came back every
   16 rows. Measured on AMD EPYC Zen 4 (2 cores, bench.native_int8 --rows 256): int8a8 276 -> 217 ms,
   int8 on AVX-512 VNNI 521 -> 428 ms (91-92 % of vpdpbusd's one a cycle); AVX2's vpmaddwd kernel is
   bound by its products either way. Which rows share a chunk changes no bits: rows are independent. */
#ifndef PREFILL_ACT_BYTES
#define PREFILL_ACT_BYTES (256 * 1024)
#endif
#define MAX_ROWS_PER_READ 256

static int64_t rows_per_read(int64_t m, int64_t row_bytes) {
    if (m <= ROWS_PER_READ) return m;
    int64_t rows = PREFILL_ACT_BYTES / row_bytes;
    rows -= rows % ROWS_PER_READ;
    if (rows < ROWS_PER_READ) rows = ROWS_PER_READ;
    if (rows > MAX_ROWS_PER_READ) rows = MAX_ROWS_PER_READ;
    return rows < m ? rows : m;
}

/* The rows of x, a chunk at a time (rows_per_read): each quantised on its own (to 16 bits, or to 8
   with `act8`), then every block against them on the pool. Shared by both entry points below. */
static void matvec_rows(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                        const float *scale, float *y, int64_t n, int threads, int act8) {
    const int64_t row_bytes = act8 ? k : 2 * k;
    const int64_t chunk = rows_per_read(m, row_bytes);
    /* a decode step's rows on the stack (no allocation per matrix); a prefill's chunk on the heap */
    uint8_t *work = chunk > ROWS_PER_READ ? malloc((size_t)(chunk * row_bytes) + sizeof(float) * (size_t)chunk) : NULL;
    if (work) {
        rows_in_chunks(x, m, k, packed, row_sums, scale, y, n, threads, act8, chunk, work);
        free(work);
        return;
    }
    const int64_t small = m < ROWS_PER_READ ? m : ROWS_PER_READ; /* also where malloc failed */
    uint8_t stack[small * row_bytes + (int64_t)sizeof(float) * small];
    rows_in_chunks(x, m, k, packed, row_sums, scale, y, n, threads, act8, small, stack);
}

/* x [m][k] float32; packed int8 as above; row_sums [n] int32 (sum of each weight row); scale [n];
   y [m][n] float32; `threads` as torch.get_num_threads(). Needs k % COL_MULTIPLE == 0, k <= MAX_K,
   n % BLOCK_ROWS == 0 (checked by the caller). */
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 0);
}

/* riffd_int8_matvec with each activation row quantised to signed 8 bits (the int8a8 mode): the
   same arguments and packed weights. */
void riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                         const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 1);
}
#else
/* Built for a CPU without AVX2: the caller uses PyTorch's int8 kernel instead. */
int riffd_int8_supported(void) { return 0; }
int riffd_simd_bits(void) { return 0; }
const char *riffd_isa(void) { return "none"; }
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    (void)threads; (void)x; (void)m; (void)k; (void)packed; (void)row_sums; (void)scale; (void)y; (void)n;
}
void riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                         const float *scale, float *y, int64_t n, int threads) {
    riffd_int8_matvec(x, m, k, packed, row_sums, scale, y, n, threads);
}
#endif
