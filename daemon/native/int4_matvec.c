/* int4 weights with a scale per group of inputs, times a few float32 activation rows.

   y[m][n] = sum_g scale[n][g] * sum_{k in g} x[m][k] * (code[n][k] - 8),   codes 0..15

   Half of int8's bytes: for a machine whose memory cannot stream int8 weights fast enough for
   real time. Activations are quantised per group of the weights' inputs to signed bytes, a scale
   each (max|x| / 127 over the group): their rounding (under 0.4 % of the group's largest value) is
   small beside the weights' own (4 bits: some 8 % of their spread), and one byte per input halves
   the products int8_matvec.c needs for its 16-bit activations, which is what lets int4 run at
   memory speed rather than at the speed of the dot-product unit. The 0..15 codes are the dot
   product's first operand, which every instruction set reads alike (vpdpbusd's unsigned bytes,
   sdot's signed ones, maddubs without saturating: 15 * 127 * 2 < 32767). A group's sum is exact
   in int32; the -8 comes off as 8 * (the group's sum of activation codes); then the group's sum is
   scaled in float by the weights' and the activations' scales.

   Packed layout, for blocks of 32 output rows (int8_matvec.c's block, one sequential stream):
     packed[n / 32][k / group] = { codes[group / 8][32 rows][4 bytes], scales[32] (bfloat16) }
   where byte i of a row in code chunk p holds input 8p + i in its low nibble and input 8p + 4 + i
   in its high nibble: a vector load gives VL rows' codes for two steps of four inputs, whatever
   VL is. A group is 16 * group + 64 bytes. */

#include <stdint.h>

#include "riffd_native.h"

#define INT4_BLOCK_ROWS 32
#define INT4_MAX_ROWS 4 /* activation rows served by one pass over the weights */
#define INT4_MAX_K 16384
#define INT4_PREFETCH_L2_BYTES 4096
#define INT4_PREFETCH_L1_BYTES 512

int riffd_int4_block_rows(void) { return INT4_BLOCK_ROWS; }
int riffd_int4_max_k(void) { return INT4_MAX_K; }
/* Group sizes the kernel takes: a multiple of 16 (the quantiser's widest vector), at most 64 (exact sums). */
int riffd_int4_group_ok(int64_t group) { return group >= 16 && group <= 64 && group % 16 == 0; }
int64_t riffd_int4_group_bytes(int64_t group) { return 16 * group + 2 * INT4_BLOCK_ROWS; }

static float bf16_to_float(uint16_t bits) {
    union { uint32_t u; float f; } v = {(uint32_t)bits << 16};
    return v.f;
}

/* The weights as float32, out [n][k]: (code - 8) * scale, exactly (a 4-bit integer times a
   bfloat16 is a float). For products of many rows (a prefill), which are faster as one matrix
   product over these than as passes of the kernel. Plain C: any CPU. */
typedef struct {
    const uint8_t *packed;
    int64_t k, group;
    float *out;
} dequantize_job;

/* Blocks [begin, end) of riffd_int4_dequantize, on one thread. */
static void dequantize_blocks(void *ctx, int64_t begin, int64_t end) {
    const dequantize_job *j = ctx;
    const uint8_t *packed = j->packed;
    const int64_t k = j->k, group = j->group, groups = k / group, group_bytes = riffd_int4_group_bytes(group);
    float *out = j->out;
    for (int64_t b = begin; b < end; b++)
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t *chunk = packed + (b * groups + g) * group_bytes;
            const uint16_t *scales = (const uint16_t *)(chunk + 16 * group);
            for (int64_t r = 0; r < INT4_BLOCK_ROWS; r++) {
                float scale = bf16_to_float(scales[r]), *row = out + (b * INT4_BLOCK_ROWS + r) * k + g * group;
                for (int64_t p = 0; p < group / 8; p++)
                    for (int i = 0; i < 4; i++) {
                        uint8_t byte = chunk[p * 4 * INT4_BLOCK_ROWS + r * 4 + i];
                        row[8 * p + i] = (float)((byte & 15) - 8) * scale;
                        row[8 * p + 4 + i] = (float)((byte >> 4) - 8) * scale;
                    }
            }
        }
}

