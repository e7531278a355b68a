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
   it in L1 or L2 (AVX2 without VNNI widens it once per chunk instead: one_block_wide). Blocks are
   handed out to pool.c's threads a few at a time.

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
#include "vmath.h"

#ifdef RIFFD_KERNELS
#define BLOCK_ROWS (DOT_PASS_VECS * VL) /* output rows per packed block: one pass's */
#else
#define BLOCK_ROWS 32
#endif
#define MAX_K 16384
#define COL_MULTIPLE 16 /* the quantiser works a vector at a time (16 floats at most) */
#define ROWS_PER_READ RIFFD_INT8_FUSED_ROWS /* activation rows served by one read of the weights from memory */
#define MAX_ROWS_PER_READ 256 /* a prefill's chunk of rows, at most (rows_per_read) */
/* Software prefetch distances: far into L2, near into L1. Measured on a 2-core Xeon (Sapphire
   Rapids class) against the same buffers read with no arithmetic: L1 prefetch alone reached 74 %
   of that read rate, 4096/512 86 %, none at all 62 %. AMD Zen wants other distances, per branch
   (bench.step_ab, int8a8+kv4 one stream, alternating pairs in one process, on a 2-core EPYC Zen 4
   VM whose GCC 12 says znver3; the 256-bit branches built there with -mno-avx512f, as a Zen 2/3
   would run them):
   - AVX-512 (32 rows a block): half as far, 2048/256: 0.91-0.93x the step at position 100,
     0.93-0.94x at 1400 (36-40 of 40 pairs faster, idle and under load); 2560/256 the same,
     1024-1536 less gain, 4096/256 1.11x, 8192/1024 1.19x.
   - AVX2 (8 rows a block): twice as far, 8192/1024: 0.78-0.85x at 100 and
     0.85-0.87x at 1400 with the other helpers' load (the step on about one core); idle 0.88-1.01x
     at 100 and 0.86-1.01x at 1400 (this machine's noise: +-2 %); 2048/256 was 1.01-1.04x slower
     (again 1.25-1.37x, and 1.15x riding at 1400 + 300, under load).
   - AVX-VNNI (16 rows a block, built with -DRIFFD_SIMD_256: AVX-512 VL's vpdpbusd on 256-bit
     vectors), whose products keep up with memory as AVX-512's do: AVX-512's 2048/256. A lone
     stream's qkv and cross q products go a head's 64 rows at a time (decoder_step.c fuses them with
     the attention), and a prefetch 8 KB ahead runs past a head's rows into rows its item does not
     read. 8192/1024 -> 2048/256: 0.95x at 100 and 0.96x at 1400 idle (38 and 33 of 40 pairs
     faster), 0.88x under load (34 and 39 of 40), riding at 1400 + 300 0.98x (24 of 30); 4096/512
     1.04-1.05x slower than 2048/256, 1024/256 the same. Against the AVX-512 build in one process the
     AVX-VNNI one's step then takes 1.01x at 100 and 1.00x at 1400 (1.13-1.22x before), riding
     1.06x. No Zen part has AVX-VNNI without AVX-512, so this case is the emulation on a Zen 4
     (bench/isa.py); real AVX-VNNI CPUs (Intel) take the 4096/512 below.
   Other CPUs keep 4096/512. -D overrides both. */
