/* One MusicGen decode step (every decoder layer, the final norm and the lm heads) in one call, for
   a batch of rows that each carry their own caches and position (continuous batching: streams at
   different points of different windows share the weight reads).

   Run from Python, a step is some 400 small PyTorch calls between the weight products, and the
   int8 weights streaming through the caches evict the interpreter's and the dispatcher's working
   set, so each of those calls starts cold: measured, the glue cost more than a third of an int8
   step. Here the glue is a few hundred lines of plain loops over a handful of buffers, and the
   weight products are int8_matvec.c's kernels (16- or 8-bit activations) or int4_matvec.c's,
   projection by projection. The
   math is the engine's (engine.py) step for step: pre-norm layers, scaled dot-product attention
   over the cache's first position + 1 slots (kept as int8 vectors with a scale each, as the
   engine's int8 mode allocates it),
   cross-attention with an additive mask, exact (erf) GELU; the tests compare the two.

   Every operation is per row (layer norm, attention) or row-independent (the int8 kernel), so a
   row's logits are the same bits whatever else is in the batch. */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

/* Where a step's time goes: built with -DRIFFD_STEP_PROFILE (e.g. RIFFD_NATIVE_CFLAGS, with its
   own RIFFD_NATIVE_DIR), riffd_step_rows adds each phase's wall time (nanoseconds, in the enum's
   order: norms, self-attention, cross-attention, GELU, residuals, then each projection by kind:
   qkv, self out, cross query, cross out, fc1, fc2, lm heads) and riffd_step_profile(ns, count)
   copies and clears them, returning how many phases there are (bench.step_account and
   bench.native_step name them). Without the flag there are no clock calls and it returns 0. */
#ifdef RIFFD_STEP_PROFILE
enum {
    PHASE_NORM, PHASE_SELF, PHASE_CROSS, PHASE_GELU, PHASE_RESIDUAL,
    PHASE_QKV, PHASE_SELF_OUT, PHASE_CROSS_Q, PHASE_CROSS_OUT, PHASE_FC1, PHASE_FC2, PHASE_HEADS, PHASES
};
static double phase_ns[PHASES];
#define PHASE(which, statement) RIFFD_TIMED(phase_ns[which], statement)
int64_t riffd_step_profile(double *ns, int64_t count) { return riffd_profile_take(ns, count, phase_ns, PHASES); }
#else
#define PHASE(which, statement) statement
int64_t riffd_step_profile(double *ns, int64_t count) {
    (void)ns; (void)count;
    return 0;
}
#endif

/* Layer norm of one row. The mean's and the variance's sums are doubles taken in NORM_LANES partial
   sums (lane l adds the elements j = l mod NORM_LANES in order), then the lanes in order: one order
   on every instruction set (the same bits everywhere), and independent chains the compiler puts in
   vectors. One chain of dependent double additions in input order was latency-bound: ~1 ns a float,
   0.26-0.28 ms of a step's 73 norms of 2 rows on Zen 4. The double sums keep the mean and variance
   within the Python step's float32 rounding (tests/musicgen/test_native.py's bound). */
#define NORM_LANES 16

static double lane_total(const double *lanes) {
    double total = 0.0;
    for (int l = 0; l < NORM_LANES; l++) total += lanes[l];
    return total;
}

static void layer_norm_row(const float *x, const riffd_norm *norm, float eps, int64_t width, float *out) {
    const int64_t body = width - width % NORM_LANES;
    double lanes[NORM_LANES] = {0.0};
    for (int64_t j = 0; j < body; j += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++) lanes[l] += x[j + l];
    for (int64_t j = body; j < width; j++) lanes[j - body] += x[j];
    const float mean = (float)(lane_total(lanes) / (double)width);
    double squares[NORM_LANES] = {0.0};
    for (int64_t j = 0; j < body; j += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++) {
            double centred = (double)x[j + l] - mean;
            squares[l] += centred * centred;
        }
    for (int64_t j = body; j < width; j++) {
        double centred = (double)x[j] - mean;
        squares[j - body] += centred * centred;
    }
    const float inv = 1.0f / sqrtf((float)(lane_total(squares) / (double)width) + eps);
#pragma omp simd
    for (int64_t j = 0; j < width; j++) out[j] = (x[j] - mean) * inv * norm->weight[j] + norm->bias[j];
}

/* A step's norms, row by row (serial: a parallel region per norm cost more than it saved on the
   shared 2-core Zen 4, see riffd_step_rows). */
static void layer_norm(const float *x, const riffd_norm *norm, float eps, int64_t rows, int64_t width, float *out) {
    for (int64_t r = 0; r < rows; r++) layer_norm_row(x + r * width, norm, eps, width, out + r * width);
}

static void project(const float *x, int64_t rows, const riffd_int8 *w, float *out, int threads) {
    if (w->int4_group)
        riffd_int4_matvec(x, rows, w->cols, w->int4_group, (const uint8_t *)w->packed, out, w->rows, threads);
    else if (w->act8)
        riffd_int8a8_matvec(x, rows, w->cols, w->packed, w->row_sums, w->scales, out, w->rows, threads);
    else
        riffd_int8_matvec(x, rows, w->cols, w->packed, w->row_sums, w->scales, out, w->rows, threads);
}

/* Exact (erf) GELU in place; count % VL == 0. Exported for the tests. */
void riffd_gelu(float *x, int64_t count) {
    for (int64_t i = 0; i < count; i += VL) vf_store(x + i, gelu_v(vf_load(x + i)));
}

