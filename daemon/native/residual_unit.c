/* SEANet's residual unit over time-major rows: y = x + point_bias + point . elu(conv * elu(x) + conv_bias),
   the wide convolution reading each output's window of the padded inputs x, the shortcut its own input.
   EnCodec 32 kHz's decoder has four (512 to 64 channels, hidden half that, 3 taps), ~1 G multiply-adds
   a second of audio; as PyTorch's per-tap products (oneDNN) they ran ~25 ms a second of audio on 2 cores
   of an AMD EPYC Zen 4, ~55 % of a large product's rate.

   A block of rows (one pool chunk) takes the ELU of its inputs into a buffer of its own, makes its
   hidden rows into another (the wide convolution, its bias, the second ELU in place, while they are in
   cache), then writes its outputs: the shortcut and bias, plus the hidden rows' product with the 1x1
   weights. Both convolutions are products by panels of weights (packed once, see residual_unit.py): a
   panel is PANEL = 2 vectors of outputs, its rows the inputs in order (tap, then channel), so a tile of
   TILE_ROWS rows by one panel keeps its sums in registers over every tap and channel, each input
   broadcast once per panel; each panel serves every tile of the block from the L2 cache. The inputs
   come in two pieces (a stream's kept rows, then its new ones), so they are never joined first. */

#include <stddef.h>
#include <stdint.h>

/* The 256-bit branch built on an AVX-512 CPU (the AVX-VNNI branch there, as --emulate avx_vnni runs it):
   compiled with AVX-512 on, this file's code ran at half the rate of the same code compiled without it
   (4 units of a 25-frame chunk 11.8-12.4 against 6.1 ms, AMD EPYC Zen 4); it uses nothing of AVX-512. */
#if defined(RIFFD_SIMD_256) && defined(__AVX512F__)
#pragma GCC target("no-avx512f")
#endif

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

#define PANEL (2 * VL)
/* Rows a tile: 2 * TILE_ROWS accumulators, the panel's 2 vectors and a broadcast stay in registers
   (AVX-512 and NEON have 32). 256-bit vectors: 5 rows; with 6, GCC kept one accumulator on the stack
   when AVX-512 VL's registers were there too (the AVX-VNNI branch built on an AVX-512 CPU, as
   --emulate avx_vnni does), half the rate: 4 units of a 25-frame chunk 19.7-20.2 against 11.5-11.6 ms
   (AMD EPYC Zen 4, loaded); the AVX2 build, 6.28 against 5.97. RU_TILE_ROWS overrides, to measure. */
#ifdef RU_TILE_ROWS
#define TILE_ROWS RU_TILE_ROWS
#elif VL == 8
#define TILE_ROWS 5
#else
#define TILE_ROWS 12
#endif
/* Floats a block holds on its thread's stack: its inputs' ELU and its hidden rows; its rows are as many
   tiles as fit in both. */
#define BLOCK_ACT_FLOATS 32768
#define BLOCK_HIDDEN_FLOATS 16384

typedef struct {
    const float *head, *tail; /* the padded inputs' rows: head_rows of head, then tail's */
    int64_t head_rows;
    const float *conv;        /* [hidden / PANEL][kernel * channels][PANEL] */
    const float *conv_bias;   /* [hidden] or NULL */
    const float *point;       /* [channels / PANEL][hidden][PANEL] */
    const float *point_bias;  /* [channels] or NULL */
    float *y;                 /* [n][channels] */
    int64_t n, channels, hidden, kernel, dilation, shortcut;
    int64_t block; /* tiles a block at most */
    float alpha_in, alpha_hidden;
} unit_job;

static inline const float *input_row(const unit_job *j, int64_t row) {
    return row < j->head_rows ? j->head + row * j->channels : j->tail + (row - j->head_rows) * j->channels;
}

/* out[r][0..PANEL) for r < rows (a constant in each instance): the sums over `taps` taps (`tap_step`
   floats apart in a) of `k` inputs, a[r * lda + c], times the panel's rows; starting from out itself
   (`accumulate`), the bias, or zero. */