#if RIFFD_ZEN
#if RIFFD_SIMD_BITS == 512 || (RIFFD_SIMD_BITS == 256 && defined(RIFFD_VNNI))
#define ZEN_PREFETCH 1 /* nearer */
#elif RIFFD_SIMD_BITS == 256
#define ZEN_PREFETCH 2 /* farther */
#else
#define ZEN_PREFETCH 0
#endif
#else
#define ZEN_PREFETCH 0
#endif
#ifndef PREFETCH_L2_BYTES
#define PREFETCH_L2_BYTES (ZEN_PREFETCH == 1 ? 2048 : ZEN_PREFETCH == 2 ? 8192 : 4096)
#endif
#ifndef PREFETCH_L1_BYTES
#define PREFETCH_L1_BYTES (ZEN_PREFETCH == 1 ? 256 : ZEN_PREFETCH == 2 ? 1024 : 512)
#endif
/* The prefetches stay temporal (T1 far, T0 near), although a decode step reads each block once and
   its ~363 MB stream evicts everything else from L2 and L3 (the step's caches and activations, the
   Python around it, the codec's weights between steps). Non-temporal hints were tried on the Zen 4
   (2-core EPYC VM, AVX-512 VNNI; only where one tile of rows is a block's only reader) and keep
   nothing warm there. After a one-thread C probe streams 256 MB, a 512 KB buffer reads in 21-22 us
   (5 us warm) and a 4 or 16 MB one 2-3.5x slower than warm, whether the stream prefetches T1+T0,
   NTA alone (reading at 16.5 GB/s instead of 22), T1 with an NTA near prefetch, or loads with
   movntdqa (in the probe only: 15 us for the 512 KB buffer, no better at 4-16 MB): the hardware
   prefetchers, trained by the stream, presumably fill L2 (and so L3) either way. In the step
   (bench.step_ab, and the builds stepped in turn in one process; int8a8+kv4, one stream, 2
   threads; 2-4 runs each, idle and under load): NTA far + T0 near 1.009-1.045x at position 100 and
   1.014-1.040x at 1400, NTA alone 1.004-1.007x / 1.005-1.012x, both NTA 0.998-1.003x /
   1.011-1.014x, T1 far + NTA near 0.983-1.040x / 0.982-1.006x (noise: +-2 %); the AVX2 branch
   (-mno-avx512f) with NTA far 1.22-1.28x slower; bench.step_account's Python around the call
   0.59 -> 0.58 ms a step, the codec between steps 1.52 -> 1.48 ms (noise). On the 2-core Intel Xeon
   (AVX-512 VNNI, AMX; KVM, its L3 shared with the host's other guests; 2026-12-07) NTA far + T0 near
   made the step 2.6x slower (2.59x at 100, 2.29x at 1400, 60 pairs, int8a8+kv4), and clflushopt on
   each line 1 KB behind the stream, to keep the late step's 77.7 MB of keys and values in the L3 for
   the next step, 1.57x and 1.47x: the late step's extra time over the early one's went from 2.73 to
   2.58 ms only, so the L3 kept little of them even then. */
/* A prefill's chunk on AVX2 without VNNI (widen: its products, not the stream, bound it) keeps
   4096/512: with 8192/1024, 256 rows x 8 products of 4096x1024 measured 1.04x on the Zen 4 (one
   run; this machine's noise is +-2 %), and there is nothing to gain. */