/* fc1 and its GELU. The int8 kernels apply it to each block's outputs as they write them, on the
   pool's threads with the outputs in L1 (a serial pass after the product: 0.11 ms of an early step
   of 2 rows, 0.21 with riding rows, Zen 4, 2 threads); int4 products take riffd_gelu after. The
   same bits either way. The step's profile counts GELU in fc1's time. */
static void project_gelu(const float *x, int64_t rows, const riffd_int8 *w, float *out, int threads) {
    if (w->int4_group) {
        project(x, rows, w, out, threads);
        riffd_gelu(out, rows * w->rows);
    } else if (w->act8)
        riffd_int8a8_matvec_gelu(x, rows, w->cols, w->packed, w->row_sums, w->scales, out, w->rows, threads);
    else
        riffd_int8_matvec_gelu(x, rows, w->cols, w->packed, w->row_sums, w->scales, out, w->rows, threads);
}

/* x += the product, row by row (the residual connection). */
static void add_into(float *x, const float *delta, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; i++) x[i] += delta[i];
}


/* The longest attention of any row: its scores' scratch. */
static int64_t longest_attention(const riffd_row *rows, int64_t n) {
    int64_t longest = 1;
    for (int64_t r = 0; r < n; r++) {
        if (rows[r].max_positions > longest) longest = rows[r].max_positions;
        if (rows[r].cross_len > longest) longest = rows[r].cross_len;
    }
    return longest;
}

static int64_t scores_floats(const riffd_model *m, int64_t longest) {
    int64_t each = riffd_attention_scratch_floats(longest, m->head_dim);
    return (each + 15) / 16 * 16; /* each task's scores on their own cache lines */
}

static int64_t scratch_floats(const riffd_model *m, int64_t n, int64_t longest) {
    return n * (5 * m->hidden + m->ffn) + n * m->heads * scores_floats(m, longest);
}

/* Floats of scratch riffd_step_rows needs for these rows (their windows, not their positions, count:
   the same scratch serves every step of the same rows). */
int64_t riffd_step_scratch_floats(const riffd_model *m, const riffd_row *rows, int64_t n) {
    return scratch_floats(m, n, longest_attention(rows, n));
}

/* Rows that share one cache (their `layer` pointer): a next window's context columns riding a step
   together, each at its own position (handoff.py). A group's rows, in batch order, are
   order[first[g]] .. order[first[g + 1] - 1]; a row alone is a group of one. */
typedef struct {
    int64_t count;
    int64_t *order; /* [n] */
    int64_t *first; /* [n + 1] */
} row_groups;

static void group_rows(const riffd_row *rows, int64_t n, int64_t *order, int64_t *first, row_groups *out) {
    int64_t placed = 0, count = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t seen = 0;
        for (int64_t s = 0; s < r && !seen; s++) seen = rows[s].layer == rows[r].layer;
        if (seen) continue;
        first[count++] = placed;
        for (int64_t s = r; s < n; s++)
            if (rows[s].layer == rows[r].layer) order[placed++] = s;
    }
    first[count] = placed;
    *out = (row_groups){count, order, first};
}

/* One layer's attention tasks (a group's head each). */
typedef struct {
    const riffd_model *m;
    const riffd_row *rows;
    int64_t layer;
    const float *q; /* self: the qkv projection [n][3 * hidden]; cross: the query projection [n][hidden] */
    float *scores;
    int64_t each;   /* floats of scores per task */
    float *out;     /* [n][hidden] */
    const int64_t *chunk_first; /* self: chunk c is tasks chunk_first[c] .. chunk_first[c + 1] - 1 */
    const row_groups *groups;   /* self: task t is head t % heads of group t / heads */
} attention_job;

/* Head h of a +kv4 layer cache (kv_cache.py's layout): its slots, an int8 head of kv_int8_positions
   positions then 4-bit slots, and its scales alike, the head's float32 ones two float16 entries each,
   then float16 ones. self_store, self_attend and prefetch_slots all read the cache through this. */
typedef struct {
    uint8_t *keys, *values;
    uint16_t *key_scales, *value_scales;
} kv4_head;

static kv4_head kv4_head_of(const riffd_row *row, const riffd_row_cache *cache, int64_t h, int64_t hd) {
    const size_t entries = (size_t)(row->max_positions + row->kv_int8_positions);
    const size_t stride = entries * ((size_t)hd / 2);
    const kv4_head head = {(uint8_t *)cache->keys + (size_t)h * stride, (uint8_t *)cache->values + (size_t)h * stride,
                           (uint16_t *)cache->key_scales + (size_t)h * entries,
                           (uint16_t *)cache->value_scales + (size_t)h * entries};
    return head;
}

/* Row r's new key and value for head h, stored at its position. */
static void self_store(const attention_job *j, int64_t r, int64_t h) {
    const int64_t hidden = j->m->hidden, hd = j->m->head_dim;
    const riffd_row *row = &j->rows[r];
    const riffd_row_cache *cache = &row->layer[j->layer];
    const size_t slot = (size_t)(h * row->max_positions + row->position);
    const float *k = j->q + r * 3 * hidden + hidden + h * hd, *v = k + hidden;
    if (row->kv_bits == 4) {
        const int64_t head8 = row->kv_int8_positions, p = row->position;
        const size_t half = (size_t)hd / 2;
        const kv4_head c = kv4_head_of(row, cache, h, hd);
        if (p < head8) {
            riffd_store_int8((int8_t *)c.keys + p * hd, (float *)(void *)(c.key_scales + 2 * p), k, hd);
            riffd_store_int8((int8_t *)c.values + p * hd, (float *)(void *)(c.value_scales + 2 * p), v, hd);
        } else {
            riffd_store_int4(c.keys + (size_t)(p + head8) * half, c.key_scales + p + head8, k, hd);
            riffd_store_int4(c.values + (size_t)(p + head8) * half, c.value_scales + p + head8, v, hd);
        }
        return;
    }
    float *key_scales = cache->key_scales, *value_scales = cache->value_scales;
    riffd_store_int8(cache->keys + slot * hd, key_scales + slot, k, hd);
    riffd_store_int8(cache->values + slot * hd, value_scales + slot, v, hd);
}

