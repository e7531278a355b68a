/* One MusicGen decode step (every decoder layer, the final norm and the lm heads) in one call.

   Run from Python, a step is some 400 small PyTorch calls between the weight products, and the
   int8 weights streaming through the caches evict the interpreter's and the dispatcher's working
   set, so each of those calls starts cold: measured, the glue cost more than a third of an int8
   step. Here the glue is a few hundred lines of plain loops over a handful of buffers, and the
   weight products are int8_matvec.c's kernel. The math is the engine's (engine.py) step for
   step: pre-norm layers, scaled dot-product attention over the cache's first position + 1 slots
   (kept as int8 vectors with a scale each, as the engine's int8 mode allocates it),
   cross-attention with an additive mask, exact (erf) GELU; the tests compare the two. */

#include <math.h>
#include <stdint.h>
#include <stddef.h>

#include "riffd_native.h"

#ifdef RIFFD_VNNI

static void layer_norm(const float *x, const riffd_norm *norm, float eps, int64_t rows, int64_t width, float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * width;
        float *o = out + r * width;
        double sum = 0.0, squares = 0.0;
        for (int64_t j = 0; j < width; j++) sum += xr[j];
        float mean = (float)(sum / (double)width);
        for (int64_t j = 0; j < width; j++) {
            double centred = (double)xr[j] - mean;
            squares += centred * centred;
        }
        float inv = 1.0f / sqrtf((float)(squares / (double)width) + eps);
#pragma omp simd
        for (int64_t j = 0; j < width; j++) o[j] = (xr[j] - mean) * inv * norm->weight[j] + norm->bias[j];
    }
}

static void project(const riffd_decoder *d, const float *x, int64_t rows, const riffd_int8 *w, float *out) {
    riffd_int8_matvec(x, rows, w->cols, w->packed, w->row_sums, w->scales, out, w->rows, d->threads);
}

/* x += the product, row by row (the residual connection). */
static void add_into(float *x, const float *delta, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; i++) x[i] += delta[i];
}

/* e^x, a vector at a time: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^6
   (relative error under 2e-7), times 2^n built in the exponent bits. Below -87 (a masked score)
   the result is exactly 0. */