#define PREFILL_PREFETCH_L2_BYTES 4096
#define PREFILL_PREFETCH_L1_BYTES 512

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
   line at a time (w: the next step's weights; l2, l1: the distances in bytes, constants). */
static inline __attribute__((always_inline)) void prefetch_at(const int8_t *w, const int l2, const int l1) {
    for (int line = 0; line < STEP_BYTES / 64; line++) {
        __builtin_prefetch((const char *)w + l2 + 64 * line, 0, 2);
        __builtin_prefetch((const char *)w + l1 + 64 * line, 0, 3);
    }
    if (STEP_BYTES < 64) {
        __builtin_prefetch((const char *)w + l2, 0, 2);
        __builtin_prefetch((const char *)w + l1, 0, 3);
    }
}

static inline __attribute__((always_inline)) void prefetch_ahead(const int8_t *w) {
    prefetch_at(w, PREFETCH_L2_BYTES, PREFETCH_L1_BYTES);
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

#if defined(RIFFD_AVX2_MADD)
/* AVX2 without VNNI, a prefill's chunk of rows: the products themselves (one vpmaddwd and one vpaddd
   per 16 multiplies) are all that is left in the inner loop. tile() runs well below them there, for
   two reasons measured on Zen 4 (AVX2 build, one core, L1-resident data, 4 rows x 8 weight rows a
   step; vpmaddwd + vpaddd alone: 4.8 cycles a step, 83 % of two vpmaddwd a cycle):
   - each row's activations sit 2k bytes from the next row's, so a tile's four broadcasts hit the
     same L1 bank: 6.6 cycles a step at k = 1024 (2 KB apart), 11.2 at k = 4096 (8 KB apart);
   - the weights are widened again (vpmovsxbw) by every tile of rows that passes over the block.
   Here the chunk's rows are quantised into tiles of WIDE_ROWS rows interleaved step by step (one
   tile's broadcasts read 32 consecutive bytes: 5.8 cycles a step), and each block is widened to
   16 bits once per chunk, a slice of WIDE_STEPS steps at a time (16 KB: it stays in L1 while every
   tile passes over it; 5.3 cycles a step). The integer sums are those of tile(): exact in int32 over
   a slice (DOT_FLUSH_GROUPS steps), moved into float64 after each, so the bits are the same. */
#define WIDE_ROWS 4                 /* a tile's sums: 4 rows x 2 vectors, + 2 weight vectors + a broadcast + products: 16 ymm */
#define WIDE_STEPS DOT_FLUSH_GROUPS /* steps per widened slice: 256 steps of 8 rows x 4 inputs, 16 KB of int16 */

/* Quantise one row as quantize_row() does (the same q; with act8, as quantize_row8() does) into slot
   `slot` of a tile's interleaved layout: tile[s][slot] is the row's inputs 4s .. 4s + 3 as int16
   (8 bytes, one broadcast). 8-bit codes widened to int16 give the same exact integer sums through
   vpmaddwd as tile8's vpmaddubsw path, and dot_finish rounds the same exact integer to float once,
   as tile8 does: the same bits, at the 16-bit path's speed (tile8 spends a vpsignb, a vpmaddubsw, a
   vpmaddwd and a vpaddd per 32 products and row, and at many rows runs no faster). */
static float quantize_row_tiled(const float *x, int64_t k, int64_t *tile, int slot, uint8_t *row_scratch, int act8) {
    if (!act8) {
        float s = quantize_row(x, k, row_scratch);
        for (int64_t step = 0; step < k / DOT_GROUP; step++)
            __builtin_memcpy(tile + step * WIDE_ROWS + slot, row_scratch + 8 * step, 8);
        return s;
    }
    float s = quantize_row8(x, k, row_scratch);
    for (int64_t step = 0; step < k / DOT_GROUP; step++) {
        int16_t four[DOT_GROUP];
        for (int i = 0; i < DOT_GROUP; i++) four[i] = (int8_t)row_scratch[DOT_GROUP * step + i];
        __builtin_memcpy(tile + step * WIDE_ROWS + slot, four, 8);
    }
    return s;
}

typedef struct {
    const float *x;
    int64_t k;
    int rows;
    int64_t *tiles; /* [rows / WIDE_ROWS rounded up][k / DOT_GROUP][WIDE_ROWS] */
    float *x_scale;
    int act8; /* 8-bit codes (int8a8), widened */
} quantize_tiled_job;

/* Rows [begin, end) of x into their tiles (a padding row of a last, partial tile: zeros). */
static void quantize_rows_tiled(void *ctx, int64_t begin, int64_t end) {
    const quantize_tiled_job *j = ctx;
    const int64_t steps = j->k / DOT_GROUP;
    uint8_t row_scratch[2 * j->k];
    for (int64_t r = begin; r < end; r++) {
        int64_t *tile = j->tiles + (r / WIDE_ROWS) * steps * WIDE_ROWS;
        if (r < j->rows) {
            j->x_scale[r] = quantize_row_tiled(j->x + r * j->k, j->k, tile, (int)(r % WIDE_ROWS), row_scratch, j->act8);
        } else {
            for (int64_t step = 0; step < steps; step++) tile[step * WIDE_ROWS + r % WIDE_ROWS] = 0;
        }
    }
}

/* `count` steps of a block (packed int8, 32 bytes a step) sign-extended into `wide` (int16, 64 bytes
   a step: the two halves dot_load_w makes), asking ahead for the bytes after them from memory. */
static void widen(const int8_t *w, int64_t count, int16_t *wide) {
    for (int64_t s = 0; s < count; s++, w += STEP_BYTES) {
        if (s % STEPS_PER_LINE == 0) prefetch_at(w, PREFILL_PREFETCH_L2_BYTES, PREFILL_PREFETCH_L1_BYTES);
        dot_w wv = dot_load_w(w);
        _mm256_store_si256((__m256i *)(wide + 32 * s), wv.rows03);
        _mm256_store_si256((__m256i *)(wide + 32 * s + 16), wv.rows47);
    }
}

/* One tile's WIDE_ROWS rows against `count` widened steps, their exact int32 sums added to `sums`
   (float64; `first`: set them instead). `a`: the tile at the slice's first step. The step is written
   in asm: from intrinsics GCC folds each weight load into its vpmaddwd (8 loads a step instead of 2)
   and copies every sum between registers once a step, and the loop ran slower than tile()'s. */
static inline void wide_tile(const int64_t *a, int64_t count, const int16_t *wide, dot_sum *sums, int first) {
    __m256i s0l = vi_zero(), s0h = vi_zero(), s1l = vi_zero(), s1h = vi_zero(), s2l = vi_zero(), s2h = vi_zero(),
            s3l = vi_zero(), s3h = vi_zero(); /* row m's sums for weight rows 0-3 (l) and 4-7 (h) */
    if (count > 0) {
        const int16_t *w = wide;
        int64_t left = count;
        /* per row: its four inputs broadcast, times both weight vectors, added to its two sums */
#define WIDE_ROW(OFFSET, LOW, HIGH)                                                                               \
    "vpbroadcastq " #OFFSET "(%[a]), %%ymm2\n\t"                                                                    \
    "vpmaddwd %%ymm2, %%ymm0, %%ymm3\n\t"                                                                           \
    "vpmaddwd %%ymm2, %%ymm1, %%ymm4\n\t"                                                                           \
    "vpaddd %%ymm3, %[" #LOW "], %[" #LOW "]\n\t"                                                                   \
    "vpaddd %%ymm4, %[" #HIGH "], %[" #HIGH "]\n\t"
        __asm__("1:\n\t"
                "vmovdqa (%[w]), %%ymm0\n\t"
                "vmovdqa 32(%[w]), %%ymm1\n\t"
                WIDE_ROW(0, s0l, s0h) WIDE_ROW(8, s1l, s1h) WIDE_ROW(16, s2l, s2h) WIDE_ROW(24, s3l, s3h)
                "add $64, %[w]\n\t"
                "add $32, %[a]\n\t"
                "dec %[left]\n\t"
                "jnz 1b"
                : [w] "+r"(w), [a] "+r"(a), [left] "+r"(left), [s0l] "+x"(s0l), [s0h] "+x"(s0h), [s1l] "+x"(s1l),
                  [s1h] "+x"(s1h), [s2l] "+x"(s2l), [s2h] "+x"(s2h), [s3l] "+x"(s3l), [s3h] "+x"(s3h)
                :
                : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "memory", "cc");
#undef WIDE_ROW
    }
    const dot_acc acc[WIDE_ROWS] = {{s0l, s0h}, {s1l, s1h}, {s2l, s2h}, {s3l, s3h}};
    for (int m = 0; m < WIDE_ROWS; m++) sums[m] = dot_flush(first ? dot_sum_zero() : sums[m], acc[m]);
}

/* The block at output row n0 against every tile of the chunk, a widened slice at a time; `wide` and
   `sums` (one per tile row) are the calling thread's scratch. */
static void one_block_wide(const int64_t *tiles, int rows, int64_t k, const int8_t *packed, const int32_t *row_sums,
                           const float *scale, const float *x_scale, float *y, int64_t n, int64_t n0, int16_t *wide,
                           dot_sum *sums) {
    const int64_t steps = k / DOT_GROUP;
    const int tile_count = (rows + WIDE_ROWS - 1) / WIDE_ROWS;
    const int8_t *w = packed + n0 * k;
    for (int64_t s0 = 0; s0 < steps; s0 += WIDE_STEPS) {
        const int64_t count = steps - s0 < WIDE_STEPS ? steps - s0 : WIDE_STEPS;
        widen(w + s0 * STEP_BYTES, count, wide);
        for (int t = 0; t < tile_count; t++)
            wide_tile(tiles + (t * steps + s0) * WIDE_ROWS, count, wide, sums + t * WIDE_ROWS, s0 == 0);
    }
    vf block_scale = vf_load(scale + n0);
    for (int m = 0; m < rows; m++)
        vf_store(y + m * n + n0, vf_mul(dot_finish(sums[m], row_sums + n0), vf_mul(block_scale, vf_set1(x_scale[m]))));
}
#endif

#if defined(RIFFD_VNNI) && RIFFD_SIMD_BITS == 512 && defined(__AMX_TILE__) && defined(__AMX_INT8__) && \
    !defined(RIFFD_NO_AMX)
/* AMX (Intel Sapphire Rapids and later): the tile unit's byte products, for the same exact int32 sums.

   Where the CPU has it, a block goes through tdpbusd instead of vpdpbusd: one instruction multiplies
   up to 16 activation rows by 64 inputs of 16 weight rows (16 cycles whatever the rows, 5.1 ns on the
   2-core Xeon here), where VNNI takes one instruction a row per 4 inputs of 16 weight rows. At the 2
   rows of a lone guided stream VNNI's products already hide under the weights' read; from 6 rows (a
   long-form job's riding columns, batched streams, a prefill's chunks) they do not, and the tile
   unit's stay far under it. `python -m bench.native_matvec --rows 2,4,8,16 --threads 2` (musicgen-small's
   346 MB of int8, 2-core Intel Xeon with AVX-512 VNNI and AMX, built with and without -DRIFFD_NO_AMX,
   every row count through the tile unit): 16.4 against 17.2 ms at 2 rows, 17.2 / 18.7 at 4, 17.1 /
   23.5 at 8, 19.7 / 35.4 at 16. In the decode step itself it lost below 6 rows
   (`bench.step_ab --kernel int8`, 60 pairs: 1.058x at 2 rows and position 100, 1.061x at 1400, 1.016x
   with 2 riding rows), its attention and norms slower beside it too (the core's clock, presumably,
   under the tile unit's load): so fewer rows than AMX_MIN_ROWS keep VNNI.

   From 6 rows the tile path still takes 6-19 % longer than 2 rows' VNNI pass over the same weights,
   and neither the tile products nor their hold on the B tiles is why. Tried (2026-12-07, the same
   Xeon, 24 layers' qkv, out, fc1 and fc2: 288 MB): both planes in one A tile (rows loaded k bytes
   apart, so one product a half instead of two) with the B tiles alternating between two pairs, for up
   to 8 rows: 12.1-12.5 ms at 6 rows against 11.8 here, and no faster with a 2 MB matrix in L2 (64-67
   against 61 us per 4 MB). Splitting the block into halves, each a pass, was slower still (19.2
   against 17.2 ms at 10 rows over 346 MB). The limit is elsewhere (the tile loads, the tile unit's
   clock?): not found. Nor is it the tile loads' stream from memory: a block's first 2 rows by VNNI's
   vector loads (streaming and prefetching it as tile() does) and the rest on the tile unit from each
   2 KB while in L1 took 17.4 and 17.5 ms at 10 rows against 18.5 and 17.7 here (2 rows: 14.5-15.4),
   and a riding step the same (`bench.ride_columns --kernel int8 --columns 4 --riding 450`, bursts
   23.5 and 24.4 ms against 23.5 and 23.3); the same with the VNNI pass over the whole block first
   (block-level), slower: 20.6 and 21.1 ms (2026-12-07 04:40 UTC). Not kept.

   The packed layout is already the tile's: a block's 4-input group of 16 weight rows is 64
   consecutive bytes (packed[n / 32][k / 4][32][4]), so a B tile of 64 inputs is 16 groups read with a
   stride of 128 bytes, one per half of the block. The A tiles are the activation rows as VNNI reads
   them (the 16-bit path's high and low planes, or act8's codes): 64 bytes of each row, rows 2k (or k)
   bytes apart. The int32 sums are the same integers as VNNI's (exact, no overflow for MAX_K), and
   they go through the same float steps (dot_finish, dot8_finish), so every row's outputs are the
   same bits as without AMX. k must be a multiple of 64 (else VNNI); rows go 16 at a time.

   The OS must let a process use the tile registers (Linux: arch_prctl ARCH_REQ_XCOMP_PERM for
   XTILEDATA, asked once); where it refuses, VNNI. A call loads a tile configuration for its row count
   before its first tile instruction (again where the count changes) and releases the tiles when it
   is done: other code on the same thread (oneDNN's AMX kernels under PyTorch) configures and releases
   them too, so a configuration is never assumed to outlive the call that loaded it. */
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_ROWS 16         /* activation rows per A tile */
#define AMX_K 64            /* inputs per tile product */
#ifndef AMX_MIN_ROWS
#define AMX_MIN_ROWS 6 /* fewer rows keep VNNI (above) */
#endif
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) amx_config;

static int amx_permitted;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_ask(void) { amx_permitted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0; }

/* Whether this process may use the tile unit (asked of the OS once). */
static int amx_usable(void) {
    pthread_once(&amx_once, amx_ask);
    return amx_permitted;
}

/* Tiles 0-3: sums (high plane halves 0 and 1, low plane halves 0 and 1), `rows` x 16 int32; 4, 5: the
   activations' high and low planes, `rows` x 64 bytes; 6, 7: the block's halves, 16 groups x 64 bytes. */
static void amx_configure(int rows, int *configured) {
    if (*configured == rows) return;
    amx_config config = {0};
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = t < 6 ? (uint8_t)rows : 16;
    }
    /* GCC 12's _tile_loadconfig (amxtileintrin.h) tells the optimiser its ldtilecfg reads a pointer's
       8 bytes at `config`, not 64: where this is inlined, the stores of the widths and rows can be
       dropped as dead and ldtilecfg faults on the zeros left (it did in a variant of amx_block). This
       empty statement reads the whole struct, so every store stays. */
    __asm__ volatile("" : : "m"(config));
    _tile_loadconfig(&config);
    *configured = rows;
}

