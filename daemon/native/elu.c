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
    const vf alpha = vf_set1(j->alpha), one = vf_set1(1.0f), zero = vf_zero();
    int64_t i = begin;
    for (; i + VL <= end; i += VL) {
        vf x = vf_load(j->x + i);
        vf negative = vf_sub(exp_v(vf_min(x, zero)), one);
        vf_store(j->y + i, vf_fmadd(alpha, negative, vf_max(x, zero)));
    }
    for (; i < end; i++) j->y[i] = j->x[i] > 0.0f ? j->x[i] : j->alpha * expm1f(j->x[i]);
}

/* y[i] = elu(x[i]) for i < n; y may be x. */
void riffd_elu(const float *x, float *y, int64_t n, float alpha, int threads) {
    elu_job job = {x, y, alpha};
    riffd_parallel(n, ELU_GRAIN, threads, elu_range, &job);
}
#else
void riffd_elu(const float *x, float *y, int64_t n, float alpha, int threads) {
    (void)x; (void)y; (void)n; (void)alpha; (void)threads;
}
#endif
