/* A stride-1 convolution of few output channels over time-major inputs: EnCodec's last layer (64
   channels to 1 over 7 taps, 16 000 outputs a 25-frame chunk at 32 kHz).

   Time-major, the inputs an output reads are `kernel` rows of `channels` floats, `dilation` rows
   apart (with dilation 1, one contiguous window), so an output is a dot product of the weights with
   that window. VL outputs at a time, each in its own accumulator, summed across lanes together at
   the end (vf_reduce_vl), on the pool's threads. PyTorch's way (encodec_stages.Conv: one product of
   every tap, then shifted sums through a strided view) ran the layer at ~8 % of a large product's
   rate: most of it went to the strided sum and its copies, and to waking OpenMP's thread. */

#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

/* Blocks of VL outputs per pool chunk: a block is ~kernel * channels * VL multiply-adds (7168 here). */
#define CONV_TAPS_GRAIN 16

typedef struct {
    const float *x;    /* [n + (kernel - 1) * dilation][channels] */
    const float *w;    /* [out][kernel][channels] */
    const float *bias; /* [out] or NULL */
    float *y;          /* [n][out] */
    int64_t n, channels, kernel, dilation, out;
} conv_taps_job;

static void conv_blocks(void *ctx, int64_t begin, int64_t end) {
    const conv_taps_job *j = ctx;
    const int64_t channels = j->channels, row_step = j->dilation * channels;
    for (int64_t block = begin; block < end; block++) {
        const int64_t t0 = block * VL;
        const int64_t rows = j->n - t0 < VL ? j->n - t0 : VL;
        for (int64_t o = 0; o < j->out; o++) {
            const float *w = j->w + o * j->kernel * channels;
            vf acc[VL];
            for (int i = 0; i < VL; i++) acc[i] = vf_zero();
            for (int64_t tap = 0; tap < j->kernel; tap++) {
                for (int64_t c = 0; c < channels; c += VL) {
                    const vf wv = vf_load(w + tap * channels + c);
                    const float *x = j->x + t0 * channels + tap * row_step + c;
                    for (int i = 0; i < rows; i++) acc[i] = vf_fmadd(vf_load(x + i * channels), wv, acc[i]);
                }
            }
            float sums[VL];
            vf_store(sums, vf_reduce_vl(acc));
            const float b = j->bias ? j->bias[o] : 0.0f;
            for (int i = 0; i < rows; i++) j->y[(t0 + i) * j->out + o] = sums[i] + b;
        }
    }
}

/* y [n][out] = the convolution of time-major x [n + (kernel - 1) * dilation][channels] with
   w [out][kernel][channels] (tap-major rows), plus bias (NULL: none); channels % VL == 0
   (riffd_conv_taps_channel_multiple). */
void riffd_conv_taps(const float *x, int64_t n, int64_t channels, int64_t kernel, int64_t dilation, const float *w,
                     const float *bias, int64_t out, float *y, int threads) {
    conv_taps_job job = {x, w, bias, y, n, channels, kernel, dilation, out};
    riffd_parallel((n + VL - 1) / VL, CONV_TAPS_GRAIN, threads, conv_blocks, &job);
}

int64_t riffd_conv_taps_channel_multiple(void) { return VL; }
#else
void riffd_conv_taps(const float *x, int64_t n, int64_t channels, int64_t kernel, int64_t dilation, const float *w,
                     const float *bias, int64_t out, float *y, int threads) {
    (void)x; (void)n; (void)channels; (void)kernel; (void)dilation; (void)w; (void)bias; (void)out; (void)y;
    (void)threads;
}
int64_t riffd_conv_taps_channel_multiple(void) { return 0; }
#endif