/* Row r's attention for head h over slots 0..position. */
static void self_attend(const attention_job *j, int64_t r, int64_t h, float *scores) {
    const int64_t hidden = j->m->hidden, hd = j->m->head_dim;
    const riffd_row *row = &j->rows[r];
    const riffd_row_cache *cache = &row->layer[j->layer];
    const size_t first = (size_t)(h * row->max_positions);
    const float *q = j->q + r * 3 * hidden + h * hd;
    float *out = j->out + r * hidden + h * hd;
    if (row->kv_bits == 4) {
        const kv4_head c = kv4_head_of(row, cache, h, hd);
        riffd_attend_kv4(q, c.keys, c.key_scales, c.values, c.value_scales, row->position + 1, row->kv_int8_positions,
                         hd, scores, out);
        return;
    }
    const float *key_scales = cache->key_scales, *value_scales = cache->value_scales;
    riffd_attend_int8(q, cache->keys + first * hd, key_scales + first, cache->values + first * hd,
                      value_scales + first, row->position + 1, hd, scores, out);
}

/* A group's head: every row's key and value stored first (only this task reads them: a row of the
   group may attend over another's new slot), then each row's attention, one after another over the
   same head's slots, which the first brought into the cache (a riding column's task at 300 positions,
   one thread: 3.8 us with its slots cold, 1.3 warm). A row's attention reads the slots up to its
   position only, so the order of the stores leaves every row's output the bits it has alone. */
static void self_task(const attention_job *j, int64_t task) {
    const int64_t heads = j->m->heads, g = task / heads, h = task % heads;
    const int64_t *member = j->groups->order + j->groups->first[g], count = j->groups->first[g + 1] - j->groups->first[g];
    for (int64_t i = 0; i < count; i++) self_store(j, member[i], h);
    for (int64_t i = 0; i < count; i++) self_attend(j, member[i], h, j->scores + task * j->each);
}

/* riffd_parallel's items are chunks of tasks (self_chunks). */
static void self_attention(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    for (int64_t c = begin; c < end; c++)
        for (int64_t task = j->chunk_first[c]; task < j->chunk_first[c + 1]; task++) self_task(j, task);
}

/* Rows [begin, end) store their keys and values without attending (keys-only rows' last layer). */
static void store_only(const attention_job *j, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++)
        for (int64_t h = 0; h < j->m->heads; h++) self_store(j, r, h);
}

/* Self-attention's tasks in chunks, instead of one task a hand-out (a compare-and-swap on the
   pool's shared counter each: 32 a layer for one guided stream, 64 with a riding one). Rows at
   different positions attend over different lengths (a riding stream's rows over 0-600 slots, the
   main stream's over up to 1500), so chunks are cut by cost, not by task count. A task's cost
   (task_cost) counts the bytes it reads, as its slots come from memory, in 4-bit slots:
   SELF_TASK_FIXED for what any task pays (its slots' six streams started cold: keys, values, their
   scales, int8 and 4-bit; the stores; the softmax's ends), a slot per position, one more per int8
   slot (twice the bytes). Measured on the Zen 4, one thread, each head's slots from memory: 0.39 us
   at length 1, 2.2 at 100, 3.8 at 300, 5.6 at 600, 9.4 at 1400. So a task of 300 costs 0.40 of one of
   1400 (here (300 + 364) / (300 + 1464) = 0.38; length alone with 32 for the fixed part said 0.23),
   and a riding stream's chunks ran long. A group's later rows read the slots the first brought in:
   a third of the cold cost each (1.3 us warm at 300).

   Each chunk takes 1/SELF_CHUNKS_PER_THREAD of a thread's share of what is left, so the last chunks
   handed out are the small ones (a riding stream's short tasks come last) and the region's end
   waits for about one of them, but no fewer than SELF_CHUNK_TASKS tasks: a row's next heads' slots
   follow its last head's late in a window, one stream for the hardware prefetcher, which chunks of
   2 tasks broke (a step at 1400 alone 1.02-1.06x slower, caches in ordinary pages). Rows alike
   (a stream alone) get the equal chunks of 4 tasks they had. Several chunks a thread still let the
   caller take over a descheduled worker's share. Returns the count; first[0..count] are their first
   tasks and the end. */
#define SELF_CHUNKS_PER_THREAD 4
#ifndef SELF_TASK_FIXED
#define SELF_TASK_FIXED 300
#endif
#ifndef SELF_CHUNK_TASKS
#define SELF_CHUNK_TASKS 4
#endif
#define MAX_SELF_CHUNKS 64

static int64_t task_cost(const riffd_row *row) {
    const int64_t length = row->position + 1, head8 = row->kv_bits == 4 ? row->kv_int8_positions : length;
    return SELF_TASK_FIXED + length + (length < head8 ? length : head8);
}

