/* Attention for one (row, head) of a decode step: softmax(q . K / sqrt(head_dim) + mask) . V.

   Self-attention keys and values are int8 with a float scale per vector (kv_cache.py's layout): a
   step reads every slot written so far, so late in a window they outweigh the weights.
   Cross-attention keys and values are float32 (short, read-only). Rows are head_dim apart;
   head_dim % VL == 0. */

#include <math.h>
#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

int64_t riffd_attention_scratch_floats(int64_t length, int64_t head_dim) {
    (void)head_dim;
    return length;
}

/* Store a float32 vector as int8 codes and its scale, as kv_cache.quantize_vectors does:
   round(x * (127 / max|x|)), half to even, and max|x| / 127. count % VL == 0. */
void riffd_store_int8(int8_t *to, float *scale, const float *from, int64_t count) {
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

/* scores[0..length) = e^(score - largest); returns their sum. */
static float softmax_weights(float *scores, int64_t length, float largest) {
    vf sum = vf_zero();
    int64_t whole = length - length % VL;
    for (int64_t p = 0; p < whole; p += VL) {
        vf e = exp_v(vf_sub(vf_load(scores + p), vf_set1(largest)));
        vf_store(scores + p, e);
        sum = vf_add(sum, e);
    }
    float total = vf_sum(sum);
    for (int64_t p = whole; p < length; p++) { /* the last few, one at a time */
        scores[p] = scores[p] - largest < -87.0f ? 0.0f : expf(scores[p] - largest);
        total += scores[p];
    }
    return total;
}

void riffd_attend_int8(const float *q, const int8_t *keys, const float *key_scales, const int8_t *values,
                       const float *value_scales, int64_t length, int64_t head_dim, float *scores, float *out) {
    float scale = 1.0f / sqrtf((float)head_dim), largest = -INFINITY;
    for (int64_t p = 0; p < length; p++) {
        vf dot = vf_zero();
        for (int64_t j = 0; j < head_dim; j += VL) dot = vf_fmadd(vf_load(q + j), vf_load_i8(keys + p * head_dim + j), dot);
        scores[p] = vf_sum(dot) * (key_scales[p] * scale);
        if (scores[p] > largest) largest = scores[p];
    }
    float total = softmax_weights(scores, length, largest);
    for (int64_t p = 0; p < length; p++) scores[p] *= value_scales[p]; /* fold each slot's scale into its weight */
    for (int64_t j = 0; j < head_dim; j += VL) {
        vf acc = vf_zero();
        for (int64_t p = 0; p < length; p++)
            acc = vf_fmadd(vf_set1(scores[p]), vf_load_i8(values + p * head_dim + j), acc);
        vf_store(out + j, vf_div(acc, vf_set1(total)));
    }
}

void riffd_attend_f32(const float *q, const float *keys, const float *values, const float *mask, int64_t length,
                      int64_t head_dim, float *scores, float *out) {
    float scale = 1.0f / sqrtf((float)head_dim), largest = -INFINITY;
    for (int64_t p = 0; p < length; p++) {
        vf dot = vf_zero();
        for (int64_t j = 0; j < head_dim; j += VL) dot = vf_fmadd(vf_load(q + j), vf_load(keys + p * head_dim + j), dot);
        scores[p] = vf_sum(dot) * scale + (mask ? mask[p] : 0.0f);
        if (scores[p] > largest) largest = scores[p];
    }
    float total = softmax_weights(scores, length, largest);
    for (int64_t j = 0; j < head_dim; j += VL) {
        vf acc = vf_zero();
        for (int64_t p = 0; p < length; p++) acc = vf_fmadd(vf_set1(scores[p]), vf_load(values + p * head_dim + j), acc);
        vf_store(out + j, vf_div(acc, vf_set1(total)));
    }
}
#endif
