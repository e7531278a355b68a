/* A condition folded into one layer's cross-attention projections (decoder_step.c's cross_folded
   reads the result; daemon/models/musicgen/folded_condition.py says why and calls this).

   scores[h * slots + t][:] = sum_j keys[h][t][j] * W_q[h * head_dim + j][:] / sqrt(head_dim)
   mix[:][h * slots + t]    = sum_j values[h][t][j] * W_o[:][h * head_dim + j]

   Both are products of the condition's few rows with the int8 projections' codes, head by head,
   so they go through int8_matvec.c's kernel (its rows quantised to 16 bits, exact integer sums):
   the query weights head by head transposed (`queries_t`: [heads * hidden][head_dim], unit scales;
   W_q's row scales go into the keys' coefficients instead) and the output weights head by head
   (`outputs_h`: [heads * hidden][head_dim], W_o's row scales). In float32 through PyTorch, the
   same products took 68 ms for an 8-token condition and 174 ms for 41 tokens (musicgen-small's 24
   layers, 2-core Intel Xeon), on the path to a job's first sound. Each result is then rounded to
   int8 a row at a time, with a scale each, into the kernel's packed layout. Padding slots (t from
   cross_len to slots) are zero. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "riffd_native.h"

#ifdef RIFFD_KERNELS

/* matrix [rows][cols] as int8 codes round(x / s), s = max|row| / 127 (x times 1 / s, to nearest,
   ties to even: the same float steps on every branch), in int8_matvec.c's layout
   packed[rows / B][cols / G][B][G], with each row's code sum and scale (a row's codes in order first,
   then spread a group at a time). Rows [first, end); cols % VL == 0. */
static void pack_rows(const float *matrix, int64_t first, int64_t end, int64_t cols, int8_t *packed,
                      int32_t *row_sums, float *scales) {
    const int64_t block = riffd_int8_block_rows(), group = riffd_int8_group();
    int8_t codes[cols];
    for (int64_t r = first; r < end; r++) {
        const float *row = matrix + r * cols;
        vf amax = vf_zero();
        for (int64_t c = 0; c < cols; c += VL) amax = vf_max(amax, vf_abs(vf_load(row + c)));
        const float largest = vf_largest(amax), scale = largest > 0.0f ? largest / 127.0f : 1.0f;
        const vf inverse = vf_set1(1.0f / scale);
        for (int64_t c = 0; c < cols; c += VL)
            vi_store_bytes(codes + c, vi_min(vi_max(vf_to_int(vf_mul(vf_load(row + c), inverse)), vi_set1(-127)),
                                             vi_set1(127)));
        int32_t sum = 0;
        for (int64_t c = 0; c < cols; c++) sum += codes[c];
        int8_t *first_group = packed + (r / block) * block * cols + (r % block) * group;
        for (int64_t c = 0; c < cols; c += group)
            __builtin_memcpy(first_group + (c / group) * block * group, codes + c, (size_t)group);
        row_sums[r] = sum;
        scales[r] = scale;
    }
}

/* Head h's rows of a [heads * hidden][head_dim] per-head matrix, as a projection of its own. */
static riffd_int8 head_rows(const riffd_int8 *w, int64_t h, int64_t hidden) {
    riffd_int8 head = *w;
    head.packed = w->packed + h * hidden * w->cols;
    head.row_sums = w->row_sums + h * hidden;
    head.scales = w->scales + h * hidden;
    head.rows = hidden;
    return head;
}

/* One layer's fold, its heads and rows handed out on the pool (a region for each pass below). */
typedef struct {
    const riffd_int8 *queries_t, *outputs_h;
    const float *query_scales, *keys, *values;
    int64_t heads, head_dim, hidden, cross_len, slots, entries;
    float *folded;  /* [entries][hidden] (scores), then [hidden][entries] (mix) */
    float *scratch; /* per head: coefficients [cross_len][head_dim], then its output [cross_len][hidden] */
    int8_t *packed;
    int32_t *row_sums;
    float *scales;
    int64_t cols; /* of the matrix being packed */
} fold_job;

static float *head_scratch(const fold_job *j, int64_t h) {
    return j->scratch + h * j->cross_len * (j->head_dim + j->hidden);
}

/* Heads [begin, end) of the scores: their keys' coefficients (W_q's row scales and 1 / sqrt(head_dim) in
   them) times the head's transposed query codes, into the head's rows; padding rows zero. */