static inline __attribute__((always_inline)) void tile(const float *a, int64_t lda, int64_t taps, int64_t tap_step,
                                                       int64_t k, const float *panel, const float *bias, float *out,
                                                       int64_t ldo, const int accumulate, const int rows) {
    vf low[TILE_ROWS], high[TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        if (accumulate) low[r] = vf_load(out + r * ldo), high[r] = vf_load(out + r * ldo + VL);
        else if (bias) low[r] = vf_load(bias), high[r] = vf_load(bias + VL);
        else low[r] = high[r] = vf_zero();
    }
    for (int64_t tap = 0; tap < taps; tap++) {
        const float *at = a + tap * tap_step, *w = panel + tap * k * PANEL;
        for (int64_t c = 0; c < k; c++) {
            const vf w0 = vf_load(w + c * PANEL), w1 = vf_load(w + c * PANEL + VL);
            for (int r = 0; r < rows; r++) {
                const vf v = vf_set1(at[r * lda + c]);
                low[r] = vf_fmadd(v, w0, low[r]);
                high[r] = vf_fmadd(v, w1, high[r]);
            }
        }
    }
    for (int r = 0; r < rows; r++) vf_store(out + r * ldo, low[r]), vf_store(out + r * ldo + VL, high[r]);
}

#define TILE_CASE(R) case R: tile(a, lda, taps, tap_step, k, panel, bias, out, ldo, accumulate, R); break;

/* `tile` for `rows` <= TILE_ROWS, each count its own instance (the sums stay in registers). */
static void tile_rows(const float *a, int64_t lda, int64_t taps, int64_t tap_step, int64_t k, const float *panel,
                      const float *bias, float *out, int64_t ldo, const int accumulate, int rows) {
    switch (rows) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
#if TILE_ROWS > 4
        TILE_CASE(5)
#endif
#if TILE_ROWS > 5
        TILE_CASE(6)
#endif
#if TILE_ROWS > 6
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
#endif
        default: break;
    }
}

/* The products of rows [t0, t0 + rows) by every panel of `weights` ([outputs / PANEL][taps * k][PANEL]):
   panel by panel, tile by tile, so a panel is read from memory once a block. */
static void block_product(const float *a, int64_t lda, int64_t taps, int64_t tap_step, int64_t k,
                          const float *weights, int64_t outputs, const float *bias, float *out, int64_t ldo,
                          int accumulate, int64_t rows) {
    for (int64_t p = 0; p < outputs / PANEL; p++) {
        const float *panel = weights + p * taps * k * PANEL, *panel_bias = bias ? bias + p * PANEL : NULL;
        for (int64_t r = 0; r < rows; r += TILE_ROWS) {
            const int count = rows - r < TILE_ROWS ? (int)(rows - r) : TILE_ROWS;
            tile_rows(a + r * lda, lda, taps, tap_step, k, panel, panel_bias, out + r * ldo + p * PANEL, ldo,
                      accumulate, count);
        }
    }
}

/* Rows t0 to t0 + rows, one block (within both buffers). */
static void unit_block(const unit_job *j, int64_t t0, int64_t rows) {
    const int64_t channels = j->channels, hidden = j->hidden, span = (j->kernel - 1) * j->dilation;
    float act[BLOCK_ACT_FLOATS], h[BLOCK_HIDDEN_FLOATS];
    const vf alpha_in = vf_set1(j->alpha_in), alpha_hidden = vf_set1(j->alpha_hidden);
    for (int64_t r = 0; r < rows + span; r++) {
        const float *x = input_row(j, t0 + r);
        for (int64_t c = 0; c < channels; c += VL) vf_store(act + r * channels + c, elu_v(vf_load(x + c), alpha_in));
    }
    block_product(act, channels, j->kernel, j->dilation * channels, channels, j->conv, hidden, j->conv_bias, h,
                  hidden, 0, rows);
    for (int64_t i = 0; i < rows * hidden; i += VL) vf_store(h + i, elu_v(vf_load(h + i), alpha_hidden));
    for (int64_t r = 0; r < rows; r++) {
        const float *x = input_row(j, t0 + r + j->shortcut);
        float *y = j->y + (t0 + r) * channels;
        for (int64_t c = 0; c < channels; c += VL)
            vf_store(y + c, j->point_bias ? vf_add(vf_load(x + c), vf_load(j->point_bias + c)) : vf_load(x + c));
    }
    block_product(h, hidden, 1, 0, hidden, j->point, channels, NULL, j->y + t0 * channels, channels, 1, rows);
}

