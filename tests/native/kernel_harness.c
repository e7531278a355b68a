/* Every entry point of riffd's native kernels against plain double-precision C, on random inputs.

   Built with the C files of daemon/native for each branch (tests/native/test_kernel_harness.py: the ARM
   NEON dot-product build, run under qemu-user, and every x86 branch this machine runs). Prints one line per check
   and "harness: N checks, M failed" last; exits 1 if any failed, 2 if the kernels were built as
   stubs (a CPU without what they need), so the caller can tell the two apart.

   Bounds (each check prints its worst error as a share of its bound):
   - int8 matvec: activations are carried as 16-bit fixed point, each off by at most half a step
     of max|x| / 32767, so an output is off by at most that times its row's sum of |weights|; the
     integer sums are exact; float32 rounding adds under 1e-5 of the largest output.
   - int8a8 matvec: exactly the bits its specification gives (activations rounded to bytes per row,
     exact integer sums, then two float32 products), and within half a step of max|x| / 127 times
     the row's sum of |weights| (plus float32 rounding) of double maths.
   - int4 matvec: activations are rounded to bytes per group of inputs, each off by at most half a
     step of the group's max|x| / 127, so an output by at most the sum over groups of that times
     the group's sum of |weights|; float32 rounding adds under 1e-5 of sum |x| |w|.
   - float32 matmul: float32 sums of k products, under 1e-5 of the sum of |products| (k <= 4096).
   - GELU: erf to 1.5e-7, so within 1e-7 |x| + 1e-7 of the exact function.
   - ELU (the streaming codec's): e^x to 2e-7 relative, so within 2e-7 alpha of alpha (e^x - 1), and
     exactly x where x >= 0.
   - LSTM recurrence (the streaming codec's): float32 sums of exact products (bfloat16 weights widened
     exactly) and e^x to 2e-7, so each hidden and cell value within 2e-6 of double maths after nine
     steps carried across two calls. On int8 codes (riffd_lstm_steps_int8: the products riffd_int8_matvec's,
     the hidden state carried at 16 bits into each) within 1e-4 of double maths on the codes times their
     scales.
   - ELU pairs (a transposed convolution's inputs, the codec's): exactly riffd_elu's bits, so its bound.
   - Convolution taps (the codec's convolutions of few outputs): float32 sums of exact products, under
     1e-5 of the sum of |products| and |bias| (kernel * channels <= 4096).
   - Sampling scores (guidance, temperature, top-k): the same float32 operations in the same order as
     the PyTorch expressions they replace, so exactly the bits of this file's plain float32 reference
     (the k-th largest found by sorting), -inf where below it.
   - The 4-bit cache (+kv4): riffd_store_int4's codes are round(x * 7 / max|x|) of double maths (one off
     only within 1e-5 of a tie) and its scale max|x| / 7 as float16, within its rounding (half a unit in
     the last place: 2^-11 of the scale, 2^-25 below float16's normal range); riffd_attend_int4 over
     random codes and float16 scales (riffd_attend_kv4: float32 ones for its int8 head) within 1e-5 of the values' largest magnitude of softmax attention in double,
     plus, where the 4-bit values are weighed with the weights rounded to 16 bits (riffd_attend_int4_words:
     head_dim 64 on the 256-bit x86 branches and AVX-512 with VBMI), half a step of the largest 4-bit weight times each output's
     sum of |code| over those positions, over the softmax's total.
     Where the 4-bit slots score through the integer product (riffd_attend_int4_integer: head_dim 64
     and 128 on every branch), that double maths meets them with the query as specified, rounded to
     bytes (round(q * 127 / max|q|) in float32, times max|q| / 127); and against the double maths
     with q itself, within what that rounding allows: each score moves by at most
     m = max|q| / 254 * sum|k| * key_scale / sqrt(hd), so the output by (e^(2 m) - 1) times the
     largest value (plus the 1e-5). That comparison takes the 4-bit positions' scales before their
     rounding to float16 too (float32's, as the store computes them): each moves by at most 2^-11 of itself, a score by
     |q . k| * key_scale * 2^-11 / sqrt(hd) more (in m), and a value by 2^-11 of itself, so the output by
     2^-11 of the largest value more.
   - A folded condition (riffd_fold_condition): each folded vector is double maths on the projections'
     codes (the keys' coefficients carried at 16 bits, as the int8 matvec's bound) rounded to int8 with
     its own scale, so each value within half that scale plus the matvec's bound; padding exactly zero.
   - The whole decoder step (riffd_step_rows, the rows of a batch): a reference step in double doing what the kernels specify (each
     product's activations rounded as the kernels round them, exact sums, exact erf
     GELU, softmax in double) and attending over the kernel's own int8 cache, whose newest vectors
     are checked against the reference's keys and values (a code may be one off only where the
     value is within 0.01 of a code of a tie). Where an activation sits on a rounding tie, the
     kernel's float32 value and the reference's double one (~1e-7 of max|x| apart) may round to
     neighbouring codes: with 8-bit codes that one step (max|x| / 127) moved the logits up to 11
     times their bound (38 of 100 seeds failed, int4 and int8a8 only). So the reference takes the
     kernel's code there, and only there: the step's activations are recorded as it runs (the
     matvecs are linked wrapped) and every code that differs elsewhere fails a check of its own.
     What is left is float32 arithmetic: the logits stay within 3e-4 of their largest magnitude
     (1e-4 seen), and the greedy code of every codebook is the same wherever the reference's top
     two differ by more than that. The first argument, if any, seeds the random inputs (100 seeds
     pass). */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "riffd_native.h"

int riffd_int8_supported(void);
int riffd_simd_bits(void);
const char *riffd_isa(void);
int64_t riffd_int4_group_bytes(int64_t group);
void riffd_int4_dequantize(const uint8_t *packed, int64_t n, int64_t k, int64_t group, float *out, int threads);
void riffd_f32_matmul(const float *x, int64_t m, int64_t k, const float *w, float *y, int64_t n, int threads);
void riffd_bf16_matmul(const float *x, int64_t m, int64_t k, const uint16_t *w, float *y, int64_t n, int threads);
void riffd_gelu(float *x, int64_t count);
void riffd_elu(const float *x, float *y, int64_t n, float alpha, int threads);
int64_t riffd_lstm_unit_multiple(void);
void riffd_lstm_steps(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const void *w, int bf16,
                      const float *h0, float *c, float *out, int threads);
void riffd_lstm_steps_int8(const float *gates_in, int64_t steps, int64_t batch, int64_t hidden, const int8_t *packed,
                           const int32_t *row_sums, const float *scale, const float *h0, float *c, float *out,
                           int threads);
void riffd_elu_pairs(const float *x, int64_t n, int64_t cols, const float *last, float alpha, float *pairs,
                     int threads);
int64_t riffd_conv_taps_channel_multiple(void);
void riffd_conv_taps(const float *x, int64_t n, int64_t channels, int64_t kernel, int64_t dilation, const float *w,
                     const float *bias, int64_t out, float *y, int threads);
int64_t riffd_residual_unit_panel(void);
int riffd_residual_unit_fits(int64_t channels, int64_t hidden, int64_t span);
void riffd_residual_unit(const float *head, int64_t head_rows, const float *tail, int64_t n, int64_t channels,
                         int64_t hidden, int64_t kernel, int64_t dilation, int64_t shortcut, const float *conv,
                         const float *conv_bias, float alpha_in, const float *point, const float *point_bias,
                         float alpha_hidden, float *y, int threads);
int64_t riffd_sampling_scores(const float *logits, int64_t rows, int64_t vocab, int guided, float guidance,
                              float temperature, int64_t top_k, float *scores, float *work);
int64_t riffd_attention_scratch_floats(int64_t length, int64_t head_dim);
void riffd_store_int4(uint8_t *to, uint16_t *scale, const float *from, int64_t count);
void riffd_attend_int4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                       const uint16_t *value_scales, int64_t length, int64_t head_dim, float *scratch, float *out);
void riffd_attend_kv4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                      const uint16_t *value_scales, int64_t length, int64_t int8_positions, int64_t head_dim,
                      float *scores, float *out);
int riffd_attend_int4_integer(int64_t head_dim);
int riffd_attend_int4_words(int64_t head_dim);
int64_t riffd_step_scratch_floats(const riffd_model *m, const riffd_row *rows, int64_t n);
void riffd_step_rows(const riffd_model *m, const riffd_row *rows, int64_t n, float *x, float *logits, float *scratch,
                     int threads);

int riffd_int8_block_rows(void);

#define THREADS 2
#define BLOCK 32 /* int4's block rows */

static int checks, failures;

static void report(const char *what, double worst_share) {
    checks++;
    int ok = worst_share <= 1.0;
    if (!ok) failures++;
    printf("%s %s: worst error %.3g of its bound\n", ok ? "ok  " : "FAIL", what, worst_share);
}

/* splitmix64: the same numbers on every machine */
static uint64_t rng_state = 12345;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }
static double gauss(void) { return sqrt(-2.0 * log(1.0 - uniform())) * cos(6.283185307179586 * uniform()); }
static int rand_int(int low, int high) { return low + (int)(uniform() * (high - low + 1)); } /* inclusive */

static void *must_alloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(3); }
    return p;
}

static uint16_t to_bf16(float f) { /* nearest, ties to even (finite values) */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}
static double from_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Activation rows with magnitudes spread over three decades, and a few exact zeros. */
static float *activations(int64_t m, int64_t k) {
    float *x = must_alloc(sizeof(float) * m * k);
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < k; j++) x[r * k + j] = (float)(gauss() * pow(10.0, -2.0 + 3.0 * j / k));
    for (int64_t j = 0; j < 7 && j < k; j++) x[j] = 0.0f;
    return x;
}

/* ---- weights in the kernels' layouts, and the same weights as doubles ---- */

typedef struct {
    riffd_int8 view; /* what the kernels take */
    double *dense;   /* [rows][cols]: exactly the weights the kernel multiplies by */
    void *owned[3];
} matrix;

static matrix int8_matrix(int64_t n, int64_t k, double spread) {
    matrix w = {0};
    int8_t *codes = must_alloc(n * k), *packed = must_alloc(n * k);
    int32_t *sums = must_alloc(sizeof(int32_t) * n);
    float *scales = must_alloc(sizeof(float) * n);
    w.dense = must_alloc(sizeof(double) * n * k);
    for (int64_t r = 0; r < n; r++) {
        scales[r] = (float)(spread * (0.5 + uniform()) / 127.0);
        for (int64_t j = 0; j < k; j++) {
            int c = rand_int(-127, 127);
            codes[r * k + j] = (int8_t)c;
            sums[r] += c;
            w.dense[r * k + j] = c * (double)scales[r];
        }
    }
    /* packed[n / B][k / 4][B][4], B the build's block rows (32, 16 or 8) */
    const int64_t b = riffd_int8_block_rows();
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < k; j++)
            packed[(r / b) * b * k + (j / 4) * b * 4 + (r % b) * 4 + j % 4] = codes[r * k + j];
    free(codes);
    w.view = (riffd_int8){packed, sums, scales, n, k, 0};
    w.owned[0] = packed, w.owned[1] = sums, w.owned[2] = scales;
    return w;
}