/* `rows` (at most AMX_ROWS) activation rows against the block at `w` (packed + n0 * k): their exact
   int32 sums into sums[plane][half][row][16]. `act`: the rows' first plane (each `stride` bytes after
   the last), the second `low` bytes after it (planes 2). `configured`: the rows the tiles are configured
   for (0: none), kept up to date. GCC 12's _tile_loadd declares no memory read at all, so what its tiles
   load must be written before a call the compiler cannot see into: the activations are quantised
   before the pool region that runs the blocks starts (riffd_parallel: other threads, through pthreads),
   and the weights are never written after packing. */
static void amx_sums(const uint8_t *act, int64_t stride, int64_t low, int planes, int rows, int prefetch, int64_t k,
                     const int8_t *w, int32_t sums[2][2][AMX_ROWS][16], int *configured) {
    amx_configure(rows, configured);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t j = 0; j < k; j += AMX_K, w += AMX_K * BLOCK_ROWS) {
        if (prefetch) /* as tile() asks, a step (STEP_BYTES) at a time over the 64 inputs' 2 KB */
            for (int step = 0; step < AMX_K / DOT_GROUP; step++) prefetch_ahead(w + step * STEP_BYTES);
        _tile_loadd(6, w, BLOCK_ROWS * DOT_GROUP);
        _tile_loadd(7, w + 16 * DOT_GROUP, BLOCK_ROWS * DOT_GROUP);
        _tile_loadd(4, act + j, stride);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        if (planes == 2) {
            _tile_loadd(5, act + low + j, stride);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
    }
    _tile_stored(0, sums[0][0], 64);
    _tile_stored(1, sums[0][1], 64);
    if (planes == 2) {
        _tile_stored(2, sums[1][0], 64);
        _tile_stored(3, sums[1][1], 64);
    }
}