static int64_t group_cost(const riffd_row *rows, const row_groups *groups, int64_t g) {
    int64_t cost = 0;
    for (int64_t i = groups->first[g]; i < groups->first[g + 1]; i++) cost += task_cost(&rows[groups->order[i]]);
    const int64_t count = groups->first[g + 1] - groups->first[g];
    return count == 1 ? cost : (cost + 2 * task_cost(&rows[groups->order[groups->first[g]]])) / 3;
}

static int64_t self_chunks(const riffd_row *rows, const row_groups *groups, int64_t heads, int threads, int64_t *first) {
    const int64_t tasks = groups->count * heads, wanted = (int64_t)(threads > 1 ? threads : 1) * SELF_CHUNKS_PER_THREAD;
    int64_t left = 0;
    for (int64_t g = 0; g < groups->count; g++) left += heads * group_cost(rows, groups, g);
    int64_t count = 0, cost = 0;
    first[0] = 0;
    for (int64_t task = 0; task + 1 < tasks; task++) {
        cost += group_cost(rows, groups, task / heads);
        /* at most MAX_SELF_CHUNKS - 1 chunks: first[] fits */
        if (cost * wanted >= left && task + 1 - first[count] >= SELF_CHUNK_TASKS && count < MAX_SELF_CHUNKS - 2) {
            first[++count] = task + 1;
            left -= cost;
            cost = 0;
        }
    }
    first[++count] = tasks;
    return count;
}

/* Cross-attention over a text of ~10-20 tokens is ~0.13 us a real head in cache and ~0.45 us in the
   step (its 6 KB of keys and values come from memory; guidance's null rows read nothing): 16-64 such
   tasks a layer gain nothing from a pool region (Zen 4, 2 threads, idle: 0.35 ms a step for two
   real rows either way), and a region waits for a descheduled worker's head (under load: 1.3-1.4 ms
   a step for four real rows against 0.72 on the calling thread). Up to CROSS_SERIAL_POSITIONS
   head-positions it runs on the calling thread; longer conditions take the pool, a row's heads a
   chunk. */
#define CROSS_SERIAL_POSITIONS 2048

/* Row r's cross-attention for head h. */
static void cross_task(const attention_job *j, int64_t r, int64_t h) {
    const int64_t hidden = j->m->hidden, heads = j->m->heads, hd = j->m->head_dim;
    const riffd_row *row = &j->rows[r];
    const riffd_row_cache *cache = &row->layer[j->layer];
    if (!cache->cross_keys) { /* all-zero keys and values (guidance's null rows): the output is +0 exactly */
        for (int64_t i = 0; i < hd; i++) j->out[r * hidden + h * hd + i] = 0.0f;
        return;
    }
    size_t first = (size_t)(h * row->cross_len * hd);
    riffd_attend_f32(j->q + r * hidden + h * hd, cache->cross_keys + first, cache->cross_values + first,
                     row->cross_mask, row->cross_len, hd, j->scores + (r * heads + h) * j->each,
                     j->out + r * hidden + h * hd);
}

static void cross_attention(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    for (int64_t task = begin; task < end; task++) cross_task(j, task / j->m->heads, task % j->m->heads);
}

static void cross_attention_layer(attention_job *job, int64_t n, int threads) {
    const int64_t heads = job->m->heads;
    int64_t positions = 0;
    for (int64_t r = 0; r < n; r++)
        if (job->rows[r].layer[job->layer].cross_keys) positions += heads * job->rows[r].cross_len;
    if (positions <= CROSS_SERIAL_POSITIONS)
        cross_attention(job, 0, n * heads);
    else
        riffd_parallel(n * heads, heads, threads, cross_attention, job);
}

/* Cross-attention with the row's condition folded into its projections (riffd_row_cache's
   folded_scores and folded_mix, made where the row is bound: daemon/models/musicgen/folded_condition.py).
   A condition is fixed for a window, so its keys can go through the query projection's weights
   once, and its values through the output projection's: head h's score for condition slot t is
   (W_q,h^T k_h,t) . x, and the output is the sum over h and t of softmax weight p_h,t times
   W_o,h v_h,t. With a short condition (16 heads x 12 text tokens in musicgen-small) those are
   2 x 192 vectors of 1024 a layer: 0.4 MB of int8 a step reads instead of cross_q's and cross_out's
   2 MB, and no attention of its own. Both products run through the int8 kernel at 16-bit activations
   (the row's softmax weights too, whatever the engine's act8).

   Rows bound to the same fold (a condition folds once: a long-form job's riding rows share the
   playing window's, batched jobs with one prompt theirs) go through its two products together, its
   bytes read once and one pool region each instead of one a row; the kernel's rows are independent,
   so each row's outputs are the bits it gets alone. Rows with cross keys and no folding take the
   projections, and where any does, everyone's product is computed that way first and the folded
   rows' outputs replace theirs. `out` holds every live row's output; `work` (work_floats floats)
   takes a group's scores and outputs, `gather` (hidden floats a live row) its inputs; a group too
   large for `work` goes a row at a time. A riding step's cross-attention (its two conditional rows
   on one fold, musicgen-small, a 10-token prompt) 0.647 and 0.648 -> 0.576 and 0.548 ms
   (bench.step_account --riding --engine int8+kv4, runs taking turns with -DFOLD_GROUPS=0, 2-core
   Intel Xeon with AVX-512 VNNI). */