static matrix int4_matrix(int64_t n, int64_t k, int64_t group, double spread) {
    matrix w = {0};
    const int64_t groups = k / group, group_bytes = riffd_int4_group_bytes(group);
    uint8_t *packed = must_alloc(n / BLOCK * groups * group_bytes);
    w.dense = must_alloc(sizeof(double) * n * k);
    for (int64_t r = 0; r < n; r++)
        for (int64_t g = 0; g < groups; g++) {
            uint16_t scale = to_bf16((float)(spread * (uniform() - 0.3) / 8.0)); /* some negative */
            uint8_t *block = packed + ((r / BLOCK) * groups + g) * group_bytes;
            memcpy(block + 16 * group + 2 * (r % BLOCK), &scale, 2);
            for (int64_t i = 0; i < group; i++) {
                int c = rand_int(0, 15);
                w.dense[r * k + g * group + i] = (c - 8) * from_bf16(scale);
                /* input i of the group: chunk i / 8, byte i % 4, low nibble for i % 8 < 4 */
                uint8_t *byte = block + (i / 8) * 4 * BLOCK + (r % BLOCK) * 4 + i % 4;
                *byte |= (uint8_t)(i % 8 < 4 ? c : c << 4);
            }
        }
    w.view = (riffd_int8){(const int8_t *)packed, NULL, NULL, n, k, group};
    w.owned[0] = packed;
    return w;
}

static void free_matrix(matrix *w) {
    for (int i = 0; i < 3; i++) free(w->owned[i]);
    free(w->dense);
}

static void project_ref(const double *x, int64_t m, const matrix *w, double *y) {
    for (int64_t r = 0; r < m; r++)
        for (int64_t o = 0; o < w->view.rows; o++) {
            double sum = 0.0;
            for (int64_t j = 0; j < w->view.cols; j++) sum += x[r * w->view.cols + j] * w->dense[o * w->view.cols + j];
            y[r * w->view.rows + o] = sum;
        }
}

/* ---- the activations the decoder step's products saw ----

   The test build links with --wrap for the matvec entry points (test_kernel_harness.py), so
   the step's calls to them (from decoder_step.c) come here first: while `recording`, each call's
   activations are copied, in call order, then the kernel runs as usual. The reference step reads
   them back in the same order (replay), only to settle rounding ties (project_rounded_ref). */
void __real_riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                              const float *scale, float *y, int64_t n, int threads);
void __real_riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                                const float *scale, float *y, int64_t n, int threads);
void __real_riffd_int4_matvec(const float *x, int64_t m, int64_t k, int64_t group, const uint8_t *packed, float *y,
                              int64_t n, int threads);

#define MAX_RECORDED 64 /* products in one step: 6 a layer and the heads */
static struct {
    float *x;
    int64_t m, k;
} recorded[MAX_RECORDED];
static int recording, recorded_count, replaying, replayed;
static long tie_flips, stray_codes; /* codes taken from the kernel at ties; codes that differ elsewhere */
static double worst_seen;           /* the largest |kernel's activation - reference's| / max|x| */

static void record(const float *x, int64_t m, int64_t k) {
    if (!recording) return;
    if (recorded_count == MAX_RECORDED) { fprintf(stderr, "more products in a step than MAX_RECORDED\n"); exit(3); }
    float *copy = must_alloc(sizeof(float) * m * k);
    memcpy(copy, x, sizeof(float) * m * k);
    recorded[recorded_count++] = (typeof(recorded[0])){copy, m, k};
}

static void forget_recorded(void) {
    for (int i = 0; i < recorded_count; i++) free(recorded[i].x);
    recorded_count = replayed = 0;
}

void __wrap_riffd_int8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                              const float *scale, float *y, int64_t n, int threads) {
    record(x, m, k);
    __real_riffd_int8_matvec(x, m, k, packed, row_sums, scale, y, n, threads);
}
void __wrap_riffd_int8a8_matvec(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                                const float *scale, float *y, int64_t n, int threads) {
    record(x, m, k);
    __real_riffd_int8a8_matvec(x, m, k, packed, row_sums, scale, y, n, threads);
}
void __wrap_riffd_int4_matvec(const float *x, int64_t m, int64_t k, int64_t group, const uint8_t *packed, float *y,
                              int64_t n, int threads) {
    record(x, m, k);
    __real_riffd_int4_matvec(x, m, k, group, packed, y, n, threads);
}
void __real_riffd_int8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed,
                                   const int32_t *row_sums, const float *scale, float *y, int64_t n, int threads);
void __real_riffd_int8a8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed,
                                     const int32_t *row_sums, const float *scale, float *y, int64_t n, int threads);
void __wrap_riffd_int8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed, const int32_t *row_sums,
                                   const float *scale, float *y, int64_t n, int threads) {
    record(x, m, k);
    __real_riffd_int8_matvec_gelu(x, m, k, packed, row_sums, scale, y, n, threads);
}
void __wrap_riffd_int8a8_matvec_gelu(const float *x, int64_t m, int64_t k, const int8_t *packed,
                                     const int32_t *row_sums, const float *scale, float *y, int64_t n, int threads) {
    record(x, m, k);
    __real_riffd_int8a8_matvec_gelu(x, m, k, packed, row_sums, scale, y, n, threads);
}

/* A product the step runs in pieces (decoder_step.c's fused regions) quantises its rows here first. */
void __real_riffd_int8_prepare(const riffd_int8 *w, const float *x, int64_t rows, uint8_t *prepared);
void __wrap_riffd_int8_prepare(const riffd_int8 *w, const float *x, int64_t rows, uint8_t *prepared) {
    record(x, rows, w->cols);
    __real_riffd_int8_prepare(w, x, rows, prepared);
}

/* The next recorded product's activations while replaying (NULL otherwise); they must have this shape. */
static const float *next_seen(int64_t m, int64_t k) {
    if (!replaying) return NULL;
    if (replayed == recorded_count || recorded[replayed].m != m || recorded[replayed].k != k) {
        fprintf(stderr, "the step's products came in another order than the reference's\n");
        exit(3);
    }
    return recorded[replayed++].x;
}

/* A value's code, as the kernels round it: max|x| / levels over its span, x * (1 / s) to nearest. */
static float span_inverse(const float *x, int64_t span, float levels, float *s_out) {
    float largest = 0.0f;
    for (int64_t j = 0; j < span; j++) largest = fmaxf(largest, fabsf(x[j]));
    float s = largest > 0.0f ? largest / levels : 1.0f;
    if (s_out) *s_out = s;
    return 1.0f / s;
}

/* How far apart (a share of max|x|) the kernel's float32 activation and this double step's may be
   where the two round to neighbouring codes: float32 arithmetic puts them ~1e-7 apart (1e-6 at most
   seen); ten times that. */
#ifndef TIE_BAND
#define TIE_BAND 1e-5
#endif

/* The kernels' product as specified: activations rounded as they round them (in float: s = max|x|
   / levels, code = round(x * (1 / s))) over each row (int8: 16 bits, levels 32767; int8a8: 8 bits,
   127) or each group of inputs (int4: bytes, levels 127), then exact arithmetic. Replaying the step's
   products, a value within TIE_BAND of halfway between two codes takes the code the kernel gave its
   own float32 activation (one step of max|x| / 127 is far more than the logits' bound once it has
   passed through the layers above); every other code stays the reference's own (a different one is
   counted in stray_codes). */
static void project_rounded_ref(const double *x, int64_t m, const matrix *w, double *y) {
    const int64_t k = w->view.cols, span = w->view.int4_group ? w->view.int4_group : k;
    const float levels = w->view.int4_group || w->view.act8 ? 127.0f : 32767.0f;
    const float *seen = next_seen(m, k);
    double *rounded = must_alloc(sizeof(double) * m * k);
    float *xf = must_alloc(sizeof(float) * m * k);
    for (int64_t i = 0; i < m * k; i++) xf[i] = (float)x[i];
    for (int64_t r = 0; r < m; r++)
        for (int64_t g0 = 0; g0 < k; g0 += span) {
            const int64_t at = r * k + g0;
            float s, inverse = span_inverse(xf + at, span, levels, &s);
            float seen_inverse = seen ? span_inverse(seen + at, span, levels, NULL) : 0.0f;
            for (int64_t j = 0; j < span; j++) {
                float code = fminf(fmaxf(nearbyintf(xf[at + j] * inverse), -levels), levels);
                if (seen) {
                    float kernel_code = fminf(fmaxf(nearbyintf(seen[at + j] * seen_inverse), -levels), levels);
                    float mine = xf[at + j] * inverse, theirs = seen[at + j] * seen_inverse; /* what each rounded */
                    double halfway = 0.5 * (code + kernel_code);
                    worst_seen = fmax(worst_seen, fabsf(mine - theirs) / levels);
                    if (fabsf(kernel_code - code) == 1.0f && (mine - halfway) * (theirs - halfway) <= 0.0 &&
                        fabsf(mine - theirs) < TIE_BAND * levels)
                        code = kernel_code, tie_flips++;
                    else if (kernel_code != code)
                        stray_codes++;
                }
                rounded[at + j] = code * (double)s;
            }
        }
    project_ref(rounded, m, w, y);
    free(rounded);
    free(xf);
}

/* ---- kernels one at a time ---- */

