/* Declarations shared by riffd's native kernels (one library built from every .c file here).
   The structs are mirrored by ctypes in daemon/native/decoder_step.py, which checks every size and
   field offset against riffd_struct_size / riffd_field_offset at load: keep the two in step. */

#ifndef RIFFD_NATIVE_H
#define RIFFD_NATIVE_H

#include <stdint.h>

#include "simd.h" /* RIFFD_KERNELS where the CPU has what the kernels need */

/* A projection's weights [rows][cols]: int8 in int8_matvec.c's packed block layout (int4_group 0),
   or int4 in int4_matvec.c's (int4_group: inputs per scale; row_sums and scales unused, NULL).
   act8 (int8 only): its activations are quantised to 8 bits (riffd_int8a8_matvec), else 16. */
typedef struct {
    const int8_t *packed;
    const int32_t *row_sums;
    const float *scales;
    int64_t rows, cols;
    int64_t int4_group;
    int64_t act8;
} riffd_int8;

typedef struct {
    const float *weight, *bias;
} riffd_norm;

/* ---- The batched step: a model (weights only) and a batch of rows, each with its own caches. */

/* One pre-norm decoder layer's weights: self-attention, cross-attention (cross_q.packed NULL: none,
   as in melody checkpoints), MLP. */
typedef struct {
    riffd_norm self_norm;
    riffd_int8 qkv, self_out;
    riffd_norm cross_norm;
    riffd_int8 cross_q, cross_out;
    riffd_norm ffn_norm;
    riffd_int8 fc1, fc2;
} riffd_layer_weights;

typedef struct {
    int64_t hidden, heads, head_dim, ffn, layers; /* head_dim % 16 == 0 */
    float eps;
    const riffd_layer_weights *layer; /* [layers] */
    riffd_norm final_norm;
    riffd_int8 lm_heads;
} riffd_model;

/* One activation row's caches in one layer (a guided stream has two rows: conditional and null). */
typedef struct {
    int8_t *keys, *values;                  /* [heads][max_positions][head_dim (kv_bits 4: / 2)], written in place */
    /* a slot is codes * scale. kv_bits 8: [heads][max_positions] float32; kv_bits 4: as the slots,
       [heads][max_positions + kv_int8_positions] float16 entries, the head's float32 scales two each */
    void *key_scales, *value_scales;
    /* [heads][cross_len][head_dim]; NULL without cross-attention, or where every key and value is zero
       (guidance's null rows: the attention's output is then +0 exactly, and is written without reading them) */
    const float *cross_keys, *cross_values;
    /* The row's condition folded into the cross-attention's projections (decoder_step.c's
       cross_folded; folded_scores.packed NULL: none): folded_scores [heads * T][hidden] gives the
       row's scores, T slots a head (the condition's cross_len, then padding), from its normed input;
       folded_mix [hidden][heads * T] the cross-attention's output projected, from their softmax. */
    riffd_int8 folded_scores, folded_mix;
} riffd_row_cache;

/* One activation row of a batched step. Rows are independent: positions, windows and cross lengths
   may all differ, and a row's logits are the same bits whatever else is in the batch. */
typedef struct {
    const riffd_row_cache *layer; /* [layers] */
    const float *cross_mask;      /* [cross_len], added to the cross-attention scores; NULL: none */
    int64_t position;             /* the slot this step writes; the row attends to slots 0..position */
    int64_t max_positions, cross_len;
    int64_t kv_bits; /* 8: int8 slots [..][head_dim]; 4: 4-bit codes two a byte [..][head_dim / 2] (attention.c) */
    /* kv_bits 4: a head's first kv_int8_positions positions are int8 slots, the 4-bit ones follow them
       (a head's keys: P * head_dim + (max_positions - P) * head_dim / 2 bytes; kv_cache.py's layout) */
    int64_t kv_int8_positions;
} riffd_row;

/* ---- A decode step with its inputs and its draws in one call (step_draw.c): what a batch's shared
   step does between two columns, where each call from Python costs tens of microseconds. */

/* The model's input tables: codebook embeddings [books][codes_per_book][hidden] and positions
   [position_count][hidden], float32 (embed.c). */