void riffd_int4_dequantize(const uint8_t *packed, int64_t n, int64_t k, int64_t group, float *out, int threads) {
    dequantize_job job = {packed, k, group, out};
    riffd_parallel(n / INT4_BLOCK_ROWS, 0, threads, dequantize_blocks, &job);
}

#ifdef RIFFD_KERNELS

#define INT4_PASS_ROWS (2 * VL)

/* One activation row to signed bytes, a scale and a sum of codes per group: x ~ scale * code.
   k % group == 0, group % VL == 0. */
static void quantize_row_groups(const float *x, int64_t k, int64_t group, int8_t *codes, float *scales,
                                int32_t *code_sums) {
    const vi lo_limit = vi_set1(-127), hi_limit = vi_set1(127);
    for (int64_t g = 0; g < k / group; g++) {
        const float *xg = x + g * group;
        vf amax = vf_zero();
        for (int64_t j = 0; j < group; j += VL) amax = vf_max(amax, vf_abs(vf_load(xg + j)));
        float largest = vf_largest(amax);
        float s = largest > 0.0f ? largest / 127.0f : 1.0f;
        vf inv = vf_set1(1.0f / s);
        vi sum = vi_zero();
        for (int64_t j = 0; j < group; j += VL) {
            vi q = vi_min(vi_max(vf_to_int(vf_mul(vf_load(xg + j), inv)), lo_limit), hi_limit);
            vi_store_bytes(codes + g * group + j, q);
            sum = vi_add(sum, q);
        }
        scales[g] = largest > 0.0f ? s : 0.0f;
        code_sums[g] = (int32_t)vf_sum(vi_to_float(sum)); /* |sum| <= 64 * 127: exact in float */
    }
}

/* INT4_PASS_ROWS outputs from r0 (in the block starting at n0) against `rows` activation rows. */
static inline __attribute__((always_inline)) void int4_block(const int8_t *act, const float *act_scales,
                                                             const int32_t *act_sums, const int rows, int64_t k,
                                                             int64_t group, const uint8_t *packed, float *y,
                                                             int64_t n, int64_t n0, int64_t r0) {
    const int64_t groups = k / group, group_bytes = riffd_int4_group_bytes(group);
    const uint8_t *stream = packed + (n0 / INT4_BLOCK_ROWS) * groups * group_bytes;
    const int64_t lane0 = r0 - n0; /* first row of this pass inside the block */
    const vi nibble = vi_set1(0x0F0F0F0F);
    vf acc[INT4_MAX_ROWS][2];
    for (int m = 0; m < INT4_MAX_ROWS; m++) acc[m][0] = acc[m][1] = vf_zero();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *chunk = stream + g * group_bytes;
        vi sums[INT4_MAX_ROWS][2];
        for (int m = 0; m < INT4_MAX_ROWS; m++) sums[m][0] = sums[m][1] = vi_zero();
        for (int64_t p = 0; p < group / 8; p++) {
            const uint8_t *codes = chunk + p * 4 * INT4_BLOCK_ROWS + lane0 * 4;
            __builtin_prefetch(codes + INT4_PREFETCH_L2_BYTES, 0, 2);
            __builtin_prefetch(codes + INT4_PREFETCH_L1_BYTES, 0, 3);
            vi first[2], second[2];
            for (int u = 0; u < 2; u++) {
                vi both = vi_load(codes + u * VL * 4);
                first[u] = vi_and(both, nibble);                      /* inputs 8p .. 8p + 3 */
                second[u] = vi_and(vi_shift_right(both, 4), nibble);  /* inputs 8p + 4 .. 8p + 7 */
            }
            const int64_t j = g * group + 8 * p;
            for (int m = 0; m < rows; m++) {
                int32_t four[2];
                __builtin_memcpy(four, act + m * k + j, 8);
                vi a0 = vi_set1(four[0]), a1 = vi_set1(four[1]);
                for (int u = 0; u < 2; u++) sums[m][u] = vi_dot_u7s8(vi_dot_u7s8(sums[m][u], first[u], a0), second[u], a1);
            }
        }
        const uint16_t *scales = (const uint16_t *)(chunk + 16 * group) + lane0;
        for (int u = 0; u < 2; u++) {
            vf scale = vf_load_bf16(scales + u * VL);
            for (int m = 0; m < rows; m++) {
                /* sum code * (w - 8) = sums - 8 * sum(code): exact in int32 */
                vi exact = vi_sub(sums[m][u], vi_set1(8 * act_sums[m * groups + g]));
                acc[m][u] = vf_fmadd(vi_to_float(exact), vf_mul(scale, vf_set1(act_scales[m * groups + g])), acc[m][u]);
            }
        }
    }
    for (int m = 0; m < rows; m++)
        for (int u = 0; u < 2; u++) vf_store(y + m * n + r0 + u * VL, acc[m][u]);
}