#ifndef FOLD_GROUPS
#define FOLD_GROUPS 1
#endif

static int same_fold(const riffd_row *a, const riffd_row *b, int64_t layer) {
    const riffd_row_cache *x = &a->layer[layer], *y = &b->layer[layer];
    return x->folded_scores.packed == y->folded_scores.packed && x->folded_mix.packed == y->folded_mix.packed &&
           y->cross_keys && a->cross_len == b->cross_len;
}

static void cross_folded(const riffd_model *m, const riffd_row *rows, int64_t layer, int64_t live,
                         const float *normed, float *out, float *work, int64_t work_floats, float *gather,
                         int threads) {
    const int64_t hidden = m->hidden, heads = m->heads;
    int64_t members[live > 0 ? live : 1];
    char done[live > 0 ? live : 1];
    for (int64_t r = 0; r < live; r++) done[r] = 0;
    for (int64_t r = 0; r < live; r++) {
        const riffd_row_cache *cache = &rows[r].layer[layer];
        if (done[r] || !cache->folded_scores.packed || !cache->cross_keys) continue;
        const int64_t entries = cache->folded_scores.rows, slots = entries / heads;
        int64_t count = 0;
        members[count++] = r;
        if (FOLD_GROUPS)
            for (int64_t s = r + 1; s < live; s++)
                if (!done[s] && same_fold(&rows[r], &rows[s], layer)) members[count++] = s;
        if (count > 1 && count * (entries + hidden) > work_floats) count = 1;
        for (int64_t i = 0; i < count; i++) done[members[i]] = 1;
        const float *x = normed + r * hidden;
        float *y = out + r * hidden, *mixed = work + count * entries;
        if (count > 1) { /* the group's inputs side by side, its outputs after its scores */
            for (int64_t i = 0; i < count; i++)
                for (int64_t k = 0; k < hidden; k++) gather[i * hidden + k] = normed[members[i] * hidden + k];
            x = gather;
            y = mixed;
        }
        project(x, count, &cache->folded_scores, work, threads);
        for (int64_t i = 0; i < count; i++) {
            const riffd_row *row = &rows[members[i]];
            for (int64_t h = 0; h < heads; h++) {
                float *p = work + i * entries + h * slots, largest = -INFINITY, total = 0.0f;
                for (int64_t t = 0; t < row->cross_len; t++) {
                    if (row->cross_mask) p[t] += row->cross_mask[t];
                    largest = p[t] > largest ? p[t] : largest;
                }
                for (int64_t t = 0; t < row->cross_len; t++) total += p[t] = expf(p[t] - largest);
                for (int64_t t = 0; t < row->cross_len; t++) p[t] /= total;
                for (int64_t t = row->cross_len; t < slots; t++) p[t] = 0.0f; /* padding slots */
            }
        }
        project(work, count, &cache->folded_mix, y, threads);
        if (count > 1)
            for (int64_t i = 0; i < count; i++)
                for (int64_t k = 0; k < hidden; k++) out[members[i] * hidden + k] = mixed[i * hidden + k];
    }
}

/* Whether any of the first `live` rows attends to a condition through cross_q and cross_out (not folded). */
static int cross_unfolded(const riffd_row *rows, int64_t layer, int64_t live) {
    for (int64_t r = 0; r < live; r++)
        if (rows[r].layer[layer].cross_keys && !rows[r].layer[layer].folded_scores.packed) return 1;
    return 0;
}

#ifndef FUSED_PREFETCH
#define FUSED_PREFETCH 1
#endif

/* A projection whose outputs feed attention head by head, and that attention, in one pool region:
   item h computes head h's query outputs of every row (int8_matvec.c's product in pieces: the rows
   quantised once before the region) and then that head's attention. Each output block and each
   head's attention are computed as the separate product and attention compute them: the same bits.

   Cross-attention (~1.2 us a head and layer with a 44-token condition, 0.49 ms of an early step on
   the calling thread, the worker spinning) thus shares its query product's region: the heads'
   attentions spread over the threads, each next to the other thread's weight reads, with no region
   of their own. */
typedef struct {
    const attention_job *attention;
    const riffd_int8 *w;
    const uint8_t *prepared;
    int64_t rows;
    int64_t live; /* self: rows from here on store their keys and values only (the last layer's keys-only rows) */
} fused_job;

static void cross_fused(void *ctx, int64_t begin, int64_t end) {
    const fused_job *f = ctx;
    const attention_job *j = f->attention;
    const int64_t hd = j->m->head_dim;
    for (int64_t h = begin; h < end; h++) {
        if (FUSED_PREFETCH)
            for (int64_t r = 0; r < f->rows; r++) {
                const riffd_row *row = &j->rows[r];
                const riffd_row_cache *cache = &row->layer[j->layer];
                const size_t bytes = (size_t)(row->cross_len * hd) * sizeof(float);
                if (cache->cross_keys) {
                    riffd_prefetch_bytes(cache->cross_keys + h * row->cross_len * hd, bytes);
                    riffd_prefetch_bytes(cache->cross_values + h * row->cross_len * hd, bytes);
                }
            }
        riffd_int8_outputs(f->w, f->prepared, f->rows, h * hd, hd, (float *)j->q);
        for (int64_t r = 0; r < f->rows; r++) cross_task(j, r, h);
    }
}

/* Whether w's products can go in pieces a head at a time (int8 weights, a decode step's rows, whole
   blocks a head). */
