/* Declarations shared by riffd's native kernels (one library built from every .c file here).
   The structs are mirrored by ctypes in daemon/native/decoder_step.py: keep the two in step. */

#ifndef RIFFD_NATIVE_H
#define RIFFD_NATIVE_H

#include <stdint.h>

#include "simd.h" /* RIFFD_VNNI where the CPU has what the kernels need */

/* int8 weights [rows][cols] in int8_matvec.c's packed block layout. */
typedef struct {
    const int8_t *packed;
    const int32_t *row_sums;
    const float *scales;
    int64_t rows, cols;
} riffd_int8;

typedef struct {
    const float *weight, *bias;
} riffd_norm;

/* One pre-norm decoder layer: self-attention, cross-attention (cross_q.packed NULL: none), MLP. */
typedef struct {
    riffd_norm self_norm;
    riffd_int8 qkv, self_out;
    riffd_norm cross_norm;
    riffd_int8 cross_q, cross_out;
    riffd_norm ffn_norm;
    riffd_int8 fc1, fc2;
    int8_t *keys, *values;                   /* [batch][heads][max_positions][head_dim], written in place */
    float *key_scales, *value_scales;        /* [batch][heads][max_positions]: a slot is codes * scale */
    const float *cross_keys, *cross_values;  /* [batch][heads][cross_len][head_dim] */
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

void riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                       const float *scale, float *y, int64_t n, int threads);

#endif