typedef struct {
    const int8_t *act;
    const float *act_scales;
    const int32_t *act_sums;
    int rows;
    int64_t k, group;
    const uint8_t *packed;
    float *out;
    int64_t n;
} passes_job;

/* Passes [begin, end) of one riffd_int4_matvec call (INT4_PASS_ROWS outputs each), on one thread. */
static void int4_passes(void *ctx, int64_t begin, int64_t end) {
    const passes_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        int64_t r0 = i * INT4_PASS_ROWS, n0 = r0 - r0 % INT4_BLOCK_ROWS;
        switch (j->rows) {
        case 1: int4_block(j->act, j->act_scales, j->act_sums, 1, j->k, j->group, j->packed, j->out, j->n, n0, r0); break;
        case 2: int4_block(j->act, j->act_scales, j->act_sums, 2, j->k, j->group, j->packed, j->out, j->n, n0, r0); break;
        case 3: int4_block(j->act, j->act_scales, j->act_sums, 3, j->k, j->group, j->packed, j->out, j->n, n0, r0); break;
        default: int4_block(j->act, j->act_scales, j->act_sums, 4, j->k, j->group, j->packed, j->out, j->n, n0, r0); break;
        }
    }
}

/* x [m][k] float32; packed as above; y [m][n] float32. Needs n % 32 == 0, k % group == 0,
   riffd_int4_group_ok(group), k <= INT4_MAX_K (checked by the caller). */
void riffd_int4_matvec(const float *x, int64_t m, int64_t k, int64_t group, const uint8_t *packed, float *y, int64_t n,
                       int threads) {
    const int64_t groups = k / group;
    int8_t act[INT4_MAX_ROWS * k];
    float act_scales[INT4_MAX_ROWS * groups];
    int32_t act_sums[INT4_MAX_ROWS * groups];
    const int64_t passes = n / INT4_PASS_ROWS;
    for (int64_t m0 = 0; m0 < m; m0 += INT4_MAX_ROWS) {
        int rows = (int)((m - m0) < INT4_MAX_ROWS ? (m - m0) : INT4_MAX_ROWS);
        for (int r = 0; r < rows; r++)
            quantize_row_groups(x + (m0 + r) * k, k, group, act + r * k, act_scales + r * groups, act_sums + r * groups);
        passes_job job = {act, act_scales, act_sums, rows, k, group, packed, y + m0 * n, n};
        riffd_parallel(passes, 0, threads, int4_passes, &job);
    }
}
#else
void riffd_int4_matvec(const float *x, int64_t m, int64_t k, int64_t group, const uint8_t *packed, float *y, int64_t n,
                       int threads) {
    (void)x; (void)m; (void)k; (void)group; (void)packed; (void)y; (void)n; (void)threads;
}
#endif
