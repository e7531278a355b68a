/* A window prefill's attention in float32, for the native engines (int8, int8a8): the causal
   self-attention, and the cross-attention to the condition (every key, an additive mask).

   A long-form window's later prefill runs ~601 context frames x 2 guidance rows through the decoder
   at once. Its projections go through int8_matvec.c; its self-attention, PyTorch's scaled dot product
   attention (the flash kernel for the CPU), measured at about a third of the float32 FMA rate on
   AMD EPYC Zen 4 (bench.window_prefill). Here each head's attention is two small matrix products
   with a softmax between, tiled for registers:
   - the keys of one head are transposed once ([64][L]), so a tile of SCORE_ROWS queries x SCORE_VECS
     vectors of keys is a sum of broadcast query elements times contiguous key vectors;
   - in the self-attention a query sees the keys up to its own position (first + i): scores past it
     are -inf, so their weights are exactly 0 and the values' pass can run the tile's rows over one
     range of keys;
   - the values' pass sums OUT_ROWS rows x a head's output in registers, a key at a time.
   The result is what F.scaled_dot_product_attention(q, k, v, is_causal=True) (or with the additive
   mask) computes, up to float32 rounding in another order (tests/musicgen/test_prefill_attention.py
   bounds it against float64):
   not bit-exact, so only the approximate (int8) engines call it, never float32. Each head is
   computed alone, whatever the other rows of the call. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS
/* Head sizes built: 64 is MusicGen's (small, medium, large), 16 and 32 the test models'. */
#define MAX_DIM 128
#define SCORE_ROWS 4
#define SCORE_VECS (VL == 16 ? 4 : 2) /* 16 sums in registers with AVX-512, 8 with 256 bits */
#define SCORE_KEYS (SCORE_VECS * VL)
/* rows of the values' pass: its sums (rows x dim / VL vectors) in 16 registers */
#define OUT_ROWS(DIM) ((DIM) / VL >= 16 ? 1 : (16 / ((DIM) / VL) < SCORE_ROWS ? 16 / ((DIM) / VL) : SCORE_ROWS))

/* Whether the kernel takes heads of `dim` values. */
int riffd_prefill_attention_fits(int64_t dim) { return dim == 16 || dim == 32 || dim == 64 || dim == 128; }

/* v, kept in a register: GCC folds a vector's load into every FMA that reads it, so a key or value
   vector that SCORE_ROWS rows share was loaded SCORE_ROWS times, and the loops waited on loads. */
static inline vf in_register(vf v) {
#if defined(__aarch64__)
    __asm__("" : "+w"(v));
#elif RIFFD_SIMD_BITS == 512
    __asm__("" : "+v"(v));
#else
    __asm__("" : "+x"(v));
#endif
    return v;
}

typedef struct {
    const float *q;
    int64_t q_stride_n, q_stride_h, q_stride_t;
    const float *k, *v;
    float *out;
    int64_t heads, t, l, first, dim;
    float scale;
    const float *mask; /* NULL, or [n][l] added to the scores */
    int causal;
} attention_job;

/* Scores of queries [i0, i0 + rows) against keys [0, keys) (keys a multiple of SCORE_KEYS), times
   `scale`, plus `mask` (NULL: none; else `keys` values), into s (SCORE_ROWS rows of `stride`). `kt`: the
   head's keys transposed, [dim][stride]. */