/* one_block() and one_block8() through the tile unit: the same outputs, bit for bit. */
static void amx_block(const uint8_t *act, int rows, int act8, int64_t k, const int8_t *packed,
                      const int32_t *row_sums, const float *scale, const float *x_scale, float *y, int64_t n,
                      int64_t n0, int *configured) {
    int32_t sums[2][2][AMX_ROWS][16] __attribute__((aligned(64)));
    const int64_t stride = act8 ? k : 2 * k;
    for (int m0 = 0; m0 < rows; m0 += AMX_ROWS) {
        const int count = rows - m0 < AMX_ROWS ? rows - m0 : AMX_ROWS;
        amx_sums(act + m0 * stride, stride, k, act8 ? 1 : 2, count, m0 == 0, k, packed + n0 * k, sums,
                 configured);
        for (int m = 0; m < count; m++) {
            vf xs = vf_set1(x_scale[m0 + m]);
            for (int u = 0; u < 2; u++) {
                const int64_t r = n0 + u * VL;
                vf total = act8 ? vi_to_float(dot8_finish(vi_load(sums[0][u][m]), row_sums + r))
                                : dot_finish((dot_sum){vi_load(sums[0][u][m]), vi_load(sums[1][u][m])}, row_sums + r);
                vf_store(y + (m0 + m) * n + r, vf_mul(total, vf_mul(vf_load(scale + r), xs)));
            }
        }
    }
}