static void check_matvec(int64_t n, int64_t k, int64_t group) {
    static const int64_t row_counts[] = {1, 2, 3, 4, 5, 9};
    matrix w = group ? int4_matrix(n, k, group, 0.05) : int8_matrix(n, k, 0.05);
    for (size_t t = 0; t < sizeof row_counts / sizeof *row_counts; t++) {
        int64_t m = row_counts[t];
        float *x = activations(m, k), *y = must_alloc(sizeof(float) * m * n);
        if (group)
            riffd_int4_matvec(x, m, k, group, (const uint8_t *)w.view.packed, y, n, THREADS);
        else
            riffd_int8_matvec(x, m, k, w.view.packed, w.view.row_sums, w.view.scales, y, n, THREADS);
        double worst = 0.0, largest = 0.0;
        double *want = must_alloc(sizeof(double) * m * n), *xd = must_alloc(sizeof(double) * m * k);
        for (int64_t i = 0; i < m * k; i++) xd[i] = x[i];
        project_ref(xd, m, &w, want);
        for (int64_t i = 0; i < m * n; i++) largest = fmax(largest, fabs(want[i]));
        const int64_t span = group ? group : k; /* inputs sharing an activation scale */
        for (int64_t r = 0; r < m; r++)
            for (int64_t o = 0; o < n; o++) {
                double bound = group ? 0.0 : 1e-5 * largest;
                for (int64_t g0 = 0; g0 < k; g0 += span) {
                    double amax = 0.0, weight_sum = 0.0, magnitude = 0.0;
                    for (int64_t j = g0; j < g0 + span; j++) {
                        amax = fmax(amax, fabs(xd[r * k + j]));
                        weight_sum += fabs(w.dense[o * k + j]);
                        magnitude += fabs(xd[r * k + j] * w.dense[o * k + j]);
                    }
                    bound += 0.5 * amax / (group ? 127.0 : 32767.0) * weight_sum + (group ? 1e-5 * magnitude : 0.0);
                }
                worst = fmax(worst, fabs(y[r * n + o] - want[r * n + o]) / bound);
            }
        char what[96];
        snprintf(what, sizeof what, "%s matvec [%lld x %lld], %lld rows", group ? "int4" : "int8", (long long)n,
                 (long long)k, (long long)m);
        if (group) snprintf(what + strlen(what), sizeof what - strlen(what), ", groups of %lld", (long long)group);
        report(what, worst);
        /* zero activations give exact zeros */
        memset(x, 0, sizeof(float) * m * k);
        if (group)
            riffd_int4_matvec(x, m, k, group, (const uint8_t *)w.view.packed, y, n, THREADS);
        else
            riffd_int8_matvec(x, m, k, w.view.packed, w.view.row_sums, w.view.scales, y, n, THREADS);
        double nonzero = 0.0;
        for (int64_t i = 0; i < m * n; i++) nonzero += y[i] != 0.0f;
        report("  zero rows give zeros", nonzero);
        free(x), free(y), free(want), free(xd);
    }
    if (group) { /* the weights in float32 for prefills: exactly (code - 8) * scale */
        float *dense = must_alloc(sizeof(float) * n * k);
        riffd_int4_dequantize((const uint8_t *)w.view.packed, n, k, group, dense, THREADS);
        double differ = 0.0;
        for (int64_t i = 0; i < n * k; i++) differ += dense[i] != w.dense[i];
        char what[64];
        snprintf(what, sizeof what, "int4 dequantize [%lld x %lld]: exact", (long long)n, (long long)k);
        report(what, differ);
        free(dense);
    }
    free_matrix(&w);
}

/* The 8-bit-activation kernel (int8a8): every branch must give exactly the specified bits, each row
   quantised on its own (s = max|x| / 127, q = round(x * (1 / s)) in float), exact integer sums,
   then float(sum) * (scale * s); also within its bound of double maths (half a step of max|x| / 127
   times the row's sum of |weights|, plus float32 rounding). */
static void check_matvec8(int64_t n, int64_t k) {
    static const int64_t row_counts[] = {1, 2, 3, 4, 5, 9, 16, 17};
    matrix w = int8_matrix(n, k, 0.05);
    const int8_t *codes_packed = w.view.packed;
    const int64_t b = riffd_int8_block_rows();
    for (size_t t = 0; t < sizeof row_counts / sizeof *row_counts; t++) {
        int64_t m = row_counts[t];
        float *x = activations(m, k), *y = must_alloc(sizeof(float) * m * n);
        riffd_int8a8_matvec(x, m, k, w.view.packed, w.view.row_sums, w.view.scales, y, n, THREADS);
        double differ = 0.0, worst = 0.0, largest = 0.0;
        double *want = must_alloc(sizeof(double) * m * n), *xd = must_alloc(sizeof(double) * m * k);
        for (int64_t i = 0; i < m * k; i++) xd[i] = x[i];
        project_ref(xd, m, &w, want);
        for (int64_t i = 0; i < m * n; i++) largest = fmax(largest, fabs(want[i]));
        for (int64_t r = 0; r < m; r++) {
            float amax = 0.0f;
            for (int64_t j = 0; j < k; j++) amax = fmaxf(amax, fabsf(x[r * k + j]));
            float s = amax > 0.0f ? amax / 127.0f : 1.0f, inverse = 1.0f / s;
            for (int64_t o = 0; o < n; o++) {
                int64_t sum = 0;
                double weight_sum = 0.0;
                for (int64_t j = 0; j < k; j++) {
                    float q = fminf(fmaxf(nearbyintf(x[r * k + j] * inverse), -127.0f), 127.0f);
                    int8_t c = codes_packed[(o / b) * b * k + (j / 4) * b * 4 + (o % b) * 4 + j % 4];
                    sum += (int64_t)q * c;
                    weight_sum += fabs(w.dense[o * k + j]);
                }
                float exact = (float)sum * (w.view.scales[o] * s);
                differ += memcmp(&exact, &y[r * n + o], sizeof exact) != 0;
                double bound = 0.5 * amax / 127.0 * weight_sum + 1e-5 * largest;
                worst = fmax(worst, fabs(y[r * n + o] - want[r * n + o]) / bound);
            }
        }
        char what[96];
        snprintf(what, sizeof what, "int8a8 matvec [%lld x %lld], %lld rows: the specified bits", (long long)n,
                 (long long)k, (long long)m);
        report(what, differ);
        report("  within its bound of double maths", worst);
        free(x), free(y), free(want), free(xd);
    }
    free_matrix(&w);
}

/* bf16: the float32 weights' top halves (truncated: any bfloat16 values will do), the same double check */
static void check_f32_matmul(int64_t n, int64_t k, int bf16) {
    float *w = must_alloc(sizeof(float) * n * k);
    uint16_t *halves = must_alloc(sizeof(uint16_t) * n * k);
    for (int64_t i = 0; i < n * k; i++) {
        w[i] = (float)gauss();
        if (bf16) {
            uint32_t bits;
            memcpy(&bits, &w[i], 4);
            halves[i] = (uint16_t)(bits >> 16);
            bits &= 0xffff0000u;
            memcpy(&w[i], &bits, 4);
        }
    }
    for (int64_t m = 1; m <= 13; m += 4) {
        float *x = activations(m, k), *y = must_alloc(sizeof(float) * m * n);
        if (bf16)
            riffd_bf16_matmul(x, m, k, halves, y, n, THREADS);
        else
            riffd_f32_matmul(x, m, k, w, y, n, THREADS);
        double worst = 0.0;
        for (int64_t r = 0; r < m; r++)
            for (int64_t o = 0; o < n; o++) {
                double sum = 0.0, magnitude = 0.0;
                for (int64_t j = 0; j < k; j++) {
                    sum += (double)x[r * k + j] * w[o * k + j];
                    magnitude += fabs((double)x[r * k + j] * w[o * k + j]);
                }
                worst = fmax(worst, fabs(y[r * n + o] - sum) / (1e-5 * magnitude + 1e-30));
            }
        char what[64];
        snprintf(what, sizeof what, "%s matmul [%lld x %lld], %lld rows", bf16 ? "bf16" : "f32", (long long)n,
                 (long long)k, (long long)m);
        report(what, worst);
        free(x), free(y);
    }
    free(w), free(halves);
}

static void check_gelu(void) {
    const int64_t count = 4096 + 16;
    float *x = must_alloc(sizeof(float) * count), *y = must_alloc(sizeof(float) * count);
    for (int64_t i = 0; i < 4096; i++) x[i] = (float)(i < 2048 ? -12.0 + 24.0 * i / 2047 : 3.0 * gauss());
    for (int64_t i = 4096; i < count; i++) x[i] = i % 2 ? -0.0f : 0.0f;
    memcpy(y, x, sizeof(float) * count);
    riffd_gelu(y, count);
    double worst = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        worst = fmax(worst, fabs(y[i] - want) / (1e-7 * fabs(x[i]) + 1e-7));
        if (i >= 4096 && y[i] != 0.0f) worst = INFINITY;
    }
    report("GELU against erf in double", worst);
    free(x), free(y);
}

/* ---- the streaming codec's ELU and LSTM, and the decode step's sampling scores ---- */

static void check_elu(float alpha) {
    const int64_t count = 4096 + 13; /* a tail shorter than a vector */
    float *x = must_alloc(sizeof(float) * count), *y = must_alloc(sizeof(float) * count);
    for (int64_t i = 0; i < count; i++) x[i] = (float)(i < 2048 ? -90.0 + 110.0 * i / 2047 : 3.0 * gauss());
    x[0] = 0.0f, x[1] = -0.0f, x[2] = -1e-9f;
    riffd_elu(x, y, count, alpha, THREADS);
    double worst = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double want = x[i] > 0.0f ? (double)x[i] : alpha * expm1((double)x[i]);
        worst = fmax(worst, fabs(y[i] - want) / (2e-7 * alpha));
        if (x[i] >= 0.0f && y[i] != x[i]) worst = INFINITY;
    }
    char what[64];
    snprintf(what, sizeof what, "ELU (alpha %.1f) against expm1 in double", alpha);
    report(what, worst);
    free(x), free(y);
}

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

/* An LSTM's recurrence in double (gate order i, f, g, o): `steps` steps of the input gates in
   [steps][batch][4 hidden] plus wd [4 hidden][hidden] times the previous hidden state, from h0 and the
   cell state c (updated in place); the hidden states into h [steps][batch][hidden]. */
static void lstm_ref(const double *wd, const float *in, int64_t steps, int64_t batch, int64_t hidden, const float *h0,
                     double *c, double *h) {
    const int64_t gates = 4 * hidden;
    double *g = must_alloc(sizeof(double) * gates);
    for (int64_t t = 0; t < steps; t++)
        for (int64_t b = 0; b < batch; b++) {
            const double *h_prev = t ? h + ((t - 1) * batch + b) * hidden : NULL;
            for (int64_t r = 0; r < gates; r++) {
                double sum = in[(t * batch + b) * gates + r];
                for (int64_t j = 0; j < hidden; j++) sum += wd[r * hidden + j] * (h_prev ? h_prev[j] : h0[b * hidden + j]);
                g[r] = sum;
            }
            for (int64_t u = 0; u < hidden; u++) {
                double *cell = &c[b * hidden + u];
                *cell = sigmoid_ref(g[hidden + u]) * *cell + sigmoid_ref(g[u]) * tanh(g[2 * hidden + u]);
                h[(t * batch + b) * hidden + u] = sigmoid_ref(g[3 * hidden + u]) * tanh(*cell);
            }
        }
    free(g);
}

/* The worst of the kernel's hidden states (out) and final cell state (c) against lstm_ref's, as a share of bound. */
static double lstm_worst(const float *out, const float *c, const double *h_ref, const double *c_ref, int64_t states,
                         int64_t cells, double bound) {
    double worst = 0.0;
    for (int64_t i = 0; i < states; i++) worst = fmax(worst, fabs(out[i] - h_ref[i]) / bound);
    for (int64_t i = 0; i < cells; i++) worst = fmax(worst, fabs(c[i] - c_ref[i]) / bound);
    return worst;
}