static inline __attribute__((always_inline)) void scores(const attention_job *j, const int dim, const float *q_head,
                                                         int64_t i0, int rows, int64_t keys, const float *kt,
                                                         int64_t stride, const float *mask, float *s) {
    const float *qrow[SCORE_ROWS];
    for (int r = 0; r < SCORE_ROWS; r++) qrow[r] = q_head + (i0 + (r < rows ? r : 0)) * j->q_stride_t;
    const vf scale = vf_set1(j->scale);
    for (int64_t c = 0; c < keys; c += SCORE_KEYS) {
        vf acc[SCORE_ROWS][SCORE_VECS];
        for (int r = 0; r < SCORE_ROWS; r++)
            for (int u = 0; u < SCORE_VECS; u++) acc[r][u] = vf_zero();
        for (int d = 0; d < dim; d++) {
            vf kv[SCORE_VECS];
            for (int u = 0; u < SCORE_VECS; u++) kv[u] = in_register(vf_load(kt + d * stride + c + u * VL));
            for (int r = 0; r < SCORE_ROWS; r++) {
                vf qd = vf_set1(qrow[r][d]);
                for (int u = 0; u < SCORE_VECS; u++) acc[r][u] = vf_fmadd(qd, kv[u], acc[r][u]);
            }
        }
        for (int r = 0; r < SCORE_ROWS; r++)
            for (int u = 0; u < SCORE_VECS; u++) {
                vf scaled = vf_mul(acc[r][u], scale);
                vf_store(s + r * stride + c + u * VL, mask ? vf_add(scaled, vf_load(mask + c + u * VL)) : scaled);
            }
    }
}

/* Row `s`'s weights in place, e^(s - max) over its `visible` keys and 0 for the rest up to `keys`;
   returns 1 / their sum. */
static float softmax_row(float *s, int64_t visible, int64_t keys) {
    for (int64_t c = visible; c < keys; c++) s[c] = -INFINITY;
    vf largest = vf_set1(-INFINITY);
    for (int64_t c = 0; c < keys; c += VL) largest = vf_max(largest, vf_load(s + c));
    const vf top = vf_set1(vf_largest(largest));
    vf total = vf_zero();
    for (int64_t c = 0; c < keys; c += VL) {
        vf e = exp_v(vf_sub(vf_load(s + c), top));
        vf_store(s + c, e);
        total = vf_add(total, e);
    }
    return 1.0f / vf_sum(total);
}

/* Rows [r0, r0 + rows) of the tile's weights (s) times the head's values over keys [0, keys), each
   row divided by its sum, into the output rows (`out_row[r]`). */
static inline __attribute__((always_inline)) void weighted_values(const int dim, const float *s, int64_t stride,
                                                                  int r0, int rows, int64_t keys, const float *v_head,
                                                                  const float *inverse, float *const *out_row) {
    enum { MAX_VECS = MAX_DIM / VL };
    const int vecs = dim / VL;
    vf acc[SCORE_ROWS][MAX_VECS];
    for (int r = 0; r < OUT_ROWS(dim); r++)
        for (int u = 0; u < vecs; u++) acc[r][u] = vf_zero();
    for (int64_t c = 0; c < keys; c++) {
        vf value[MAX_VECS];
        for (int u = 0; u < vecs; u++) value[u] = in_register(vf_load(v_head + c * dim + u * VL));
        for (int r = 0; r < OUT_ROWS(dim); r++) {
            vf weight = vf_set1(s[(r0 + (r < rows ? r : 0)) * stride + c]);
            for (int u = 0; u < vecs; u++) acc[r][u] = vf_fmadd(weight, value[u], acc[r][u]);
        }
    }
    for (int r = 0; r < rows; r++) {
        vf norm = vf_set1(inverse[r0 + r]);
        for (int u = 0; u < vecs; u++) vf_store(out_row[r0 + r] + u * VL, vf_mul(acc[r][u], norm));
    }
}

/* Heads [begin, end) (index n * heads + h) of one call, on one thread, for heads of `dim` values
   (a constant at each call site: the loops over it unroll). */