static inline vf exp_v(vf x) {
    vf clamped = vf_min(vf_max(x, vf_set1(-87.0f)), vf_set1(88.0f));
    vf n = vf_round(vf_mul(clamped, vf_set1(1.44269504f)));
    vf r = vf_fnmadd(n, vf_set1(0.693145752f), clamped); /* ln 2 in two parts (Cody-Waite) */
    r = vf_fnmadd(n, vf_set1(1.42860677e-6f), r);
    vf p = vf_set1(1.0f / 720);
    p = vf_fmadd(p, r, vf_set1(1.0f / 120));
    p = vf_fmadd(p, r, vf_set1(1.0f / 24));
    p = vf_fmadd(p, r, vf_set1(1.0f / 6));
    p = vf_fmadd(p, r, vf_set1(0.5f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    vf two_to_n = vf_as_float(vi_shift_left(vi_add(vf_to_int(n), vi_set1(127)), 23)); /* n in [-126, 127] */
    return vf_zero_below(vf_mul(p, two_to_n), x, -87.0f);
}

/* erf(x), a vector at a time: Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7), odd in x. */
static inline vf erf_v(vf x) {
    vf a = vf_abs(x);
    vf t = vf_div(vf_set1(1.0f), vf_fmadd(a, vf_set1(0.3275911f), vf_set1(1.0f)));
    vf p = vf_set1(1.061405429f);
    p = vf_fmadd(p, t, vf_set1(-1.453152027f));
    p = vf_fmadd(p, t, vf_set1(1.421413741f));
    p = vf_fmadd(p, t, vf_set1(-0.284496736f));
    p = vf_fmadd(p, t, vf_set1(0.254829592f));
    p = vf_mul(p, t);
    vf e = vf_fnmadd(p, exp_v(vf_mul(vf_sub(vf_zero(), a), a)), vf_set1(1.0f));
    return vf_copysign(e, x);
}

/* Exact (erf) GELU in place; count % VL == 0. Exported for the tests. */
void riffd_gelu(float *x, int64_t count) {
    for (int64_t i = 0; i < count; i += VL) {
        vf v = vf_load(x + i);
        vf half = vf_mul(v, vf_set1(0.5f));
        vf_store(x + i, vf_fmadd(half, erf_v(vf_mul(v, vf_set1((float)M_SQRT1_2))), half));
    }
}

/* Self-attention rows are int8 with a float scale each (kv_cache.py's layout): a step reads every
   row written so far, so late in a window they outweigh the weights. Cross-attention rows are
   float32 (short, read-only). `scales` NULL: float32 rows. */
static inline vf load_row(const void *rows, const float *scales, int64_t index) {
    return scales ? vf_load_i8((const int8_t *)rows + index) : vf_load((const float *)rows + index);
}

/* softmax(q . K[0..length) / sqrt(head_dim) + mask) . V for one (row, head); rows head_dim apart,
   head_dim % VL == 0. */
static void attend(const float *q, const void *keys, const float *key_scales, const void *values,
                   const float *value_scales, const float *mask, int64_t length, int64_t head_dim, float *scores,
                   float *out) {
    float scale = 1.0f / sqrtf((float)head_dim), largest = -INFINITY;
    for (int64_t p = 0; p < length; p++) {
        vf dot = vf_zero();
        for (int64_t j = 0; j < head_dim; j += VL)
            dot = vf_fmadd(vf_load(q + j), load_row(keys, key_scales, p * head_dim + j), dot);
        float row_scale = key_scales ? key_scales[p] * scale : scale;
        scores[p] = vf_sum(dot) * row_scale + (mask ? mask[p] : 0.0f);
        if (scores[p] > largest) largest = scores[p];
    }
    vf sum = vf_zero();
    int64_t whole = length - length % VL;
    for (int64_t p = 0; p < whole; p += VL) {
        vf e = exp_v(vf_sub(vf_load(scores + p), vf_set1(largest)));
        vf_store(scores + p, e);
        sum = vf_add(sum, e);
    }
    float total = vf_sum(sum);
    for (int64_t p = whole; p < length; p++) {  /* the last few, one at a time */
        scores[p] = scores[p] - largest < -87.0f ? 0.0f : expf(scores[p] - largest);
        total += scores[p];
    }
    if (value_scales)  /* fold each row's scale into its weight */
        for (int64_t p = 0; p < length; p++) scores[p] *= value_scales[p];
    for (int64_t j = 0; j < head_dim; j += VL) {
        vf acc = vf_zero();
        for (int64_t p = 0; p < length; p++)
            acc = vf_fmadd(vf_set1(scores[p]), load_row(values, value_scales, p * head_dim + j), acc);
        vf_store(out + j, vf_div(acc, vf_set1(total)));
    }
}

/* Store a float32 row as int8 codes and its scale, as kv_cache.quantize_vectors does:
   round(x * (127 / max|x|)), half to even, and max|x| / 127. count % VL == 0. */
static void store_int8(int8_t *to, float *scale, const float *from, int64_t count) {
    vf amax = vf_zero();
    for (int64_t j = 0; j < count; j += VL) amax = vf_max(amax, vf_abs(vf_load(from + j)));
    float largest = vf_largest(amax);
    vf inverse = vf_set1(largest > 0.0f ? 127.0f / largest : 0.0f);
    for (int64_t j = 0; j < count; j += VL) {
        vi codes = vi_min(vi_max(vf_to_int(vf_mul(vf_load(from + j), inverse)), vi_set1(-127)), vi_set1(127));
        vi_store_bytes(to + j, codes);
    }
    *scale = largest / 127.0f;
}

/* Floats of scratch a step needs; the caller allocates them once. */
int64_t riffd_decoder_scratch_floats(const riffd_decoder *d) {
    int64_t longest = d->max_positions > d->cross_len ? d->max_positions : d->cross_len;
    return d->batch * (3 * d->hidden + 2 * d->hidden + d->ffn) + d->batch * d->heads * longest;
}

/* x [batch][hidden]: the step's embedded input, overwritten; writes each layer's key and value at
   `position`; logits [batch][lm_heads.rows]. */
void riffd_decoder_step(const riffd_decoder *d, float *x, int64_t position, float *logits) {
    const int64_t n = d->batch, hidden = d->hidden, heads = d->heads, hd = d->head_dim;
    const int64_t longest = d->max_positions > d->cross_len ? d->max_positions : d->cross_len;
    float *qkv = d->scratch, *normed = qkv + n * 3 * hidden, *attn = normed + n * hidden;
    float *inner = attn + n * hidden, *scores = inner + n * d->ffn;
    float *delta = qkv; /* a projection's output, once qkv is no longer needed */

    for (int64_t l = 0; l < d->layers; l++) {
        const riffd_layer *layer = &d->layer[l];

        layer_norm(x, &layer->self_norm, d->eps, n, hidden, normed);
        project(d, normed, n, &layer->qkv, qkv);
        for (int64_t b = 0; b < n; b++)
            for (int64_t h = 0; h < heads; h++) {
                size_t row = (size_t)((b * heads + h) * d->max_positions + position);
                store_int8(layer->keys + row * hd, layer->key_scales + row, qkv + b * 3 * hidden + hidden + h * hd, hd);
                store_int8(layer->values + row * hd, layer->value_scales + row, qkv + b * 3 * hidden + 2 * hidden + h * hd,
                           hd);
            }
#pragma omp parallel for schedule(static) num_threads(d->threads)
        for (int64_t task = 0; task < n * heads; task++) {
            int64_t b = task / heads, h = task % heads;
            size_t rows = (size_t)(task * d->max_positions);
            attend(qkv + b * 3 * hidden + h * hd, layer->keys + rows * hd, layer->key_scales + rows,
                   layer->values + rows * hd, layer->value_scales + rows, NULL, position + 1, hd,
                   scores + task * longest, attn + b * hidden + h * hd);
        }
        project(d, attn, n, &layer->self_out, delta);
        add_into(x, delta, n * hidden);

        if (layer->cross_q.packed) {
            layer_norm(x, &layer->cross_norm, d->eps, n, hidden, normed);
            project(d, normed, n, &layer->cross_q, qkv);
#pragma omp parallel for schedule(static) num_threads(d->threads)
            for (int64_t task = 0; task < n * heads; task++) {
                int64_t b = task / heads, h = task % heads;
                size_t base = (size_t)(task * d->cross_len * hd);
                attend(qkv + b * hidden + h * hd, layer->cross_keys + base, NULL, layer->cross_values + base, NULL,
                       d->cross_mask ? d->cross_mask + b * d->cross_len : NULL, d->cross_len, hd,
                       scores + task * longest, attn + b * hidden + h * hd);
            }
            project(d, attn, n, &layer->cross_out, delta);
            add_into(x, delta, n * hidden);
        }

        layer_norm(x, &layer->ffn_norm, d->eps, n, hidden, normed);
        project(d, normed, n, &layer->fc1, inner);
        riffd_gelu(inner, n * d->ffn);
        project(d, inner, n, &layer->fc2, delta);
        add_into(x, delta, n * hidden);
    }
    layer_norm(x, &d->final_norm, d->eps, n, hidden, normed);
    project(d, normed, n, &d->lm_heads, logits);
}
#else
/* Built for a CPU without AVX-512 VNNI: never called (riffd_int8_supported() is 0). */
int64_t riffd_decoder_scratch_floats(const riffd_decoder *d) { (void)d; return 0; }
void riffd_gelu(float *x, int64_t count) { (void)x; (void)count; }
void riffd_decoder_step(const riffd_decoder *d, float *x, int64_t position, float *logits) {
    (void)d; (void)x; (void)position; (void)logits;
}
#endif