static int64_t fused_bytes(const riffd_model *m, const riffd_int8 *w, int64_t rows) {
    return m->head_dim % riffd_int8_block_rows() ? 0 : riffd_int8_prepared_bytes(w, rows);
}

/* The cross query's product (from normed) and the cross-attention, in one region where fused_bytes
   allows (prepared: that many bytes), else one after the other. */
static void cross_layer(attention_job *job, const riffd_int8 *w, const float *normed, int64_t rows, uint8_t *prepared,
                        int threads) {
    if (fused_bytes(job->m, w, rows) == 0) {
        project(normed, rows, w, (float *)job->q, threads);
        cross_attention_layer(job, rows, threads);
        return;
    }
    riffd_int8_prepare(w, normed, rows, prepared);
    fused_job fused = {job, w, prepared, rows, rows};
    riffd_parallel(job->m->heads, 1, threads, cross_fused, &fused);
}

/* Row r's slots of head h before its position, and their scales (what self_attend reads besides the
   slot this step stores): asked for before the head's product, so that they arrive while it streams
   its weights. */
static void prefetch_slots(const attention_job *j, int64_t r, int64_t h) {
    const int64_t hd = j->m->head_dim;
    const riffd_row *row = &j->rows[r];
    const riffd_row_cache *cache = &row->layer[j->layer];
    const int64_t length = row->position;
    if (row->kv_bits == 4) {
        const int64_t head8 = row->kv_int8_positions, early = length < head8 ? length : head8, late = length - early;
        const kv4_head c = kv4_head_of(row, cache, h, hd);
        const uint8_t *slots[2] = {c.keys, c.values};
        const uint16_t *scales[2] = {c.key_scales, c.value_scales};
        for (int i = 0; i < 2; i++) {
            riffd_prefetch_bytes(slots[i], (size_t)(early * hd));
            riffd_prefetch_bytes(scales[i], (size_t)(2 * early) * sizeof(uint16_t));
            if (late > 0) {
                riffd_prefetch_bytes(slots[i] + head8 * hd, (size_t)(late * hd / 2));
                riffd_prefetch_bytes(scales[i] + 2 * head8, (size_t)late * sizeof(uint16_t));
            }
        }
        return;
    }
    const size_t first = (size_t)(h * row->max_positions);
    riffd_prefetch_bytes(cache->keys + first * hd, (size_t)(length * hd));
    riffd_prefetch_bytes(cache->values + first * hd, (size_t)(length * hd));
    riffd_prefetch_bytes((const float *)cache->key_scales + first, (size_t)length * sizeof(float));
    riffd_prefetch_bytes((const float *)cache->value_scales + first, (size_t)length * sizeof(float));
}

/* Self-attention likewise with the qkv product: item h computes head h's query, key and value
   outputs of every row, stores the keys-only rows' key and value, then runs self_task for each of the
   job's groups at head h. A head's item is then its product (192 KB of weights in musicgen-small)
   and every group's attention at that head: where the attention is long (a riding step: a window at
   ~1400 positions and the next one's rows at 300), the items are large and the region's end waits
   for one of them, where separate regions hand out the attention in chunks cut by cost
   (self_chunks). So a step fuses only while a head's attention costs (task_cost, summed over the
   groups) at most FUSE_SELF_COST: a lone guided stream at any position of a 1500-frame window
   (two groups of ~364 + position), not a riding step (four groups). Zen 4, 2 threads, bench.step_ab
   against separate regions: a lone stream 0.98x at position 100 and 0.97-0.99x at 1400; a riding step
   at 1400 + 300 not faster (0.97-1.11x under the other helpers' load). On a 2-core Intel Xeon
   (AVX-512 VNNI, KVM) separate regions were the faster (FUSE_SELF_COST 0 against 4000, int8a8+kv4,
   60 pairs, same bits): 0.988x at position 100 (44 of 60 pairs faster) and 0.985x at 1400 (48/60),
   and 0.990x and 0.992x with the attention's L2 prefetches; AVX-VNNI (-mno-avx512f) 0.987x and 0.986x
   (51/60, 50/60), AVX2 (-mno-avx512f -mno-avxvnni) 0.978x and 0.978x (57/60, 54/60). So Zen builds
   fuse and others do not. */
#ifndef FUSE_SELF_COST
#if RIFFD_ZEN
#define FUSE_SELF_COST 4000
#else
#define FUSE_SELF_COST 0
#endif
#endif

static int64_t fuse_self_cost = FUSE_SELF_COST;

/* The cost up to which a step fuses (FUSE_SELF_COST as built); a `cost` >= 0 replaces it, for every
   step after (the tests step both ways: the same bits). Returns the one it replaced. Not for a step
   running meanwhile on another thread. */
int64_t riffd_fuse_self_cost(int64_t cost) {
    const int64_t before = fuse_self_cost;
    if (cost >= 0) fuse_self_cost = cost;
    return before;
}

static int64_t self_cost(const riffd_row *rows, const row_groups *groups) {
    int64_t cost = 0;
    for (int64_t g = 0; g < groups->count; g++) cost += group_cost(rows, groups, g);
    return cost;
}