static inline __attribute__((always_inline)) void heads_of(const attention_job *j, const int dim, int64_t begin,
                                                           int64_t end) {
    const int64_t stride = (j->l + SCORE_KEYS - 1) / SCORE_KEYS * SCORE_KEYS;
    float *kt = malloc(sizeof(float) * (size_t)(dim + SCORE_ROWS + 1) * (size_t)stride);
    if (kt == NULL) abort(); /* the caller has tens of MB of activations: a few hundred KB more */
    float *s = kt + dim * stride, *mask = s + SCORE_ROWS * stride; /* the row's mask, padded with zeros */
    for (int64_t nh = begin; nh < end; nh++) {
        const int64_t n = nh / j->heads, h = nh % j->heads;
        const float *k_head = j->k + nh * j->l * dim, *v_head = j->v + nh * j->l * dim;
        const float *q_head = j->q + n * j->q_stride_n + h * j->q_stride_h;
        for (int64_t c = 0; c < stride; c++)
            for (int d = 0; d < dim; d++) kt[d * stride + c] = c < j->l ? k_head[c * dim + d] : 0.0f;
        if (j->mask)
            for (int64_t c = 0; c < stride; c++) mask[c] = c < j->l ? j->mask[n * j->l + c] : 0.0f;
        for (int64_t i0 = 0; i0 < j->t; i0 += SCORE_ROWS) {
            const int rows = j->t - i0 < SCORE_ROWS ? (int)(j->t - i0) : SCORE_ROWS;
            const int64_t last = j->causal ? j->first + i0 + rows : j->l; /* keys the tile's last row sees */
            const int64_t keys = (last + SCORE_KEYS - 1) / SCORE_KEYS * SCORE_KEYS;
            scores(j, dim, q_head, i0, rows, keys, kt, stride, j->mask ? mask : NULL, s);
            float inverse[SCORE_ROWS];
            float *out_row[SCORE_ROWS];
            for (int r = 0; r < rows; r++) {
                inverse[r] = softmax_row(s + r * stride, j->causal ? j->first + i0 + r + 1 : j->l, keys);
                out_row[r] = j->out + ((n * j->t + i0 + r) * j->heads + h) * dim;
            }
            for (int r0 = 0; r0 < rows; r0 += OUT_ROWS(dim)) {
                const int count = rows - r0 < OUT_ROWS(dim) ? rows - r0 : OUT_ROWS(dim);
                weighted_values(dim, s, stride, r0, count, last, v_head, inverse, out_row);
            }
        }
    }
    free(kt);
}

static void attention_heads(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    switch (j->dim) {
    case 16: heads_of(j, 16, begin, end); break;
    case 32: heads_of(j, 32, begin, end); break;
    case 64: heads_of(j, 64, begin, end); break;
    case 128: heads_of(j, 128, begin, end); break;
    default: break; /* riffd_prefill_attention_fits says no */
    }
}

/* q: element (n, h, i, d) at q[n * q_stride_n + h * q_stride_h + i * q_stride_t + d] (a view of the
   qkv projection's output); k, v: [n][heads][l][dim] contiguous; out: [n][t][heads][dim] (the layout
   the output projection reads). `causal`: query i sits at position l - t + i and sees keys 0 .. l - t + i
   (t <= l); else every query sees every key, `mask` (NULL: none; else [n][l]) added to its scores (the
   cross-attention's). `scale`: what multiplies q.k (F.scaled_dot_product_attention's 1 / sqrt(dim)).
   riffd_prefill_attention_fits(dim) must hold. */
void riffd_prefill_attention(const float *q, int64_t q_stride_n, int64_t q_stride_h, int64_t q_stride_t,
                             const float *k, const float *v, float *out, int64_t n, int64_t heads, int64_t t,
                             int64_t l, int64_t dim, float scale, const float *mask, int causal, int threads) {
    attention_job job = {q, q_stride_n, q_stride_h, q_stride_t, k, v, out, heads, t, l, l - t, dim, scale, mask,
                         causal};
    riffd_parallel(n * heads, 1, threads, attention_heads, &job);
}
#else
int riffd_prefill_attention_fits(int64_t dim) { (void)dim; return 0; }
void riffd_prefill_attention(const float *q, int64_t q_stride_n, int64_t q_stride_h, int64_t q_stride_t,
                             const float *k, const float *v, float *out, int64_t n, int64_t heads, int64_t t,
                             int64_t l, int64_t dim, float scale, const float *mask, int causal, int threads) {
    (void)q, (void)q_stride_n, (void)q_stride_h, (void)q_stride_t, (void)k, (void)v, (void)out, (void)n;
    (void)heads, (void)t, (void)l, (void)dim, (void)scale, (void)mask, (void)causal, (void)threads;
}
#endif