static void score_heads(void *ctx, int64_t begin, int64_t end) {
    const fold_job *j = ctx;
    const int64_t d = j->head_dim, hidden = j->hidden, t_count = j->cross_len;
    const float root = sqrtf((float)d);
    for (int64_t h = begin; h < end; h++) {
        float *coefficients = head_scratch(j, h);
        for (int64_t t = 0; t < t_count; t++)
            for (int64_t i = 0; i < d; i++)
                coefficients[t * d + i] = j->keys[(h * t_count + t) * d + i] * j->query_scales[h * d + i] / root;
        const riffd_int8 w = head_rows(j->queries_t, h, hidden);
        float *rows = j->folded + h * j->slots * hidden;
        riffd_int8_matvec(coefficients, t_count, d, w.packed, w.row_sums, w.scales, rows, hidden, 1);
        for (int64_t i = t_count * hidden; i < j->slots * hidden; i++) rows[i] = 0.0f;
    }
}

/* Heads [begin, end) of the mix: the head's values times its output codes, each output row's slots of
   the head written into that row (padding slots zero). */
static void mix_heads(void *ctx, int64_t begin, int64_t end) {
    const fold_job *j = ctx;
    const int64_t d = j->head_dim, hidden = j->hidden, t_count = j->cross_len;
    for (int64_t h = begin; h < end; h++) {
        float *out = head_scratch(j, h) + t_count * d;
        const riffd_int8 w = head_rows(j->outputs_h, h, hidden);
        riffd_int8_matvec(j->values + h * t_count * d, t_count, d, w.packed, w.row_sums, w.scales, out, hidden, 1);
        for (int64_t row = 0; row < hidden; row++) {
            float *to = j->folded + row * j->entries + h * j->slots;
            for (int64_t t = 0; t < t_count; t++) to[t] = out[t * hidden + row];
            for (int64_t t = t_count; t < j->slots; t++) to[t] = 0.0f;
        }
    }
}

static void pack_part(void *ctx, int64_t begin, int64_t end) {
    const fold_job *j = ctx;
    pack_rows(j->folded, begin, end, j->cols, j->packed, j->row_sums, j->scales);
}

/* keys, values: [heads][cross_len][head_dim] float32. scores_*: the folded scores [heads * slots][hidden];
   mix_*: the folded mix [hidden][heads * slots]. `work`: riffd_fold_work_floats of scratch. Returns 0, or
   -1 where the shapes do not fit the kernel (nothing written). */
int riffd_fold_condition(const riffd_int8 *queries_t, const riffd_int8 *outputs_h, const float *query_scales,
                         const float *keys, const float *values, int64_t heads, int64_t head_dim, int64_t cross_len,
                         int64_t slots, int8_t *scores_packed, int32_t *scores_sums, float *scores_scales,
                         int8_t *mix_packed, int32_t *mix_sums, float *mix_scales, float *work, int threads) {
    const int64_t hidden = heads * head_dim, entries = heads * slots;
    if (cross_len < 1 || slots < cross_len || queries_t->cols != head_dim || outputs_h->cols != head_dim
        || queries_t->rows != heads * hidden || outputs_h->rows != heads * hidden
        || entries % riffd_int8_block_rows() || entries % riffd_int8_col_multiple())
        return -1;
    fold_job job = {queries_t, outputs_h, query_scales, keys, values, heads, head_dim, hidden, cross_len, slots,
                    entries, work, work + entries * hidden, scores_packed, scores_sums, scores_scales, hidden};
    const int64_t block = riffd_int8_block_rows();
    riffd_parallel(heads, 1, threads, score_heads, &job);
    riffd_parallel(entries, block, threads, pack_part, &job);
    riffd_parallel(heads, 1, threads, mix_heads, &job);
    job.packed = mix_packed, job.row_sums = mix_sums, job.scales = mix_scales, job.cols = entries;
    riffd_parallel(hidden, block, threads, pack_part, &job);
    return 0;
}

int64_t riffd_fold_work_floats(int64_t heads, int64_t head_dim, int64_t cross_len, int64_t slots) {
    const int64_t hidden = heads * head_dim;
    return heads * slots * hidden + heads * cross_len * (head_dim + hidden);
}
#else
int riffd_fold_condition(const riffd_int8 *queries_t, const riffd_int8 *outputs_h, const float *query_scales,
                         const float *keys, const float *values, int64_t heads, int64_t head_dim, int64_t cross_len,
                         int64_t slots, int8_t *scores_packed, int32_t *scores_sums, float *scores_scales,
                         int8_t *mix_packed, int32_t *mix_sums, float *mix_scales, float *work, int threads) {
    (void)queries_t; (void)outputs_h; (void)query_scales; (void)keys; (void)values; (void)heads; (void)head_dim;
    (void)cross_len; (void)slots; (void)scores_packed; (void)scores_sums; (void)scores_scales; (void)mix_packed;
    (void)mix_sums; (void)mix_scales; (void)work; (void)threads;
    return -1;
}
int64_t riffd_fold_work_floats(int64_t heads, int64_t head_dim, int64_t cross_len, int64_t slots) {
    (void)heads; (void)head_dim; (void)cross_len; (void)slots;
    return 0;
}
#endif