static void check_lstm(int64_t batch, int bf16) {
    enum { STEPS = 9, FIRST = 4 };
    const int64_t hidden = 8 * riffd_lstm_unit_multiple(), gates = 4 * hidden;
    float *w = must_alloc(sizeof(float) * gates * hidden), *in = must_alloc(sizeof(float) * STEPS * batch * gates);
    uint16_t *w16 = must_alloc(sizeof(uint16_t) * gates * hidden);
    double *wd = must_alloc(sizeof(double) * gates * hidden);
    for (int64_t i = 0; i < gates * hidden; i++) {
        w[i] = (float)(gauss() / sqrt((double)hidden));
        w16[i] = to_bf16(w[i]);
        wd[i] = bf16 ? from_bf16(w16[i]) : w[i];
    }
    for (int64_t i = 0; i < STEPS * batch * gates; i++) in[i] = (float)(2.0 * gauss());
    float *h0 = must_alloc(sizeof(float) * batch * hidden), *c = must_alloc(sizeof(float) * batch * hidden);
    double *h_ref = must_alloc(sizeof(double) * STEPS * batch * hidden), *c_ref = must_alloc(sizeof(double) * batch * hidden);
    for (int64_t i = 0; i < batch * hidden; i++) h0[i] = (float)gauss(), c[i] = (float)gauss(), c_ref[i] = c[i];
    float *out = must_alloc(sizeof(float) * STEPS * batch * hidden);
    const void *weights = bf16 ? (const void *)w16 : (const void *)w;
    /* Two calls: the state carries over from the first FIRST steps to the rest. */
    riffd_lstm_steps(in, FIRST, batch, hidden, weights, bf16, h0, c, out, THREADS);
    riffd_lstm_steps(in + FIRST * batch * gates, STEPS - FIRST, batch, hidden, weights, bf16,
                     out + (FIRST - 1) * batch * hidden, c, out + FIRST * batch * hidden, THREADS);
    lstm_ref(wd, in, STEPS, batch, hidden, h0, c_ref, h_ref);
    char what[96];
    snprintf(what, sizeof what, "LSTM %s weights, %lld row(s), 9 steps in two calls, against double maths",
             bf16 ? "bfloat16" : "float32", (long long)batch);
    report(what, lstm_worst(out, c, h_ref, c_ref, STEPS * batch * hidden, batch * hidden, 2e-6));
    free(w), free(in), free(w16), free(wd), free(h0), free(c), free(h_ref), free(c_ref), free(out);
}

/* riffd_lstm_steps_int8 (the approximate engines' codec LSTM): check_lstm's recurrence on int8 codes
   times a scale per row, each step's product riffd_int8_matvec's, against double maths on those
   weights (the codes times their scales, exactly). The codes are int8_matrix's uniform ones, scaled to
   about gauss() / sqrt(hidden) as check_lstm's. The hidden state enters each product at 16 bits (off by
   up to half a step of max|h| / 32767), the rest is exact integer sums and float32's: within 1e-4
   (tests/musicgen/test_native.py's bound, 3.4e-5 seen there) after nine steps in two calls. */
static void check_lstm_int8(int64_t batch) {
    enum { STEPS = 9, FIRST = 4 };
    const int64_t hidden = 8 * riffd_lstm_unit_multiple(), gates = 4 * hidden;
    matrix w = int8_matrix(gates, hidden, 1.7 / sqrt((double)hidden)); /* codes' deviation 127 / sqrt(3) */
    float *in = must_alloc(sizeof(float) * STEPS * batch * gates);
    for (int64_t i = 0; i < STEPS * batch * gates; i++) in[i] = (float)(2.0 * gauss());
    float *h0 = must_alloc(sizeof(float) * batch * hidden), *c = must_alloc(sizeof(float) * batch * hidden);
    double *h_ref = must_alloc(sizeof(double) * STEPS * batch * hidden), *c_ref = must_alloc(sizeof(double) * batch * hidden);
    for (int64_t i = 0; i < batch * hidden; i++) h0[i] = (float)gauss(), c[i] = (float)gauss(), c_ref[i] = c[i];
    float *out = must_alloc(sizeof(float) * STEPS * batch * hidden);
    riffd_lstm_steps_int8(in, FIRST, batch, hidden, w.view.packed, w.view.row_sums, w.view.scales, h0, c, out, THREADS);
    riffd_lstm_steps_int8(in + FIRST * batch * gates, STEPS - FIRST, batch, hidden, w.view.packed, w.view.row_sums,
                          w.view.scales, out + (FIRST - 1) * batch * hidden, c, out + FIRST * batch * hidden, THREADS);
    lstm_ref(w.dense, in, STEPS, batch, hidden, h0, c_ref, h_ref);
    char what[96];
    snprintf(what, sizeof what, "LSTM int8 weights, %lld row(s), 9 steps in two calls, against double maths",
             (long long)batch);
    report(what, lstm_worst(out, c, h_ref, c_ref, STEPS * batch * hidden, batch * hidden, 1e-4));
    free_matrix(&w);
    free(in), free(h0), free(c), free(h_ref), free(c_ref), free(out);
}

/* riffd_elu_pairs (a transposed convolution's input pairs, the streaming codec's): row t is elu(x[t - 1])
   then elu(x[t]), row 0's left half `last` as it is. Every ELU must be exactly riffd_elu's bits (cols
   being a multiple of every branch's vector, riffd_elu takes its vector path throughout), so within
   check_elu's bound of double maths and exactly x where x >= 0; nothing is written past the n rows.
   Rows over several pool chunks (ceil(16384 / (2 cols)) rows each) check the left halves a chunk
   remakes at its start. */
static void check_elu_pairs(int64_t n, int64_t cols, float alpha) {
    enum { GUARD = 64 };
    const float guard = -7.25f;
    float *x = must_alloc(sizeof(float) * n * cols), *last = must_alloc(sizeof(float) * cols);
    float *made = must_alloc(sizeof(float) * n * cols), *pairs = must_alloc(sizeof(float) * (2 * n * cols + GUARD));
    for (int64_t i = 0; i < n * cols; i++) x[i] = (float)(i % 3 ? 3.0 * gauss() : -90.0 + 110.0 * uniform());
    x[0] = 0.0f, x[1] = -0.0f, x[2] = -1e-9f;
    for (int64_t i = 0; i < cols; i++) last[i] = (float)gauss();
    for (int64_t i = 0; i < 2 * n * cols + GUARD; i++) pairs[i] = guard;
    riffd_elu(x, made, n * cols, alpha, THREADS);
    riffd_elu_pairs(x, n, cols, last, alpha, pairs, THREADS);
    double differ = 0.0, worst = 0.0;
    for (int64_t t = 0; t < n; t++) {
        const float *left = pairs + t * 2 * cols, *right = left + cols, *want_left = t ? made + (t - 1) * cols : last;
        differ += memcmp(left, want_left, sizeof(float) * cols) != 0;
        differ += memcmp(right, made + t * cols, sizeof(float) * cols) != 0;
        for (int64_t i = 0; i < cols; i++) {
            const float xi = x[t * cols + i];
            const double want = xi > 0.0f ? (double)xi : alpha * expm1((double)xi);
            worst = fmax(worst, fabs(right[i] - want) / (2e-7 * alpha));
            if (xi >= 0.0f && right[i] != xi) worst = INFINITY;
        }
    }
    for (int64_t i = 2 * n * cols; i < 2 * n * cols + GUARD; i++) differ += pairs[i] != guard;
    char what[128];
    snprintf(what, sizeof what, "ELU pairs (alpha %.1f), %lld rows of %lld: riffd_elu's bits, nothing past them",
             alpha, (long long)n, (long long)cols);
    report(what, differ);
    report("  against expm1 in double", worst);
    free(x), free(last), free(made), free(pairs);
}

/* riffd_conv_taps (the codec's convolutions of few outputs over time-major inputs): each output a float32
   sum of kernel * channels exact products in VL accumulators (the order each branch's vector width
   gives), plus the bias: under 1e-5 of the sum of |products| and |bias| of double maths, as the
   float32 matmul (k <= 4096); outputs past n untouched. The n here are not whole blocks of VL outputs
   on any branch (VL 16, 8 or 4). */
static void check_conv_taps(int64_t out, int64_t kernel, int64_t dilation, int64_t n, int64_t channels, int bias) {
    const int64_t length = n + (kernel - 1) * dilation, guard_count = 16 * out;
    const float guard = -7.25f;
    float *x = must_alloc(sizeof(float) * length * channels), *w = must_alloc(sizeof(float) * out * kernel * channels);
    float *b = bias ? must_alloc(sizeof(float) * out) : NULL, *y = must_alloc(sizeof(float) * (n * out + guard_count));
    for (int64_t i = 0; i < length * channels; i++) x[i] = (float)gauss();
    for (int64_t i = 0; i < out * kernel * channels; i++) w[i] = (float)(gauss() / sqrt((double)(kernel * channels)));
    for (int64_t o = 0; bias && o < out; o++) b[o] = (float)gauss();
    for (int64_t i = 0; i < n * out + guard_count; i++) y[i] = guard;
    riffd_conv_taps(x, n, channels, kernel, dilation, w, b, out, y, THREADS);
    double worst = 0.0, stray = 0.0;
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < out; o++) {
            double sum = b ? b[o] : 0.0, magnitude = fabs(sum);
            for (int64_t tap = 0; tap < kernel; tap++)
                for (int64_t ch = 0; ch < channels; ch++) {
                    const double p = (double)x[(t + tap * dilation) * channels + ch] * w[(o * kernel + tap) * channels + ch];
                    sum += p, magnitude += fabs(p);
                }
            worst = fmax(worst, fabs(y[t * out + o] - sum) / (1e-5 * magnitude + 1e-30));
        }
    for (int64_t i = n * out; i < n * out + guard_count; i++) stray += y[i] != guard;
    char what[128];
    snprintf(what, sizeof what, "conv taps, %lld output(s) x %lld taps (dilation %lld) x %lld channels, %lld steps%s",
             (long long)out, (long long)kernel, (long long)dilation, (long long)channels, (long long)n,
             bias ? ", bias" : "");
    report(what, worst);
    report("  nothing written past its outputs", stray);
    free(x), free(w), free(b), free(y);
}

/* riffd_residual_unit (a SEANet residual unit over time-major rows): y = x[t + shortcut] + point_bias +
   point . elu(conv * elu(x) + conv_bias), the inputs in two pieces (head_rows rows, then the rest). Each
   hidden value is a float32 sum of kernel * channels exact products (of ELU outputs within 2e-7 * alpha)
   and the bias, each output one of hidden products onto x + point_bias: the bound is 1e-5 of the sums of
   |terms| in double maths, plus the ELUs' errors carried through the weights (the input's through |conv|,
   the hidden values' through the second ELU, 1-Lipschitz for alpha <= 1, and |point|); rows past n
   untouched. The n are not whole tiles on any branch. */