static void self_fused(void *ctx, int64_t begin, int64_t end) {
    const fused_job *f = ctx;
    const attention_job *j = f->attention;
    const int64_t hidden = j->m->hidden, heads = j->m->heads, hd = j->m->head_dim;
    for (int64_t h = begin; h < end; h++) {
        if (FUSED_PREFETCH)
            for (int64_t i = 0; i < j->groups->first[j->groups->count]; i++) prefetch_slots(j, j->groups->order[i], h);
        for (int64_t part = 0; part < 3; part++) /* query, key, value */
            riffd_int8_outputs(f->w, f->prepared, f->rows, part * hidden + h * hd, hd, (float *)j->q);
        for (int64_t r = f->live; r < f->rows; r++) self_store(j, r, h);
        for (int64_t g = 0; g < j->groups->count; g++) self_task(j, g * heads + h);
    }
}

/* x [n][hidden]: each row's embedded input (position included), overwritten; writes each layer's
   key and value at each row's position; logits [logit_rows][lm_heads.rows] for rows 0..logit_rows - 1.

   Rows logit_rows..n - 1 are keys-only rows (a next window's context riding the current window's
   steps, handoff.py: what they leave is their caches, their logits are never read). A row's keys and
   values in layer l depend on its layers before l only, so in the last layer such a row stops once
   its key and value are stored: no attention of its own, out-projection, cross-attention, MLP, final
   norm or lm heads. Every row's computation up to there, and every other row's, is the one
   riffd_step_rows does (the same bits: the kernels' rows are independent). */
void riffd_step_rows_out(const riffd_model *m, const riffd_row *rows, int64_t n, int64_t logit_rows, float *x,
                         float *logits, float *scratch, int threads) {
    const int64_t hidden = m->hidden, heads = m->heads;
    const int64_t each = scores_floats(m, longest_attention(rows, n));
    float *qkv = scratch, *normed = qkv + n * 3 * hidden, *attn = normed + n * hidden;
    float *inner = attn + n * hidden, *scores = inner + n * m->ffn;
    float *delta = qkv; /* a projection's output, once qkv is no longer needed */
    if (logit_rows > n) logit_rows = n;
    if (logit_rows < 0) logit_rows = 0;
    int64_t chunk_first[MAX_SELF_CHUNKS], last_first[MAX_SELF_CHUNKS];
    int64_t order[n], first[n + 1], last_order[n], last_group_first[n + 1];
    row_groups groups, last_groups;
    /* a decode step's quantised rows for a fused region (self_fused, cross_layer): at most 2 bytes an
       input and row, and a scale a row (riffd_int8_prepared_bytes), for as many rows as a region fuses.
       Sized for that many, not for n: with keys-only rows the last layer's cross_layer fuses its
       logit_rows where n rows would not (18 rows riding: the 2 playing rows' 4 KB written into a buffer
       of 1 byte, musicgen-small) */
    const int64_t fused_rows = n < RIFFD_INT8_FUSED_ROWS ? n : RIFFD_INT8_FUSED_ROWS;
    uint8_t prepared[fused_rows * (2 * hidden + (int64_t)sizeof(float))] __attribute__((aligned(64)));
    group_rows(rows, n, order, first, &groups);
    const int64_t chunks = self_chunks(rows, &groups, heads, threads, chunk_first);
    /* the last layer's attention tasks: the rows with logits only, balanced among themselves */
    group_rows(rows, logit_rows, last_order, last_group_first, &last_groups);
    const int64_t last_chunks = logit_rows < n ? self_chunks(rows, &last_groups, heads, threads, last_first) : chunks;
    const int fuse_self = self_cost(rows, &groups) <= fuse_self_cost; /* self_fused */

    for (int64_t l = 0; l < m->layers; l++) {
        const riffd_layer_weights *layer = &m->layer[l];
        const int64_t live = l == m->layers - 1 ? logit_rows : n; /* the rows this layer carries past its keys and values */

        PHASE(PHASE_NORM, layer_norm(x, &layer->self_norm, m->eps, n, hidden, normed));
        /* Each task stores its head's new keys and values first (a serial loop before: 0.5 ms of a
           step of 8 rows), a group's rows' (group_rows) all before any of them attends; tasks go out
           in cost-balanced chunks (self_chunks). The norms stay serial, and so does GELU where fc1's
           product cannot take it (project_gelu): as regions of their own on the pool (0.1-0.4 ms of
           work a step) they measured slower on the shared 2-core Zen 4 (GELU 0.6 ms against 0.1 at 2
           rows), each region a chance to wait on a descheduled worker. */
        attention_job job = {m, rows, l, qkv, scores, each, attn, live < n ? last_first : chunk_first,
                             live < n ? &last_groups : &groups};
        if (fuse_self && fused_bytes(m, &layer->qkv, n)) { /* the qkv product and the attention in one region */
            riffd_int8_prepare(&layer->qkv, normed, n, prepared);
            fused_job fused = {&job, &layer->qkv, prepared, n, live};
            PHASE(PHASE_QKV, riffd_parallel(heads, 1, threads, self_fused, &fused));
        } else {
            PHASE(PHASE_QKV, project(normed, n, &layer->qkv, qkv, threads));
            if (live < n) /* keys-only rows' last keys and values: a store each head (~0.1 us), on this thread */
                PHASE(PHASE_SELF, store_only(&job, live, n));
            if (live > 0)
                PHASE(PHASE_SELF, riffd_parallel(live < n ? last_chunks : chunks, 1, threads, self_attention, &job));
        }
        if (live == 0) continue;
        PHASE(PHASE_SELF_OUT, project(attn, live, &layer->self_out, delta, threads));
        PHASE(PHASE_RESIDUAL, add_into(x, delta, live * hidden));

        if (layer->cross_q.packed) {
            PHASE(PHASE_NORM, layer_norm(x, &layer->cross_norm, m->eps, live, hidden, normed));
            if (cross_unfolded(rows, l, live)) {
                /* the query product and the attention, in one region where they can (cross_layer) */
                PHASE(PHASE_CROSS_Q, cross_layer(&job, &layer->cross_q, normed, live, prepared, threads));
                PHASE(PHASE_CROSS_OUT, project(attn, live, &layer->cross_out, delta, threads));
            } else { /* +0 for the null rows, as their attention's output times cross_out is */
                for (int64_t i = 0; i < live * hidden; i++) delta[i] = 0.0f;
            }
            PHASE(PHASE_CROSS, cross_folded(m, rows, l, live, normed, delta, inner, n * m->ffn, attn, threads));
            PHASE(PHASE_RESIDUAL, add_into(x, delta, live * hidden));
        }

        PHASE(PHASE_NORM, layer_norm(x, &layer->ffn_norm, m->eps, live, hidden, normed));
        PHASE(PHASE_FC1, project_gelu(normed, live, &layer->fc1, inner, threads)); /* GELU included */
        PHASE(PHASE_FC2, project(inner, live, &layer->fc2, delta, threads));
        PHASE(PHASE_RESIDUAL, add_into(x, delta, live * hidden));
    }
    if (logit_rows == 0) return;
    PHASE(PHASE_NORM, layer_norm(x, &m->final_norm, m->eps, logit_rows, hidden, normed));
    PHASE(PHASE_HEADS, project(normed, logit_rows, &m->lm_heads, logits, threads));
}