typedef struct {
    const float *tables, *positions;
    int64_t books, codes_per_book, position_count;
} riffd_embedding;

/* One window's column fed at `position`: its rows, consecutive in the step, are `prompts` rows of
   codes [prompts][books] embedded, then (rows = 2 * prompts: guidance's null rows) copies of them. */
typedef struct {
    const int64_t *codes;
    int64_t prompts, rows, position;
} riffd_feed;

/* One window's draw (riffd_sampling_draw's arguments): `rows` codes (its prompts times the codebooks)
   from its logits [rows (2 * rows guided)][vocab]; `undecided` is its result: the rows the race left
   undecided, -1 where a NaN stopped it (nothing drawn, its state unmoved), -2 where an earlier draw's
   NaN stopped the call before it. */
typedef struct {
    const float *logits;
    uint8_t *state; /* the window's generator state (riffd_sampling_state_bytes), moved on as torch's would */
    float *scores, *noise;
    uint64_t *bits;
    double *work;
    int64_t *codes;
    int64_t rows, guided, top_k;
    float guidance, temperature;
    int64_t undecided;
} riffd_draw;

/* ---- The single-window step (one cache for the whole batch, one position), kept for
   native_step.py until it moves to riffd_step_rows; implemented on top of it. */

typedef struct {
    riffd_norm self_norm;
    riffd_int8 qkv, self_out;
    riffd_norm cross_norm;
    riffd_int8 cross_q, cross_out;
    riffd_norm ffn_norm;
    riffd_int8 fc1, fc2;
    int8_t *keys, *values;                  /* [batch][heads][max_positions][head_dim], written in place */
    float *key_scales, *value_scales;       /* [batch][heads][max_positions]: a slot is codes * scale */
    const float *cross_keys, *cross_values; /* [batch][heads][cross_len][head_dim] */
} riffd_layer;

typedef struct {
    int64_t batch, hidden, heads, head_dim, ffn, max_positions, cross_len, layers; /* head_dim % 16 == 0 */
    float eps;
    const float *cross_mask; /* [batch][cross_len], added to the cross-attention scores; NULL: none */
    const riffd_layer *layer;
    riffd_norm final_norm;
    riffd_int8 lm_heads;
    float *scratch; /* riffd_decoder_scratch_floats(d) floats */
    int threads;
} riffd_decoder;

/* pool.c: run fn over [begin, end) slices of 0..count (at most `grain` items each; 0: a few per thread)
   on up to `threads` threads, the caller's one of them; returns when every slice is done. */
typedef void (*riffd_range_fn)(void *ctx, int64_t begin, int64_t end);
void riffd_parallel(int64_t count, int64_t grain, int threads, riffd_range_fn fn, void *ctx);

void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads);
void riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                         const float *scale, float *y, int64_t n, int threads);
void riffd_int4_matvec(const float *x, int64_t m, int64_t k, int64_t group, const uint8_t *packed, float *y, int64_t n,
                       int threads);
/* The int8 products with exact GELU on y, each block's outputs as they are written (riffd_gelu's bits). */
void riffd_int8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                            const float *scale, float *y, int64_t n, int threads);
void riffd_int8a8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                              const float *scale, float *y, int64_t n, int threads);
/* A decode step's int8 product in pieces (int8_matvec.c): prepared_bytes is 0 where w cannot go so (int4
   weights, too many rows); prepare quantises the rows into that many bytes; outputs computes outputs
   [first, first + count) of every row into y [rows][w->rows] (multiples of riffd_int8_block_rows()),
   the same bits as the whole product. */
#define RIFFD_INT8_FUSED_ROWS 16 /* the most rows riffd_int8_prepared_bytes takes (a decode step's) */
int riffd_int8_block_rows(void);
int riffd_int8_group(void);
/* The fewest activation rows whose int8 products go through the tile unit (AMX) in this process; 0: none */
int riffd_int8_tile_rows(void);
int riffd_int8_col_multiple(void);
int64_t riffd_int8_prepared_bytes(const riffd_int8 *w, int64_t rows);
void riffd_int8_prepare(const riffd_int8 *w, const float *x, int64_t rows, uint8_t *prepared);
void riffd_int8_outputs(const riffd_int8 *w, const uint8_t *prepared, int64_t rows, int64_t first, int64_t count,
                        float *y);