static void check_residual_unit(int64_t channels, int64_t hidden, int64_t kernel, int64_t dilation, int64_t n,
                                int64_t head_rows, float alpha, int bias) {
    const int64_t panel = riffd_residual_unit_panel(), span = (kernel - 1) * dilation, length = n + span;
    const int64_t shortcut = span / 2, guard_rows = 3;
    const float guard = -7.25f;
    float *x = must_alloc(sizeof(float) * length * channels);
    float *w = must_alloc(sizeof(float) * hidden * channels * kernel), *w1 = must_alloc(sizeof(float) * channels * hidden);
    float *conv = must_alloc(sizeof(float) * hidden * channels * kernel), *point = must_alloc(sizeof(float) * channels * hidden);
    float *b = bias ? must_alloc(sizeof(float) * hidden) : NULL, *b1 = bias ? must_alloc(sizeof(float) * channels) : NULL;
    float *y = must_alloc(sizeof(float) * (n + guard_rows) * channels);
    double *act = must_alloc(sizeof(double) * length * channels), *h = must_alloc(sizeof(double) * hidden);
    double *h_bound = must_alloc(sizeof(double) * hidden);
    for (int64_t i = 0; i < length * channels; i++) {
        x[i] = (float)(2.0 * gauss());
        act[i] = x[i] > 0.0f ? x[i] : alpha * expm1(x[i]);
    }
    for (int64_t i = 0; i < hidden * channels * kernel; i++) w[i] = (float)(gauss() / sqrt((double)(kernel * channels)));
    for (int64_t i = 0; i < channels * hidden; i++) w1[i] = (float)(gauss() / sqrt((double)hidden));
    for (int64_t o = 0; bias && o < hidden; o++) b[o] = (float)gauss();
    for (int64_t c = 0; bias && c < channels; c++) b1[c] = (float)gauss();
    for (int64_t i = 0; i < (n + guard_rows) * channels; i++) y[i] = guard;
    /* w [hidden][channels][kernel] and w1 [channels][hidden] into panels of `panel` outputs (residual_unit.py's pack). */
    for (int64_t o = 0; o < hidden; o++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t tap = 0; tap < kernel; tap++)
                conv[((o / panel) * kernel * channels + tap * channels + c) * panel + o % panel] =
                    w[(o * channels + c) * kernel + tap];
    for (int64_t c = 0; c < channels; c++)
        for (int64_t o = 0; o < hidden; o++) point[((c / panel) * hidden + o) * panel + c % panel] = w1[c * hidden + o];
    /* The tail piece in its own buffer, as a stream's new rows are. */
    float *tail = must_alloc(sizeof(float) * (length - head_rows) * channels);
    for (int64_t i = 0; i < (length - head_rows) * channels; i++) tail[i] = x[head_rows * channels + i];
    riffd_residual_unit(x, head_rows, tail, n, channels, hidden, kernel, dilation, shortcut, conv, b, alpha, point, b1,
                        alpha, y, THREADS);
    double worst = 0.0, stray = 0.0;
    for (int64_t t = 0; t < n; t++) {
        for (int64_t o = 0; o < hidden; o++) {
            double sum = b ? b[o] : 0.0, magnitude = fabs(sum), carried = 0.0;
            for (int64_t c = 0; c < channels; c++)
                for (int64_t tap = 0; tap < kernel; tap++) {
                    const double weight = w[(o * channels + c) * kernel + tap];
                    const double p = act[(t + tap * dilation) * channels + c] * weight;
                    sum += p, magnitude += fabs(p), carried += fabs(weight) * 2e-7 * alpha;
                }
            h[o] = sum > 0.0 ? sum : alpha * expm1(sum);
            h_bound[o] = 1e-5 * magnitude + carried + 2e-7 * alpha;
        }
        for (int64_t c = 0; c < channels; c++) {
            const double own = x[(t + shortcut) * channels + c];
            double sum = own + (b1 ? b1[c] : 0.0), magnitude = fabs(own) + (b1 ? fabs(b1[c]) : 0.0), carried = 0.0;
            for (int64_t o = 0; o < hidden; o++) {
                const double weight = w1[c * hidden + o];
                sum += weight * h[o], magnitude += fabs(weight * h[o]), carried += fabs(weight) * h_bound[o];
            }
            worst = fmax(worst, fabs(y[t * channels + c] - sum) / (1e-5 * magnitude + carried + 1e-30));
        }
    }
    for (int64_t i = n * channels; i < (n + guard_rows) * channels; i++) stray += y[i] != guard;
    char what[192];
    snprintf(what, sizeof what, "residual unit, %lld channels, %lld hidden, %lld taps (dilation %lld), %lld steps "
             "(%lld rows kept), alpha %.1f%s", (long long)channels, (long long)hidden, (long long)kernel,
             (long long)dilation, (long long)n, (long long)head_rows, alpha, bias ? ", biases" : "");
    report(what, worst);
    report("  nothing written past its outputs", stray);
    free(x), free(tail), free(w), free(w1), free(conv), free(point), free(b), free(b1), free(y), free(act), free(h);
    free(h_bound);
}