int riffd_int8_tile_rows(void) { return amx_usable() ? AMX_MIN_ROWS : 0; }
#define RIFFD_AMX 1
#else
int riffd_int8_tile_rows(void) { return 0; }
#define RIFFD_AMX 0
#endif

typedef struct {
    const uint8_t *act;
    int rows;
    int64_t k;
    const int8_t *packed;
    const int32_t *row_sums;
    const float *scale, *x_scale;
    float *y;
    int64_t n;
    int act8;  /* rows of 8-bit activations (one_block8), else 16-bit (one_block) */
    int tiled; /* act holds WIDE_ROWS-row tiles (one_block_wide) */
    int gelu;  /* GELU on the outputs (riffd_int8_matvec_gelu) */
} blocks_job;

#ifdef RIFFD_KERNELS
/* GELU on a block's outputs of every row, while the thread that wrote them has them in L1: the same
   vectors, so the same bits, as riffd_gelu over the whole product after it. */
static void gelu_block(float *y, int rows, int64_t n, int64_t n0) {
    for (int m = 0; m < rows; m++)
        for (int64_t r = n0; r < n0 + BLOCK_ROWS; r += VL) vf_store(y + m * n + r, gelu_v(vf_load(y + m * n + r)));
}
#endif

/* Blocks [begin, end) of one call, on one thread. */
static void blocks(void *ctx, int64_t begin, int64_t end) {
    const blocks_job *j = ctx;
#if defined(RIFFD_AVX2_MADD)
    if (j->tiled) {
        int16_t wide[WIDE_STEPS * 32] __attribute__((aligned(32)));
        dot_sum sums[MAX_ROWS_PER_READ + WIDE_ROWS];
        for (int64_t b = begin; b < end; b++) {
            one_block_wide((const int64_t *)j->act, j->rows, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y,
                           j->n, b * BLOCK_ROWS, wide, sums);
            if (j->gelu) gelu_block(j->y, j->rows, j->n, b * BLOCK_ROWS);
        }
        return;
    }
#endif
#if RIFFD_AMX
    if (j->rows >= AMX_MIN_ROWS && j->k % AMX_K == 0 && amx_usable()) {
        int configured = 0;
        for (int64_t b = begin; b < end; b++) {
            amx_block(j->act, j->rows, j->act8, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y, j->n,
                      b * BLOCK_ROWS, &configured);
            if (j->gelu) gelu_block(j->y, j->rows, j->n, b * BLOCK_ROWS);
        }
        if (configured) _tile_release();
        return;
    }
#endif
    for (int64_t b = begin; b < end; b++) {
        if (j->act8)
            one_block8(j->act, j->rows, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y, j->n, b * BLOCK_ROWS);
        else
            one_block(j->act, j->rows, j->k, j->packed, j->row_sums, j->scale, j->x_scale, j->y, j->n, b * BLOCK_ROWS);
        if (j->gelu) gelu_block(j->y, j->rows, j->n, b * BLOCK_ROWS);
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

/* Whether a chunk of `rows` goes through one_block_wide (AVX2 without VNNI, a prefill's chunk: more
   rows than a decode step's; 8-bit activations too, widened). */
static int tiled_rows(int rows) {
#if defined(RIFFD_AVX2_MADD)
    return rows > ROWS_PER_READ;
#else
    (void)rows;
    return 0;
#endif
}

/* Bytes a quantised row takes in the chunk's buffer: 2 per input (8-bit codes too where tiles widen
   them to 16 bits), else 1 for 8-bit codes. */
static int64_t buffer_row_bytes(int64_t k, int act8) {
#if defined(RIFFD_AVX2_MADD)
    (void)act8;
    return 2 * k;
#else
    return act8 ? k : 2 * k;
#endif
}

/* Rows of activations a chunk of `rows` takes room for: whole tiles where it may go tiled. */
static int64_t padded_rows(int64_t rows) {
#if defined(RIFFD_AVX2_MADD)
    if (rows > ROWS_PER_READ) return (rows + WIDE_ROWS - 1) / WIDE_ROWS * WIDE_ROWS;
#endif
    return rows;
}

/* matvec_rows' loop: `chunk` rows at a time quantised into `work` (chunk rows of activations, rounded
   up to whole tiles where they go tiled, then their scales), then every block against them on the
   pool. */
static void rows_in_chunks(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                           const float *scale, float *y, int64_t n, int threads, int act8, int gelu, int64_t chunk,
                           uint8_t *work) {
    const int64_t row_bytes = buffer_row_bytes(k, act8);
    uint8_t *act = work;
    float *x_scale = (float *)(work + padded_rows(chunk) * row_bytes);
    for (int64_t m0 = 0; m0 < m; m0 += chunk) {
        int rows = (int)((m - m0) < chunk ? (m - m0) : chunk);
        const int tiled = tiled_rows(rows);
#if defined(RIFFD_AVX2_MADD)
        if (tiled) { /* a prefill's chunk: on every thread */
            quantize_tiled_job quantize = {x + m0 * k, k, rows, (int64_t *)act, x_scale, act8};
            riffd_parallel(padded_rows(rows), 0, threads, quantize_rows_tiled, &quantize);
        } else
#endif
        {
            quantize_job quantize = {x + m0 * k, k, act, x_scale, act8};
            if (rows > ROWS_PER_READ) /* a prefill's chunk: on every thread */
                riffd_parallel(rows, 0, threads, quantize_rows, &quantize);
            else
                quantize_rows(&quantize, 0, rows);
        }
        blocks_job job = {act, rows, k, packed, row_sums, scale, x_scale, y + m0 * n, n, act8, tiled, gelu};
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
   bound by its products either way (see one_block_wide). Which rows share a chunk changes no bits:
   rows are independent. */
#ifndef PREFILL_ACT_BYTES
#define PREFILL_ACT_BYTES (256 * 1024)
#endif

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
                        const float *scale, float *y, int64_t n, int threads, int act8, int gelu) {
    const int64_t row_bytes = buffer_row_bytes(k, act8);
    const int64_t chunk = rows_per_read(m, row_bytes);
    /* a decode step's rows on the stack (no allocation per matrix); a prefill's chunk on the heap */
    uint8_t *work = chunk > ROWS_PER_READ ? malloc((size_t)(padded_rows(chunk) * row_bytes) + sizeof(float) * (size_t)chunk)
                                          : NULL;
    if (work) {
        rows_in_chunks(x, m, k, packed, row_sums, scale, y, n, threads, act8, gelu, chunk, work);
        free(work);
        return;
    }
    const int64_t small = m < ROWS_PER_READ ? m : ROWS_PER_READ; /* also where malloc failed */
    uint8_t stack[small * row_bytes + (int64_t)sizeof(float) * small];
    rows_in_chunks(x, m, k, packed, row_sums, scale, y, n, threads, act8, gelu, small, stack);
}

/* x [m][k] float32; packed int8 as above; row_sums [n] int32 (sum of each weight row); scale [n];
   y [m][n] float32; `threads` as torch.get_num_threads(). Needs k % COL_MULTIPLE == 0, k <= MAX_K,
   n % BLOCK_ROWS == 0 (checked by the caller). */
void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 0, 0);
}

/* riffd_int8_matvec with each activation row quantised to signed 8 bits (the int8a8 mode): the
   same arguments and packed weights. */
void riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                         const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 1, 0);
}