/* fold.c: a condition folded into one layer's cross-attention projections (riffd_row_cache's folded_*). */
int riffd_fold_condition(const riffd_int8 *queries_t, const riffd_int8 *outputs_h, const float *query_scales,
                         const float *keys, const float *values, int64_t heads, int64_t head_dim, int64_t cross_len,
                         int64_t slots, int8_t *scores_packed, int32_t *scores_sums, float *scores_scales,
                         int8_t *mix_packed, int32_t *mix_sums, float *mix_scales, float *work, int threads);
int64_t riffd_fold_work_floats(int64_t heads, int64_t head_dim, int64_t cross_len, int64_t slots);

#ifdef RIFFD_KERNELS
/* attention.c */
int64_t riffd_attention_scratch_floats(int64_t length, int64_t head_dim);
void riffd_store_int8(int8_t *to, float *scale, const float *from, int64_t count);
void riffd_attend_int8(const float *q, const int8_t *keys, const float *key_scales, const int8_t *values,
                       const float *value_scales, int64_t length, int64_t head_dim, float *scratch, float *out);
/* The +kv4 layout's 4-bit store: a float16 scale (attention.c's kv4_scale) */
void riffd_store_int4(uint8_t *to, uint16_t *scale, const float *from, int64_t count);
/* A prefill's vectors into int8 or +kv4 slots (kv_cache.py's layouts), one call a layer (attention.c);
   0: not taken. */
int riffd_store_vectors(void *slots, void *scales, const float *from, const int64_t *positions, int64_t groups,
                        int64_t count, int64_t head_dim, int64_t slot_rows, int64_t max_positions, int64_t bits,
                        int64_t int8_positions);
void riffd_attend_int4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                       const uint16_t *value_scales, int64_t length, int64_t head_dim, float *scratch, float *out);
/* The +kv4 layout: positions below int8_positions are int8 slots (keys, values: head_dim bytes each),
   the rest 4-bit slots right after them; the scales alike: the head's float32 (two float16 entries
   each), then float16 ones. One softmax over both. */
void riffd_attend_kv4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                      const uint16_t *value_scales, int64_t length, int64_t int8_positions, int64_t head_dim,
                      float *scores, float *out);
/* 1: the +kv4 layout's scales are float16 after a float32 head (attention.c; bench.step_ab asks). */
int riffd_kv4_half_scales(void);
/* 1 where the 4-bit slots' scores take the integer product (the query rounded to bytes: attention.c). */
int riffd_attend_int4_integer(int64_t head_dim);
/* 1 where the 4-bit slots' values are weighed with the weights rounded to 16 bits (attention.c). */
int riffd_attend_int4_words(int64_t head_dim);
void riffd_attend_f32(const float *q, const float *keys, const float *values, const float *mask, int64_t length,
                      int64_t head_dim, float *scratch, float *out);
#endif

#ifdef RIFFD_STEP_PROFILE
#include <time.h>
/* Profile builds (-DRIFFD_STEP_PROFILE: bench.step_account, bench.native_step): `statement`'s wall
   time, nanoseconds, added to `total` (a double). Without the flag there are no clock calls. */
static inline int64_t riffd_profile_clock_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}
#define RIFFD_TIMED(total, statement)                                                                              \
    do {                                                                                                           \
        int64_t timed_start = riffd_profile_clock_ns();                                                            \
        statement;                                                                                                 \
        (total) += (double)(riffd_profile_clock_ns() - timed_start);                                               \
    } while (0)
/* A profile's reader (riffd_step_profile, riffd_step_draw_profile): the first `count` of its `kept` totals
   copied to `ns` and cleared; returns `kept`, how many it keeps. */
static inline int64_t riffd_profile_take(double *ns, int64_t count, double *totals, int64_t kept) {
    for (int64_t i = 0; i < count && i < kept; i++) ns[i] = totals[i], totals[i] = 0.0;
    return kept;
}
#endif

#endif