static int descending(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The scores as the PyTorch expressions make them, each float32 operation rounded on its own: every
   intermediate goes through a volatile float, since -std=gnu11 lets the compiler contract a multiply
   and an add into one fused instruction (aarch64 would). */
static void check_sampling(int guided, float guidance, float temperature, int64_t top_k) {
    enum { ROWS = 3, VOCAB = 2048 };
    const int64_t logit_rows = guided ? 2 * ROWS : ROWS;
    float *logits = must_alloc(sizeof(float) * logit_rows * VOCAB), *scores = must_alloc(sizeof(float) * ROWS * VOCAB);
    float *work = must_alloc(sizeof(float) * VOCAB), *want = must_alloc(sizeof(float) * ROWS * VOCAB);
    for (int64_t i = 0; i < logit_rows * VOCAB; i++) logits[i] = (float)(4.0 * gauss());
    for (int64_t v = 0; v < 40; v++) logits[v] = logits[40]; /* ties at the top of row 0 */
    logits[VOCAB + 7] = -INFINITY;
    int64_t nans = riffd_sampling_scores(logits, ROWS, VOCAB, guided, guidance, temperature, top_k, scores, work);
    int64_t wrong = nans ? ROWS * VOCAB : 0;
    for (int64_t r = 0; r < ROWS; r++) {
        for (int64_t v = 0; v < VOCAB; v++) {
            volatile float value = logits[r * VOCAB + v];
            if (guided) {
                volatile float uncond = logits[(ROWS + r) * VOCAB + v];
                volatile float delta = value - uncond;
                volatile float scaled = delta * guidance;
                value = uncond + scaled;
            }
            volatile float scaled = value / temperature;
            want[r * VOCAB + v] = scaled;
        }
        if (top_k > 0 && top_k < VOCAB) {
            memcpy(work, want + r * VOCAB, sizeof(float) * VOCAB);
            qsort(work, VOCAB, sizeof(float), descending);
            const float kth = work[top_k - 1];
            for (int64_t v = 0; v < VOCAB; v++)
                if (want[r * VOCAB + v] < kth) want[r * VOCAB + v] = -INFINITY;
        }
        for (int64_t v = 0; v < VOCAB; v++) wrong += memcmp(&want[r * VOCAB + v], &scores[r * VOCAB + v], sizeof(float)) != 0;
    }
    char what[128];
    snprintf(what, sizeof what, "sampling scores (%s, guidance %.1f, temperature %.2f, top-k %lld): bits equal the reference",
             guided ? "guided" : "unguided", guidance, temperature, (long long)top_k);
    report(what, wrong ? INFINITY : 0.0);
    free(logits), free(scores), free(work), free(want);
}

/* ---- the whole decoder step against a reference step in double ---- */

/* HEAD_DIM 32: a whole number of every branch's int8 blocks (8-32 outputs), so that the step runs its
   qkv and cross query products fused with their attention (decoder_step.c's fused regions) on each;
   the int4 projections take the separate path. */
enum { BATCH = 4, HIDDEN = 128, HEADS = 4, HEAD_DIM = 32, FFN = 256, LAYERS = 2, CROSS = 7, VOCAB_ROWS = 256 };
#define POSITIONS 12

typedef struct {
    float *weight, *bias;
} norm;

typedef struct {
    norm self_norm, cross_norm, ffn_norm;
    matrix qkv, self_out, cross_q, cross_out, fc1, fc2;
    float *cross_keys, *cross_values; /* [batch][heads][cross][head_dim] */
} test_layer;

static norm random_norm(void) {
    norm n = {must_alloc(sizeof(float) * HIDDEN), must_alloc(sizeof(float) * HIDDEN)};
    for (int j = 0; j < HIDDEN; j++) n.weight[j] = (float)(1.0 + 0.2 * gauss()), n.bias[j] = (float)(0.1 * gauss());
    return n;
}

/* group > 0: int4 in groups of `group`; 0: int8; -1: int8 with 8-bit activations (int8a8) */
static matrix projection(int64_t n, int64_t k, int64_t group) {
    double spread = 2.0 / sqrt((double)k); /* keeps activations O(1) from layer to layer */
    if (group > 0) return int4_matrix(n, k, group, spread);
    matrix w = int8_matrix(n, k, spread);
    w.view.act8 = group < 0;
    return w;
}

static void layer_norm_ref(const double *x, const norm *n, double *out) {
    for (int b = 0; b < BATCH; b++) {
        double mean = 0.0, var = 0.0;
        for (int j = 0; j < HIDDEN; j++) mean += x[b * HIDDEN + j];
        mean /= HIDDEN;
        for (int j = 0; j < HIDDEN; j++) var += (x[b * HIDDEN + j] - mean) * (x[b * HIDDEN + j] - mean);
        var /= HIDDEN;
        for (int j = 0; j < HIDDEN; j++)
            out[b * HIDDEN + j] = (x[b * HIDDEN + j] - mean) / sqrt(var + 1e-5) * n->weight[j] + n->bias[j];
    }
}

/* How far the kernel's int8 cache vector (codes, scale) is from rounding `v` (store_int8's rule:
   round(v * 127 / max|v|), ties to even; scale max|v| / 127), in codes: 0 when equal; a code one
   off counts only where v sits within 0.01 of a code of the halfway point (its input differs from
   the reference's by float rounding); anything else is a large number. */
static double cache_code_error(const double *v, const int8_t *codes, float scale) {
    double largest = 0.0, worst = 0.0;
    for (int j = 0; j < HEAD_DIM; j++) largest = fmax(largest, fabs(v[j]));
    if (fabs(scale - largest / 127.0) > 1e-5 * largest) return 1e9;
    for (int j = 0; j < HEAD_DIM; j++) {
        double exact = largest > 0.0 ? v[j] * 127.0 / largest : 0.0, off = fabs(codes[j] - nearbyint(exact));
        double from_half = fabs(fabs(exact - floor(exact)) - 0.5);
        worst = fmax(worst, off == 0.0 ? 0.0 : off == 1.0 && from_half < 1e-2 ? 0.0 : 1e9);
    }
    return worst;
}

static void attend_ref(const double *q, const int8_t *keys, const float *key_scales, const float *fkeys,
                       const int8_t *values, const float *value_scales, const float *fvalues, const float *mask,
                       int64_t length, double *out) {
    double scores[POSITIONS > CROSS ? POSITIONS : CROSS], largest = -INFINITY, total = 0.0;
    for (int64_t p = 0; p < length; p++) {
        double dot = 0.0;
        for (int j = 0; j < HEAD_DIM; j++)
            dot += q[j] * (keys ? keys[p * HEAD_DIM + j] * key_scales[p] : fkeys[p * HEAD_DIM + j]);
        scores[p] = dot / sqrt((double)HEAD_DIM) + (mask ? mask[p] : 0.0);
        largest = fmax(largest, scores[p]);
    }
    for (int64_t p = 0; p < length; p++) total += scores[p] = exp(scores[p] - largest);
    for (int j = 0; j < HEAD_DIM; j++) {
        double acc = 0.0;
        for (int64_t p = 0; p < length; p++)
            acc += scores[p] * (values ? values[p * HEAD_DIM + j] * value_scales[p] : fvalues[p * HEAD_DIM + j]);
        out[j] = acc / total;
    }
}

/* One step in double with rounded activations, attending over the kernel's own int8 cache (whose
   newest vectors are checked against this step's keys and values, into *cache_error). */
/* One layer's self-attention caches for all BATCH rows: [BATCH][HEADS][POSITIONS] vectors (and scales);
   row b's riffd_row_cache points into them. */
typedef struct {
    int8_t *keys, *values;
    float *key_scales, *value_scales;
} layer_cache;

static void step_ref(test_layer *layers, const layer_cache *caches, const norm *final_norm, const matrix *heads,
                     const float *mask, double *x, int64_t position, double *logits, double *cache_error) {
    double normed[BATCH * HIDDEN], qkv[BATCH * 3 * HIDDEN], attn[BATCH * HIDDEN], delta[BATCH * HIDDEN];
    static double inner[BATCH * FFN];
    for (int l = 0; l < LAYERS; l++) {
        test_layer *t = &layers[l];
        const layer_cache *cache = &caches[l];
        layer_norm_ref(x, &t->self_norm, normed);
        project_rounded_ref(normed, BATCH, &t->qkv, qkv);
        for (int b = 0; b < BATCH; b++)
            for (int h = 0; h < HEADS; h++) {
                int64_t row = (b * HEADS + h) * POSITIONS, slot = row + position;
                *cache_error = fmax(*cache_error, cache_code_error(qkv + b * 3 * HIDDEN + HIDDEN + h * HEAD_DIM,
                                                                   cache->keys + slot * HEAD_DIM, cache->key_scales[slot]));
                *cache_error = fmax(*cache_error, cache_code_error(qkv + b * 3 * HIDDEN + 2 * HIDDEN + h * HEAD_DIM,
                                                                   cache->values + slot * HEAD_DIM,
                                                                   cache->value_scales[slot]));
                attend_ref(qkv + b * 3 * HIDDEN + h * HEAD_DIM, cache->keys + row * HEAD_DIM, cache->key_scales + row,
                           NULL, cache->values + row * HEAD_DIM, cache->value_scales + row, NULL, NULL, position + 1,
                           attn + b * HIDDEN + h * HEAD_DIM);
            }
        project_rounded_ref(attn, BATCH, &t->self_out, delta);
        for (int i = 0; i < BATCH * HIDDEN; i++) x[i] += delta[i];

        layer_norm_ref(x, &t->cross_norm, normed);
        project_rounded_ref(normed, BATCH, &t->cross_q, qkv);
        for (int b = 0; b < BATCH; b++)
            for (int h = 0; h < HEADS; h++) {
                int64_t base = (int64_t)(b * HEADS + h) * CROSS * HEAD_DIM;
                attend_ref(qkv + b * HIDDEN + h * HEAD_DIM, NULL, NULL, t->cross_keys + base, NULL, NULL,
                           t->cross_values + base, mask + b * CROSS, CROSS, attn + b * HIDDEN + h * HEAD_DIM);
            }
        project_rounded_ref(attn, BATCH, &t->cross_out, delta);
        for (int i = 0; i < BATCH * HIDDEN; i++) x[i] += delta[i];

        layer_norm_ref(x, &t->ffn_norm, normed);
        project_rounded_ref(normed, BATCH, &t->fc1, inner);
        for (int i = 0; i < BATCH * FFN; i++) inner[i] = 0.5 * inner[i] * (1.0 + erf(inner[i] / sqrt(2.0)));
        project_rounded_ref(inner, BATCH, &t->fc2, delta);
        for (int i = 0; i < BATCH * HIDDEN; i++) x[i] += delta[i];
    }
    layer_norm_ref(x, final_norm, normed);
    project_rounded_ref(normed, BATCH, heads, logits);
}

/* `group` 0: int8 projections; -1: int8a8; else int4 in groups of `group` (the lm heads stay int8 when
   heads_int8). */
static void check_decoder_step(int64_t group, int heads_int8) {
    test_layer layers[LAYERS];
    riffd_layer_weights weights[LAYERS];
    layer_cache caches[LAYERS];
    riffd_row_cache row_caches[BATCH][LAYERS];
    const size_t cache_slots = (size_t)BATCH * HEADS * POSITIONS;
    for (int l = 0; l < LAYERS; l++) {
        test_layer *t = &layers[l];
        t->self_norm = random_norm(), t->cross_norm = random_norm(), t->ffn_norm = random_norm();
        t->qkv = projection(3 * HIDDEN, HIDDEN, group), t->self_out = projection(HIDDEN, HIDDEN, group);
        t->cross_q = projection(HIDDEN, HIDDEN, group), t->cross_out = projection(HIDDEN, HIDDEN, group);
        t->fc1 = projection(FFN, HIDDEN, group), t->fc2 = projection(HIDDEN, FFN, group);
        t->cross_keys = must_alloc(sizeof(float) * BATCH * HEADS * CROSS * HEAD_DIM);
        t->cross_values = must_alloc(sizeof(float) * BATCH * HEADS * CROSS * HEAD_DIM);
        for (int i = 0; i < BATCH * HEADS * CROSS * HEAD_DIM; i++)
            t->cross_keys[i] = (float)(2.0 * gauss()), t->cross_values[i] = (float)gauss();
        weights[l] = (riffd_layer_weights){
            .self_norm = {t->self_norm.weight, t->self_norm.bias}, .qkv = t->qkv.view, .self_out = t->self_out.view,
            .cross_norm = {t->cross_norm.weight, t->cross_norm.bias}, .cross_q = t->cross_q.view,
            .cross_out = t->cross_out.view, .ffn_norm = {t->ffn_norm.weight, t->ffn_norm.bias}, .fc1 = t->fc1.view,
            .fc2 = t->fc2.view};
        caches[l] = (layer_cache){.keys = must_alloc(cache_slots * HEAD_DIM), .values = must_alloc(cache_slots * HEAD_DIM),
                                  .key_scales = must_alloc(sizeof(float) * cache_slots),
                                  .value_scales = must_alloc(sizeof(float) * cache_slots)};
        for (int b = 0; b < BATCH; b++) {
            const size_t slots = (size_t)b * HEADS * POSITIONS, cross = (size_t)b * HEADS * CROSS * HEAD_DIM;
            row_caches[b][l] = (riffd_row_cache){caches[l].keys + slots * HEAD_DIM, caches[l].values + slots * HEAD_DIM,
                                                 caches[l].key_scales + slots, caches[l].value_scales + slots,
                                                 t->cross_keys + cross, t->cross_values + cross};
        }
    }
    norm final_norm = random_norm();
    matrix heads = projection(VOCAB_ROWS, HIDDEN, heads_int8 ? 0 : group);
    float mask[BATCH * CROSS];
    for (int i = 0; i < BATCH * CROSS; i++) mask[i] = (i % CROSS) >= CROSS - 2 * (i / CROSS % 2) ? -3.4028235e38f : 0.0f;

    /* The batched step the daemon calls (native_step.py), one row per batch row, all at one position. */
    riffd_model model = {.hidden = HIDDEN, .heads = HEADS, .head_dim = HEAD_DIM, .ffn = FFN, .layers = LAYERS,
                         .eps = 1e-5f, .layer = weights, .final_norm = {final_norm.weight, final_norm.bias},
                         .lm_heads = heads.view};
    riffd_row rows[BATCH];
    for (int b = 0; b < BATCH; b++)
        rows[b] = (riffd_row){.layer = row_caches[b], .cross_mask = mask + b * CROSS, .position = 0,
                              .max_positions = POSITIONS, .cross_len = CROSS};
    float *scratch = must_alloc(sizeof(float) * riffd_step_scratch_floats(&model, rows, BATCH));

    double worst = 0.0, cache_error = 0.0;
    tie_flips = stray_codes = 0, worst_seen = 0.0;
    int greedy_checked = 0, greedy_differ = 0;
    for (int64_t position = 0; position < POSITIONS; position++) {
        float x[BATCH * HIDDEN], logits[BATCH * VOCAB_ROWS];
        double xd[BATCH * HIDDEN], want[BATCH * VOCAB_ROWS];
        for (int i = 0; i < BATCH * HIDDEN; i++) xd[i] = x[i] = (float)gauss();
        for (int b = 0; b < BATCH; b++) rows[b].position = position;
        recording = 1;
        riffd_step_rows(&model, rows, BATCH, x, logits, scratch, THREADS);
        recording = 0, replaying = 1;
        step_ref(layers, caches, &final_norm, &heads, mask, xd, position, want, &cache_error);
        replaying = 0;
        if (replayed != recorded_count) { fprintf(stderr, "the step made products the reference did not\n"); exit(3); }
        forget_recorded();
        double largest = 0.0;
        for (int i = 0; i < BATCH * VOCAB_ROWS; i++) largest = fmax(largest, fabs(want[i]));
        const double tolerance = 3e-4 * largest;
        for (int i = 0; i < BATCH * VOCAB_ROWS; i++) worst = fmax(worst, fabs(logits[i] - want[i]) / tolerance);
        /* greedy codes per (row, codebook of 64) */
        for (int row = 0; row < BATCH * VOCAB_ROWS / 64; row++) {
            int best = 0, best_got = 0;
            double first = -INFINITY, second = -INFINITY;
            for (int v = 0; v < 64; v++) {
                double s = want[row * 64 + v];
                if (s > first) second = first, first = s, best = v;
                else if (s > second) second = s;
                if (logits[row * 64 + v] > logits[row * 64 + best_got]) best_got = v;
            }
            if (first - second > tolerance) greedy_checked++, greedy_differ += best != best_got;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "decoder step, %s projections%s, %d positions: logits",
             group > 0 ? "int4" : group < 0 ? "int8a8" : "int8", group && heads_int8 ? " (int8 lm heads)" : "", POSITIONS);
    report(what, worst);
    report("  its int8 cache vectors, rounded as specified", cache_error);
    snprintf(what, sizeof what, "  its products' activation codes, the reference's but %ld at ties (%.2g of max|x| apart)",
             tie_flips, worst_seen);
    report(what, (double)stray_codes);
    snprintf(what, sizeof what, "  same greedy codes (%d of %d compared)", greedy_checked - greedy_differ, greedy_checked);
    report(what, greedy_differ + (greedy_checked < BATCH * VOCAB_ROWS / 64 * POSITIONS / 2));

    for (int l = 0; l < LAYERS; l++) {
        test_layer *t = &layers[l];
        matrix *ms[] = {&t->qkv, &t->self_out, &t->cross_q, &t->cross_out, &t->fc1, &t->fc2};
        for (int i = 0; i < 6; i++) free_matrix(ms[i]);
        free(t->self_norm.weight), free(t->self_norm.bias), free(t->cross_norm.weight), free(t->cross_norm.bias);
        free(t->ffn_norm.weight), free(t->ffn_norm.bias), free(t->cross_keys), free(t->cross_values);
        free(caches[l].keys), free(caches[l].values), free(caches[l].key_scales), free(caches[l].value_scales);
    }
    free_matrix(&heads);
    free(final_norm.weight), free(final_norm.bias), free(scratch);
}

/* The packed 4-bit cache: byte i of a vector holds code i (low nibble) and code i + hd/2 (high). */
static int nibble(const uint8_t *slot, int64_t hd, int64_t i) {
    int64_t half = hd / 2;
    int byte = slot[i % half];
    int code = i < half ? byte & 15 : byte >> 4;
    return code >= 8 ? code - 16 : code;
}

/* The value of float16 bits (the +kv4 scales; positive), in double. */
static double half_value(uint16_t bits) {
    const int exponent = (bits >> 10) & 31, fraction = bits & 1023;
    return exponent ? ldexp(1.0 + fraction / 1024.0, exponent - 15) : ldexp(fraction, -24);
}

/* Positive x in float16's normal range rounded to float16 (nearest, ties to even: nearbyint's default
   mode), as its bits: the scales this file hands the 4-bit attention. */
static uint16_t half_bits(double x) {
    int exponent;
    const double mantissa = frexp(x, &exponent) * 2.0; /* 1 <= mantissa < 2, x = mantissa 2^(exponent - 1) */
    double fraction = nearbyint((mantissa - 1.0) * 1024.0);
    if (fraction == 1024.0) fraction = 0.0, exponent++;
    return (uint16_t)(((exponent - 1 + 15) << 10) | (int)fraction);
}

/* Code i of position p of the +kv4 layout: int8 slots for the first head8 positions, 4-bit after. */
static int kv4_code(const uint8_t *slots, int64_t hd, int64_t head8, int64_t p, int64_t i) {
    if (p < head8) return (int8_t)slots[p * hd + i];
    return nibble(slots + head8 * hd + (p - head8) * (hd / 2), hd, i);
}

/* 1: check_int4_cache's 4-bit positions all score 0 (key codes 0) and weigh value codes 7 with one
   scale: every 16-bit weight 32767 and every byte 0xFF after its xor, the largest sums weigh4_words'
   int32 lanes take (an overflow there is far outside the bound). */
static int kv4_largest_sums;

/* head8 > 0: riffd_attend_kv4 over an int8 head of head8 positions and 4-bit slots after them. */
static void check_int4_cache(int64_t hd, int64_t length, int64_t head8) {
    char what[160];
    const int64_t half = hd / 2;
    float *x = must_alloc(sizeof(float) * (size_t)hd);
    uint16_t scale;
    uint8_t *codes = must_alloc((size_t)half);
    double store_worst = 0.0;
    for (int trial = 0; trial < 64; trial++) {
        double spread = pow(10.0, rand_int(-4, 3));
        for (int64_t i = 0; i < hd; i++) x[i] = (float)(gauss() * spread);
        riffd_store_int4(codes, &scale, x, hd);
        double largest = 0.0;
        for (int64_t i = 0; i < hd; i++) largest = fmax(largest, fabs((double)x[i]));
        /* float16's rounding of the float32 max|x| / 7 (itself within 2^-24 of it) */
        const double exact = largest / 7.0, rounding = fmax(ldexp(exact, -11), ldexp(1.0, -25)) + ldexp(exact, -23);
        store_worst = fmax(store_worst, fabs(half_value(scale) - exact) / rounding);
        for (int64_t i = 0; i < hd; i++) {
            double scaled = x[i] * 7.0 / largest, off = fabs(nibble(codes, hd, i) - scaled);
            double tie = fabs(fabs(scaled - floor(scaled)) - 0.5);
            store_worst = fmax(store_worst, tie < 1e-5 ? off / 1.5 : off / 0.5); /* half a step, or one near a tie */
        }
    }
    snprintf(what, sizeof what, "4-bit cache store, head_dim %lld", (long long)hd);
    report(what, store_worst);

    const int64_t early = head8 < length ? head8 : length, bytes = head8 * hd + (length - early) * half;
    uint8_t *keys = must_alloc((size_t)bytes), *values = must_alloc((size_t)bytes);
    /* the scales as the attention reads them (kv_cache.py's layout: the int8 head's float32 two float16
       entries each, then float16), their values, and the float32 ones the 4-bit positions' round */
    uint16_t *key_scales = must_alloc(sizeof(uint16_t) * (size_t)(length + head8));
    uint16_t *value_scales = must_alloc(sizeof(uint16_t) * (size_t)(length + head8));
    double *key_halves = must_alloc(sizeof(double) * (size_t)length), *value_halves = must_alloc(sizeof(double) * (size_t)length);
    float *key_floats = must_alloc(sizeof(float) * (size_t)length), *value_floats = must_alloc(sizeof(float) * (size_t)length);
    float *q = must_alloc(sizeof(float) * (size_t)hd), *out = must_alloc(sizeof(float) * (size_t)hd);
    float *scratch = must_alloc(sizeof(float) * (size_t)riffd_attention_scratch_floats(length, hd));
    double *scores = must_alloc(sizeof(double) * (size_t)length), *want = must_alloc(sizeof(double) * (size_t)hd);
    double *code_sums = must_alloc(sizeof(double) * (size_t)hd);
    for (int64_t i = 0; i < bytes; i++) keys[i] = (uint8_t)rand_int(0, 255), values[i] = (uint8_t)rand_int(0, 255);
    if (kv4_largest_sums)
        for (int64_t i = head8 * hd; i < bytes; i++) keys[i] = 0x00, values[i] = 0x77;
    for (int64_t i = 0; i < head8 * hd; i++) { /* int8 codes are -127..127 */
        if (keys[i] == 128) keys[i] = 129;
        if (values[i] == 128) values[i] = 129;
    }
    double largest_value = 0.0;
    for (int64_t p = 0; p < length; p++) {
        double size = p < head8 ? 1.0 / 18 : 1.0; /* int8 codes ~18x 4-bit ones: vectors of one size */
        key_floats[p] = (float)((0.01 + 0.3 * uniform()) * size);
        value_floats[p] = (float)((0.01 + 0.3 * uniform()) * size);
        if (kv4_largest_sums && p >= head8) value_floats[p] = 0.2f;
        if (p < head8) {
            __builtin_memcpy(key_scales + 2 * p, key_floats + p, 4);
            __builtin_memcpy(value_scales + 2 * p, value_floats + p, 4);
            key_halves[p] = key_floats[p], value_halves[p] = value_floats[p];
        } else {
            key_scales[p + head8] = half_bits(key_floats[p]), value_scales[p + head8] = half_bits(value_floats[p]);
            key_halves[p] = half_value(key_scales[p + head8]), value_halves[p] = half_value(value_scales[p + head8]);
        }
        largest_value = fmax(largest_value, (p < head8 ? 127.0 : 8.0) * fmax(value_halves[p], value_floats[p]));
    }
    for (int64_t i = 0; i < hd; i++) q[i] = (float)(2.0 * gauss());
    /* Where the 4-bit slots score through the integer product, the query those slots meet is q8 * q_scale:
       q8 = round(q * (127 / max|q|)) in float32, as riffd_store_int8 rounds, q_scale = max|q| / 127. */
    const int integer = riffd_attend_int4_integer(hd);
    float q_largest = 0.0f;
    for (int64_t i = 0; i < hd; i++) q_largest = fmaxf(q_largest, fabsf(q[i]));
    const float q_inverse = 127.0f / q_largest, q_scale = q_largest / 127.0f;
    double *q_late = must_alloc(sizeof(double) * (size_t)hd);
    for (int64_t i = 0; i < hd; i++) q_late[i] = integer ? rintf(q[i] * q_inverse) * (double)q_scale : q[i];
    if (head8)
        riffd_attend_kv4(q, keys, key_scales, values, value_scales, length, head8, hd, scratch, out);
    else
        riffd_attend_int4(q, keys, key_scales, values, value_scales, length, hd, scratch, out);
    /* The specification (query, the float16 scales) and plain maths with q itself and the float32 scales
       (exact: the bound below). */
    for (int exact = 0; exact <= 1; exact++) {
        const double *key_scale = exact ? NULL : key_halves, *value_scale = exact ? NULL : value_halves;
        double top = -INFINITY, total = 0.0, moved = 0.0; /* moved: the most the roundings can move a score */
        for (int64_t p = 0; p < length; p++) {
            double dot = 0.0, codes = 0.0, plain = 0.0;
            const double *query = p < head8 || exact ? NULL : q_late;
            const double k_scale = key_scale ? key_scale[p] : key_floats[p];
            for (int64_t i = 0; i < hd; i++) {
                dot += (query ? query[i] : (double)q[i]) * kv4_code(keys, hd, head8, p, i) * k_scale;
                plain += (double)q[i] * kv4_code(keys, hd, head8, p, i);
                codes += abs(kv4_code(keys, hd, head8, p, i));
            }
            scores[p] = dot / sqrt((double)hd);
            top = fmax(top, scores[p]);
            /* q's rounding (4-bit positions, integer q.K), then the key scale's to float16 */
            const double by_query = p >= head8 && integer ? q_scale / 2.0 * codes * k_scale / sqrt((double)hd) : 0.0;
            const double by_scale = p >= head8 ? fabs(plain) * ldexp(k_scale, -11) * 1.0001 / sqrt((double)hd) : 0.0;
            moved = fmax(moved, by_query + by_scale);
        }
        for (int64_t i = 0; i < hd; i++) want[i] = 0.0, code_sums[i] = 0.0;
        double weight_top = 0.0; /* the largest weight e * value scale of a 4-bit position */
        for (int64_t p = 0; p < length; p++) {
            double e = exp(scores[p] - top);
            total += e;
            const double v_scale = value_scale ? value_scale[p] : value_floats[p];
            for (int64_t i = 0; i < hd; i++) want[i] += e * kv4_code(values, hd, head8, p, i) * v_scale;
            if (p < head8) continue;
            weight_top = fmax(weight_top, e * v_scale * (exact ? 1.0 + ldexp(1.0, -11) : 1.0));
            for (int64_t i = 0; i < hd; i++) code_sums[i] += abs(kv4_code(values, hd, head8, p, i));
        }
        /* Where the 4-bit values are weighed with 16-bit weights (riffd_attend_int4_words), each weight
           is off by at most the largest / 65534, so output i by that times code_sums[i] / total (the
           kernel's weights are within e^(2 moved) of these). */
        double words = 0.0;
        if (riffd_attend_int4_words(hd))
            for (int64_t i = 0; i < hd; i++)
                words = fmax(words, weight_top * exp(2.0 * moved) / 65534.0 * code_sums[i] / total);
        /* Scores each moved by at most `moved` move every softmax weight by a factor within e^(+-2 moved),
           so the output by at most (e^(2 moved) - 1) times the largest value, and the value scales' rounding
           by 2^-11 of it (plus float32's 1e-5). */
        const double bound = (exact ? (expm1(2.0 * moved) + ldexp(1.0001, -11) + 1e-5) * largest_value
                                    : 1e-5 * largest_value) + words;
        double worst = 0.0;
        for (int64_t i = 0; i < hd; i++) worst = fmax(worst, fabs(out[i] - want[i] / total) / bound);
        snprintf(what, sizeof what, "4-bit cache attention%s%s, head_dim %lld, %lld positions, %lld in int8",
                 kv4_largest_sums ? " at its largest sums" : "", exact ? (integer ? " (integer q.K, float16 scales) vs q's own maths and float32 scales"
                                  : " (float16 scales) vs float32 scales")
                       : integer ? " (integer q.K) vs its rounding" : "",
                 (long long)hd, (long long)length, (long long)head8);
        report(what, worst);
    }
    free(q_late), free(x), free(codes), free(keys), free(values), free(key_scales), free(value_scales), free(q), free(out);
    free(key_halves), free(value_halves), free(key_floats), free(value_floats);
    free(scratch), free(scores), free(want), free(code_sums);
}

/* A short condition folded into one layer's cross-attention projections (fold.c): heads of head_dim,
   cross_len slots padded to `slots`. */
static double unpacked(const int8_t *packed, const float *scales, int64_t cols, int64_t r, int64_t c) {
    const int64_t b = riffd_int8_block_rows();
    return packed[(r / b) * b * cols + (c / 4) * b * 4 + (r % b) * 4 + c % 4] * (double)scales[r];
}

static void check_fold(int64_t heads, int64_t head_dim, int64_t cross_len) {
    const int64_t hidden = heads * head_dim;
    int64_t slots = cross_len;
    while ((heads * slots) % riffd_int8_block_rows() || (heads * slots) % riffd_int8_col_multiple()) slots++;
    const int64_t entries = heads * slots;
    matrix queries_t = int8_matrix(heads * hidden, head_dim, 1.0), outputs_h = int8_matrix(heads * hidden, head_dim, 0.5);
    float *query_scales = must_alloc(sizeof(float) * hidden), *keys = must_alloc(sizeof(float) * heads * cross_len * head_dim);
    float *values = must_alloc(sizeof(float) * heads * cross_len * head_dim);
    for (int64_t i = 0; i < hidden; i++) query_scales[i] = (float)(0.01 * (0.5 + uniform()));
    for (int64_t i = 0; i < heads * cross_len * head_dim; i++) keys[i] = (float)gauss(), values[i] = (float)gauss();
    int8_t *scores = must_alloc(entries * hidden), *mix = must_alloc(entries * hidden);
    int32_t *score_sums = must_alloc(sizeof(int32_t) * entries), *mix_sums = must_alloc(sizeof(int32_t) * hidden);
    float *score_scales = must_alloc(sizeof(float) * entries), *mix_scales = must_alloc(sizeof(float) * hidden);
    float *work = must_alloc(sizeof(float) * riffd_fold_work_floats(heads, head_dim, cross_len, slots));
    int refused = riffd_fold_condition(&queries_t.view, &outputs_h.view, query_scales, keys, values, heads, head_dim,
                                       cross_len, slots, scores, score_sums, score_scales, mix, mix_sums, mix_scales,
                                       work, THREADS);
    double worst = refused ? INFINITY : 0.0;
    const double root = sqrt((double)head_dim);
    for (int64_t h = 0; h < heads && !refused; h++)
        for (int64_t t = 0; t < slots; t++) {
            const int64_t row = h * slots + t;
            int32_t sum = 0;
            for (int64_t c = 0; c < hidden; c++) sum += (int32_t)lround(unpacked(scores, score_scales, hidden, row, c) / score_scales[row]);
            if (sum != score_sums[row]) worst = INFINITY;
            for (int64_t c = 0; c < hidden; c++) {
                /* scores[h slots + t][c] = sum_j k[h][t][j] s_q[h d + j] / sqrt(d) * queries_t[h hidden + c][j] */
                double want = 0.0, spread = 0.0, largest = 0.0;
                for (int64_t j = 0; j < head_dim && t < cross_len; j++) {
                    const double coefficient = keys[(h * cross_len + t) * head_dim + j] * (double)query_scales[h * head_dim + j] / root;
                    const double w = queries_t.dense[(h * hidden + c) * head_dim + j];
                    want += coefficient * w, spread += fabs(w);
                    largest = fabs(coefficient) > largest ? fabs(coefficient) : largest;
                }
                const double got = unpacked(scores, score_scales, hidden, row, c);
                const double bound = t < cross_len ? 0.5 * score_scales[row] + spread * largest / 65534.0 + 1e-6 * fabs(want) : 0.0;
                const double share = bound > 0 ? fabs(got - want) / bound : (got == 0.0 ? 0.0 : INFINITY);
                worst = share > worst ? share : worst;
            }
        }
    for (int64_t d = 0; d < hidden && !refused; d++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t t = 0; t < slots; t++) {
                /* mix[d][h slots + t] = sum_j v[h][t][j] outputs_h[h hidden + d][j] */
                double want = 0.0, spread = 0.0, largest = 0.0;
                for (int64_t j = 0; j < head_dim && t < cross_len; j++) {
                    const double v = values[(h * cross_len + t) * head_dim + j], w = outputs_h.dense[(h * hidden + d) * head_dim + j];
                    want += v * w, spread += fabs(w);
                    largest = fabs(v) > largest ? fabs(v) : largest;
                }
                const double got = unpacked(mix, mix_scales, entries, d, h * slots + t);
                const double bound = t < cross_len ? 0.5 * mix_scales[d] + spread * largest / 65534.0 + 1e-6 * fabs(want) : 0.0;
                const double share = bound > 0 ? fabs(got - want) / bound : (got == 0.0 ? 0.0 : INFINITY);
                worst = share > worst ? share : worst;
            }
    char what[128];
    snprintf(what, sizeof what, "folded condition, %lld heads of %lld, %lld slots (padded to %lld)", (long long)heads,
             (long long)head_dim, (long long)cross_len, (long long)slots);
    report(what, worst);
    free_matrix(&queries_t), free_matrix(&outputs_h);
    free(query_scales), free(keys), free(values), free(scores), free(mix), free(score_sums), free(mix_sums);
    free(score_scales), free(mix_scales), free(work);
}

int main(int argc, char **argv) {
    if (argc > 1) rng_state = strtoull(argv[1], NULL, 0); /* another seed for the random inputs */
    if (!riffd_int8_supported()) {
        printf("harness: the kernels were built as stubs (no instruction set they need)\n");
        return 2;
    }
    printf("harness: kernels built for %d-bit vectors (%s)\n", riffd_simd_bits(), riffd_isa());
    check_matvec(64, 32, 0);
    check_matvec(96, 1024, 0);
    check_matvec(256, 4096, 0);
    check_matvec8(64, 32);
    check_matvec8(96, 1024);
    check_matvec8(256, 4096);
    check_matvec(64, 64, 16);
    check_matvec(96, 1024, 32);
    check_matvec(256, 4096, 64);
    check_f32_matmul(64, 1024, 0);
    check_f32_matmul(64, 1024, 1);
    check_gelu();
    check_decoder_step(0, 0);
    check_decoder_step(32, 0);
    check_decoder_step(32, 1);
    check_decoder_step(-1, 1);
    /* Last, so the checks above keep the random inputs they were tuned on. */
    check_elu(1.0f);
    check_elu(0.5f);
    check_lstm(1, 0);
    check_lstm(2, 0);
    check_lstm(1, 1);
    check_lstm(2, 1);
    check_sampling(1, 3.0f, 1.0f, 250);
    check_sampling(1, 2.5f, 0.7f, 1);
    check_sampling(0, 1.0f, 1.0f, 2047);
    check_sampling(0, 1.0f, 0.9f, 0);
    check_int4_cache(16, 37, 0);
    check_int4_cache(64, 1501, 0);
    check_int4_cache(48, 9, 0);
    check_int4_cache(64, 1501, 64);
    check_int4_cache(16, 37, 5);
    check_int4_cache(48, 9, 16);
    check_int4_cache(128, 301, 64);
    check_int4_cache(64, 70, 64);
    check_int4_cache(64, 16, 0);
    check_int4_cache(64, 9001, 64); /* 16-bit weights: more than two blocks of WORD_BLOCK positions */
    kv4_largest_sums = 1;
    check_int4_cache(64, 1501, 0);
    kv4_largest_sums = 0;
    /* The streaming codec's newer kernels, after the others so that those keep their random inputs. */
    check_lstm_int8(1);
    check_lstm_int8(2);
    check_elu_pairs(1, 16, 1.0f);
    check_elu_pairs(25, 1024, 1.0f); /* 4 pool chunks */
    check_elu_pairs(1500, 16, 1.0f); /* 3 pool chunks */
    check_elu_pairs(3, 48, 0.5f);
    const int64_t vl = riffd_conv_taps_channel_multiple();
    check_conv_taps(1, 7, 1, 1001, 64, 1); /* EnCodec's last layer; 4 pool chunks on AVX-512 */
    check_conv_taps(2, 3, 2, 37, 3 * vl, 0);
    check_conv_taps(4, 1, 1, 5, 64, 1);
    check_conv_taps(3, 5, 3, 1, vl, 0);
    const int64_t panel = riffd_residual_unit_panel();
    check_residual_unit(64, 32, 3, 1, 1001, 2, 1.0f, 1); /* EnCodec's last unit, a stream's kept rows; many blocks */
    check_residual_unit(2 * panel, panel, 3, 3, 37, 0, 0.5f, 0);
    check_residual_unit(panel, 2 * panel, 4, 2, 5, 11, 1.0f, 1); /* every row in the first piece */
    check_residual_unit(512, 256, 3, 1, 203, 2, 1.0f, 1); /* EnCodec's first unit, a 25-frame chunk and a bit */
    check_residual_unit(3 * panel, panel, 1, 1, 1, 1, 1.0f, 1);
    report("residual unit sizes: EnCodec's first unit fits, 5000 hidden do not",
           riffd_residual_unit_fits(512, 256, 2) && !riffd_residual_unit_fits(panel, 5000, 2) ? 0.0 : INFINITY);
    /* The folded condition, last: the checks above keep their random inputs. */
    check_fold(4, 64, 5);
    check_fold(16, 64, 12); /* musicgen-small's heads, a 12-token prompt */
    check_fold(2, 16, 1);
    printf("harness: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
