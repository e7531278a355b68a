/* ELU, x for x > 0 else alpha (e^x - 1), a vector at a time (on the pool's threads if asked: the
   codec asks for one, see elu.py).

   For EnCodec's streaming decode (daemon/models/musicgen/encodec_stages.py): some 9.5 million
   activations a second of audio pass an ELU, and PyTorch's runs one scalar expm1 per element on one
   thread (1.37 ms for a chunk's 1 M at 32 kHz on an AMD EPYC Zen 4, with 1 thread or 2), 12 ms a
   second of audio. Here: max(x, 0) + alpha (e^min(x, 0) - 1) with vmath.h's e^x (relative error
   under 2e-7, so within 2e-7 of alpha absolute; exactly x for x >= 0). */

#include <math.h>
#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

/* Elements per pool chunk: enough that handing a chunk out costs nothing next to it. */
#define ELU_GRAIN 16384

typedef struct {
    const float *x;
    float *y;
    float alpha;
} elu_job;

static void elu_range(void *ctx, int64_t begin, int64_t end) {
    const elu_job *j = ctx;
    const vf alpha = vf_set1(j->alpha);
    int64_t i = begin;
    for (; i + VL <= end; i += VL) vf_store(j->y + i, elu_v(vf_load(j->x + i), alpha));
    for (; i < end; i++) j->y[i] = j->x[i] > 0.0f ? j->x[i] : j->alpha * expm1f(j->x[i]);
}

/* y[i] = elu(x[i]) for i < n; y may be x. */
void riffd_elu(const float *x, float *y, int64_t n, float alpha, int threads) {
    elu_job job = {x, y, alpha};
    riffd_parallel(n, ELU_GRAIN, threads, elu_range, &job);
}

/* ELU of one row of `cols` values (a multiple of VL) into y: the vector path of elu_range, so the
   same bits. */
static inline void elu_row(const float *x, float *y, int64_t cols, float alpha_value) {
    const vf alpha = vf_set1(alpha_value);
    for (int64_t i = 0; i < cols; i += VL) vf_store(y + i, elu_v(vf_load(x + i), alpha));
}

typedef struct {
    const float *x, *last;
    float *pairs;
    int64_t cols;
    float alpha;
} elu_pairs_job;

/* Rows [begin, end): row t's right half is elu(x[t]), written once and copied into row t + 1's left
   half; row begin's left half is elu(x[begin - 1]) (or `last`), made here. */
static void elu_pairs_range(void *ctx, int64_t begin, int64_t end) {
    const elu_pairs_job *j = ctx;
    const int64_t cols = j->cols;
    float *first_left = j->pairs + begin * 2 * cols;
    if (begin) elu_row(j->x + (begin - 1) * cols, first_left, cols, j->alpha);
    else for (int64_t i = 0; i < cols; i++) first_left[i] = j->last[i];
    for (int64_t t = begin; t < end; t++) {
        float *right = j->pairs + t * 2 * cols + cols;
        elu_row(j->x + t * cols, right, cols, j->alpha);
        if (t + 1 < end) for (int64_t i = 0; i < cols; i += VL) vf_store(right + cols + i, vf_load(right + i));
    }
}

/* pairs [n][2 * cols]: row t is elu(x[t - 1]) then elu(x[t]), x [n][cols] (cols % VL == 0), the row
   before x[0] given as `last` (its ELU already taken). A transposed convolution's input pairs
   (encodec_stages.ConvTranspose) straight from the ELU before it: one pass, on the pool. */
void riffd_elu_pairs(const float *x, int64_t n, int64_t cols, const float *last, float alpha, float *pairs,
                     int threads) {
    elu_pairs_job job = {x, last, pairs, cols, alpha};
    riffd_parallel(n, (ELU_GRAIN + 2 * cols - 1) / (2 * cols), threads, elu_pairs_range, &job);
}
#else
void riffd_elu(const float *x, float *y, int64_t n, float alpha, int threads) {
    (void)x; (void)y; (void)n; (void)alpha; (void)threads;
}
void riffd_elu_pairs(const float *x, int64_t n, int64_t cols, const float *last, float alpha, float *pairs,
                     int threads) {
    (void)x; (void)n; (void)cols; (void)last; (void)alpha; (void)pairs; (void)threads;
}
#endif