/* Tiles [begin, end) of rows, in blocks (the pool runs a whole range in one call on one thread). */
static void unit_blocks(void *ctx, int64_t begin, int64_t end) {
    const unit_job *j = ctx;
    for (int64_t tile0 = begin; tile0 < end; tile0 += j->block) {
        const int64_t t0 = tile0 * TILE_ROWS, stop = (tile0 + j->block < end ? tile0 + j->block : end) * TILE_ROWS;
        unit_block(j, t0, (stop < j->n ? stop : j->n) - t0);
    }
}

/* Tiles a block holds at most for these sizes; 0: not even one. */
static int64_t block_tiles(int64_t channels, int64_t hidden, int64_t span) {
    if (channels <= 0 || hidden <= 0 || span < 0) return 0;
    const int64_t by_hidden = BLOCK_HIDDEN_FLOATS / (hidden * TILE_ROWS);
    const int64_t by_act = (BLOCK_ACT_FLOATS / channels - span) / TILE_ROWS;
    return by_hidden < by_act ? by_hidden : by_act;
}

/* y [n][channels] = x[t + shortcut] + point_bias + point . elu(conv * elu(x) + conv_bias) (NULL biases:
   none) for the padded inputs x, time-major [n + (kernel - 1) * dilation][channels]: head_rows rows at
   head, then tail's. The weights packed into panels (riffd_residual_unit_panel columns; channels and
   hidden multiples of it); both ELUs elu_v's (riffd_elu's bits). Nothing is done unless
   riffd_residual_unit_fits. */
void riffd_residual_unit(const float *head, int64_t head_rows, const float *tail, int64_t n, int64_t channels,
                         int64_t hidden, int64_t kernel, int64_t dilation, int64_t shortcut, const float *conv,
                         const float *conv_bias, float alpha_in, const float *point, const float *point_bias,
                         float alpha_hidden, float *y, int threads) {
    const int64_t most = block_tiles(channels, hidden, (kernel - 1) * dilation);
    if (n <= 0 || most <= 0 || channels % PANEL || hidden % PANEL) return;
    unit_job job = {head, tail, head_rows, conv, conv_bias, point, point_bias, y, n, channels, hidden, kernel,
                    dilation, shortcut, most, alpha_in, alpha_hidden};
    const int64_t tiles = (n + TILE_ROWS - 1) / TILE_ROWS;
    /* Blocks as large as fit, but at least one a thread. */
    const int64_t share = (tiles + (threads > 1 ? threads : 1) - 1) / (threads > 1 ? threads : 1);
    riffd_parallel(tiles, share < most ? share : most, threads, unit_blocks, &job);
}

int64_t riffd_residual_unit_panel(void) { return PANEL; }
int riffd_residual_unit_fits(int64_t channels, int64_t hidden, int64_t span) {
    return block_tiles(channels, hidden, span) > 0 && !(channels % PANEL) && !(hidden % PANEL);
}
#else
void riffd_residual_unit(const float *head, int64_t head_rows, const float *tail, int64_t n, int64_t channels,
                         int64_t hidden, int64_t kernel, int64_t dilation, int64_t shortcut, const float *conv,
                         const float *conv_bias, float alpha_in, const float *point, const float *point_bias,
                         float alpha_hidden, float *y, int threads) {
    (void)head; (void)head_rows; (void)tail; (void)n; (void)channels; (void)hidden; (void)kernel; (void)dilation;
    (void)shortcut; (void)conv; (void)conv_bias; (void)alpha_in; (void)point; (void)point_bias; (void)alpha_hidden;
    (void)y; (void)threads;
}
int64_t riffd_residual_unit_panel(void) { return 0; }
int riffd_residual_unit_fits(int64_t channels, int64_t hidden, int64_t span) {
    (void)channels; (void)hidden; (void)span;
    return 0;
}
#endif