/* The two above with exact GELU on y (riffd_gelu's bits): the decode step's fc1, whose GELU runs on
   each block's outputs as they are written, on the pool's threads, instead of a serial pass over
   the whole product after it. */
void riffd_int8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                            const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 0, 1);
}
void riffd_int8a8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                              const float *scale, float *y, int64_t n, int threads) {
    matvec_rows(x, m, k, packed, row_sums, scale, y, n, threads, 1, 1);
}

/* A decode step's product in pieces, for a pool region that does more than the product
   (decoder_step.c: a head's query outputs and then its attention, one item of one region): the rows
   quantised once on the calling thread, as matvec_rows quantises a decode step's rows, then any
   whole blocks of outputs on any thread, each block as blocks() computes it. The same bits as
   riffd_int8_matvec / riffd_int8a8_matvec. The prepared rows: their codes, then their scales. */
int64_t riffd_int8_prepared_bytes(const riffd_int8 *w, int64_t rows) {
    if (w->int4_group || rows < 1 || rows > ROWS_PER_READ || w->cols % COL_MULTIPLE || w->cols > MAX_K) return 0;
    return rows * (w->act8 ? w->cols : 2 * w->cols) + (int64_t)sizeof(float) * rows;
}

void riffd_int8_prepare(const riffd_int8 *w, const float *x, int64_t rows, uint8_t *prepared) {
    const int64_t row_bytes = w->act8 ? w->cols : 2 * w->cols;
    quantize_job quantize = {x, w->cols, prepared, (float *)(void *)(prepared + rows * row_bytes), (int)w->act8};
    quantize_rows(&quantize, 0, rows);
}

