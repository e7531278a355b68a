/* An LSTM layer's recurrence over a piece of a stream: for each step, the recurrent product of the
   4H x H weights with the previous hidden state, added to the step's input gates (computed before,
   for the whole piece at once), then the cell update, all in one call.

   For EnCodec's streaming decode (daemon/models/musicgen/encodec_stages.py): a stream's chunk runs
   25 steps of two 1024-wide layers, each step a product of 1 (mono) or 2 (stereo) rows by 16 MB of
   float32 weights (8 MB as bfloat16) and a cell update of 1024 units. PyTorch's calls, one matrix
   product and six small elementwise ones a step, cost more in dispatch and thread wake-ups than the
   product itself (0.26 ms a frame for the elementwise ops alone on 2 threads of an AMD EPYC Zen 4).
   Here a step is one parallel region over blocks of VL hidden units: a block reads its units' four
   gate rows, sums them with the hidden state, and updates its units' cell and hidden state, which
   no other block touches; the region's end is the barrier the next step needs.

   Weights are the checkpoint's [4H][H] rows (PyTorch's gate order i, f, g, o), float32 or bfloat16
   (widened on load: every product exact in float32, the sums float32's). */

#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

typedef struct {
    const float *gates_in; /* [B][4H] this step's input gates (input product plus both biases) */
    const void *w;         /* [4H][H] float32 or bfloat16 */
    const float *h;        /* [B][H] the previous hidden state */
    float *c;              /* [B][H] the cell state, updated in place */
    float *h_out;          /* [B][H] the new hidden state */
    int64_t batch, hidden;
} lstm_step_job;

static inline vf sigmoid_v(vf x) { return vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), exp_v(vf_sub(vf_zero(), x)))); }

/* tanh(x) = 2 sigmoid(2x) - 1 (absolute error a few 1e-7, as float32's own tanh near 1). */
static inline vf tanh_v(vf x) { return vf_fnmadd(vf_set1(2.0f), sigmoid_v(vf_mul(vf_set1(-2.0f), x)), vf_set1(1.0f)); }

/* The VL dot products of rows w[row0 .. row0 + VL) with x, lane i row0 + i's. */
static inline __attribute__((always_inline)) vf dots(const void *w, int64_t row0, const float *x, int64_t k,
                                                     const int bf16) {
    vf acc[VL];
    for (int i = 0; i < VL; i++) acc[i] = vf_zero();
    for (int64_t j = 0; j < k; j += VL) {
        vf xv = vf_load(x + j);
        for (int i = 0; i < VL; i++) {
            vf wv = bf16 ? vf_load_bf16((const uint16_t *)w + (row0 + i) * k + j) : vf_load((const float *)w + (row0 + i) * k + j);
            acc[i] = vf_fmadd(wv, xv, acc[i]);
        }
    }
    return vf_reduce_vl(acc);
}

/* VL units' cell and hidden state from their four gates' sums (i, f, g, o). */
static inline __attribute__((always_inline)) void cell_update(const vf gate[4], float *c, float *h_out) {
    vf cell = vf_fmadd(sigmoid_v(gate[1]), vf_load(c), vf_mul(sigmoid_v(gate[0]), tanh_v(gate[2])));
    vf_store(c, cell);
    vf_store(h_out, vf_mul(sigmoid_v(gate[3]), tanh_v(cell)));
}

static inline __attribute__((always_inline)) void units(const lstm_step_job *s, int64_t begin, int64_t end,
                                                        const int bf16) {
    const int64_t hidden = s->hidden;
    for (int64_t block = begin; block < end; block++) {
        const int64_t u = block * VL; /* the block's first hidden unit */
        for (int64_t b = 0; b < s->batch; b++) {
            const float *h = s->h + b * hidden, *in = s->gates_in + b * 4 * hidden;
            vf gate[4];
            for (int g = 0; g < 4; g++) gate[g] = vf_add(dots(s->w, g * hidden + u, h, hidden, bf16), vf_load(in + g * hidden + u));
            cell_update(gate, s->c + b * hidden + u, s->h_out + b * hidden + u);
        }
    }
}

static void units_f32(void *ctx, int64_t begin, int64_t end) { units(ctx, begin, end, 0); }
static void units_bf16(void *ctx, int64_t begin, int64_t end) { units(ctx, begin, end, 1); }

/* gates_in [T][B][4H], w [4H][H] (bf16: bfloat16, else float32), h0 [B][H], c [B][H] (in: the
   state before the piece; out: after it), out [T][B][H] the hidden states (out[T-1] the last);
   H % VL == 0 (riffd_lstm_unit_multiple). */
void riffd_lstm_steps(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const void *w, int bf16,
                      const float *h0, float *c, float *out, int threads) {
    for (int64_t t = 0; t < steps; t++) {
        lstm_step_job job = {gates_in + t * batch * 4 * hidden, w, t ? out + (t - 1) * batch * hidden : h0, c,
                             out + t * batch * hidden, batch, hidden};
        riffd_parallel(hidden / VL, 0, threads, bf16 ? units_bf16 : units_f32, &job);
    }
}

/* As riffd_lstm_steps, the recurrent weights int8 codes times a scale per row in int8_matvec.c's packed
   layout (packed, row_sums, scale: [4H] rows of H): each step's product is riffd_int8_matvec's (the
   hidden state quantised to 16 bits, integer sums, one region on the pool), then the cell update on
   the calling thread (1024 units: a few microseconds). The weights are 4 MB a layer for EnCodec 32 kHz
   against bfloat16's 8: a step reads them from the L3 cache, whose bandwidth bounds it (a [4096, 1024]
   product 48 against 115 us, 2 threads of an AMD EPYC Zen 4). */
void riffd_lstm_steps_int8(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const int8_t *packed,
                           const int32_t *row_sums, const float *scale, const float *h0, float *c, float *out,
                           int threads) {
    float rec[batch * 4 * hidden]; /* a step's recurrent products: 16 KB a row for EnCodec 32 kHz */
    for (int64_t t = 0; t < steps; t++) {
        const float *h = t ? out + (t - 1) * batch * hidden : h0;
        riffd_int8_matvec(h, batch, hidden, packed, row_sums, scale, rec, 4 * hidden, threads);
        for (int64_t b = 0; b < batch; b++) {
            const float *in = gates_in + (t * batch + b) * 4 * hidden, *r = rec + b * 4 * hidden;
            for (int64_t u = 0; u < hidden; u += VL) {
                vf gate[4];
                for (int g = 0; g < 4; g++) gate[g] = vf_add(vf_load(r + g * hidden + u), vf_load(in + g * hidden + u));
                cell_update(gate, c + b * hidden + u, out + (t * batch + b) * hidden + u);
            }
        }
    }
}

int64_t riffd_lstm_unit_multiple(void) { return VL; }
#else
void riffd_lstm_steps_int8(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const int8_t *packed,
                           const int32_t *row_sums, const float *scale, const float *h0, float *c, float *out,
                           int threads) {
    (void)gates_in; (void)steps; (void)batch; (void)hidden; (void)packed; (void)row_sums; (void)scale; (void)h0;
    (void)c; (void)out; (void)threads;
}
void riffd_lstm_steps(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const void *w, int bf16,
                      const float *h0, float *c, float *out, int threads) {
    (void)gates_in; (void)steps; (void)batch; (void)hidden; (void)w; (void)bf16; (void)h0; (void)c; (void)out;
    (void)threads;
}
int64_t riffd_lstm_unit_multiple(void) { return 0; }
#endif