/* Every row with logits [n][lm_heads.rows] (riffd_step_rows_out with logit_rows = n). */
void riffd_step_rows(const riffd_model *m, const riffd_row *rows, int64_t n, float *x, float *logits, float *scratch,
                     int threads) {
    riffd_step_rows_out(m, rows, n, n, x, logits, scratch, threads);
}

/* The single-window step: the batch's rows share one cache tensor per layer and one position. */

int64_t riffd_decoder_scratch_floats(const riffd_decoder *d) {
    riffd_model model = {.hidden = d->hidden, .heads = d->heads, .head_dim = d->head_dim, .ffn = d->ffn};
    int64_t longest = d->max_positions > d->cross_len ? d->max_positions : d->cross_len;
    return scratch_floats(&model, d->batch, longest > 1 ? longest : 1);
}

/* x [batch][hidden]: the step's embedded input, overwritten; writes each layer's key and value at
   `position`; logits [batch][lm_heads.rows]. */
void riffd_decoder_step(const riffd_decoder *d, float *x, int64_t position, float *logits) {
    const int64_t n = d->batch, layers = d->layers, heads = d->heads, hd = d->head_dim;
    riffd_layer_weights weights[layers];
    riffd_row_cache caches[n * layers];
    riffd_row rows[n];
    for (int64_t l = 0; l < layers; l++) {
        const riffd_layer *layer = &d->layer[l];
        weights[l] = (riffd_layer_weights){layer->self_norm, layer->qkv, layer->self_out, layer->cross_norm,
                                           layer->cross_q, layer->cross_out, layer->ffn_norm, layer->fc1, layer->fc2};
        for (int64_t b = 0; b < n; b++) {
            size_t slots = (size_t)(b * heads * d->max_positions), cross = (size_t)(b * heads * d->cross_len * hd);
            caches[b * layers + l] = (riffd_row_cache){
                layer->keys + slots * hd, layer->values + slots * hd, layer->key_scales + slots,
                layer->value_scales + slots, layer->cross_keys ? layer->cross_keys + cross : NULL,
                layer->cross_values ? layer->cross_values + cross : NULL};
        }
    }
    for (int64_t b = 0; b < n; b++)
        rows[b] = (riffd_row){&caches[b * layers], d->cross_mask ? d->cross_mask + b * d->cross_len : NULL, position,
                              d->max_positions, d->cross_len, 8};
    riffd_model model = {d->hidden, d->heads, hd, d->ffn, layers, d->eps, weights, d->final_norm, d->lm_heads};
    riffd_step_rows(&model, rows, n, x, logits, d->scratch, d->threads);
}
#else
/* Built for a CPU without AVX2: never called (riffd_int8_supported() is 0). */
int64_t riffd_step_scratch_floats(const riffd_model *m, const riffd_row *rows, int64_t n) {
    (void)m; (void)rows; (void)n; return 0;
}
void riffd_step_rows_out(const riffd_model *m, const riffd_row *rows, int64_t n, int64_t logit_rows, float *x,
                         float *logits, float *scratch, int threads) {
    (void)m; (void)rows; (void)n; (void)logit_rows; (void)x; (void)logits; (void)scratch; (void)threads;
}
void riffd_step_rows(const riffd_model *m, const riffd_row *rows, int64_t n, float *x, float *logits, float *scratch,
                     int threads) {
    (void)m; (void)rows; (void)n; (void)x; (void)logits; (void)scratch; (void)threads;
}
int64_t riffd_decoder_scratch_floats(const riffd_decoder *d) { (void)d; return 0; }
int64_t riffd_fuse_self_cost(int64_t cost) { (void)cost; return 0; }
void riffd_gelu(float *x, int64_t count) { (void)x; (void)count; }
int64_t riffd_step_profile(double *ns, int64_t count) { (void)ns; (void)count; return 0; }
void riffd_decoder_step(const riffd_decoder *d, float *x, int64_t position, float *logits) {
    (void)d; (void)x; (void)position; (void)logits;
}
#endif