void riffd_int8_outputs(const riffd_int8 *w, const uint8_t *prepared, int64_t rows, int64_t first, int64_t count,
                        float *y) {
    const int64_t row_bytes = w->act8 ? w->cols : 2 * w->cols;
    blocks_job job = {prepared, (int)rows, w->cols, w->packed, w->row_sums, w->scales,
                      (const float *)(const void *)(prepared + rows * row_bytes), y, w->rows, (int)w->act8, 0, 0};
    blocks(&job, first / BLOCK_ROWS, (first + count) / BLOCK_ROWS);
}
#else
/* Built for a CPU without AVX2: the caller uses PyTorch's int8 kernel instead. */
int riffd_int8_supported(void) { return 0; }
int riffd_int8_tile_rows(void) { return 0; }
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
void riffd_int8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                            const float *scale, float *y, int64_t n, int threads) {
    riffd_int8_matvec(x, m, k, packed, row_sums, scale, y, n, threads);
}
void riffd_int8a8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                              const float *scale, float *y, int64_t n, int threads) {
    riffd_int8_matvec(x, m, k, packed, row_sums, scale, y, n, threads);
}
int64_t riffd_int8_prepared_bytes(const riffd_int8 *w, int64_t rows) { (void)w; (void)rows; return 0; }
void riffd_int8_prepare(const riffd_int8 *w, const float *x, int64_t rows, uint8_t *prepared) {
    (void)w; (void)x; (void)rows; (void)prepared;
}
void riffd_int8_outputs(const riffd_int8 *w, const uint8_t *prepared, int64_t rows, int64_t first, int64_t count,
                        float *y) {
    (void)w; (void)prepared; (void)rows; (void)first; (void)count; (void)y;
}
#endif
