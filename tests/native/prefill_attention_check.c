/* riffd_prefill_attention (daemon/native/prefill_attention.c) against double-precision C, built with
   the library's sources for any branch (tests/native/test_prefill_attention_check.py: this CPU's,
   and ARM's under qemu-user). Prints one line per failure and a summary; exits 1 on any failure,
   2 where the build has only the stubs. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "riffd_native.h"

int riffd_int8_supported(void);
const char *riffd_isa(void);
int riffd_prefill_attention_fits(int64_t dim);
void riffd_prefill_attention(const float *q, int64_t q_stride_n, int64_t q_stride_h, int64_t q_stride_t,
                             const float *k, const float *v, float *out, int64_t n, int64_t heads, int64_t t,
                             int64_t l, int64_t dim, float scale, const float *mask, int causal, int threads);

static uint64_t state = 88172645463325252ull;
static float uniform(void) { /* xorshift: [-1, 1) */
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (float)((double)(state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* One call against double math: q as a strided view of [n][t][3][heads][dim] (the qkv projection's). */
static int check(int64_t n, int64_t heads, int64_t t, int64_t l, int64_t dim, int causal, int masked) {
    const int64_t qs_n = t * 3 * heads * dim, qs_t = 3 * heads * dim, qs_h = dim;
    float *qkv = malloc(sizeof(float) * (size_t)(n * qs_n)), *k = malloc(sizeof(float) * (size_t)(n * heads * l * dim));
    float *v = malloc(sizeof(float) * (size_t)(n * heads * l * dim)), *mask = malloc(sizeof(float) * (size_t)(n * l));
    float *out = malloc(sizeof(float) * (size_t)(n * t * heads * dim));
    double *scores = malloc(sizeof(double) * (size_t)l);
    for (int64_t i = 0; i < n * qs_n; i++) qkv[i] = 2 * uniform();
    for (int64_t i = 0; i < n * heads * l * dim; i++) k[i] = 2 * uniform(), v[i] = uniform();
    for (int64_t i = 0; i < n * l; i++) mask[i] = (i % 3 == 1) ? -3.4028235e38f : uniform();
    const float scale = 1.0f / sqrtf((float)dim);
    riffd_prefill_attention(qkv, qs_n, qs_h, qs_t, k, v, out, n, heads, t, l, dim, scale, masked ? mask : NULL, causal, 2);
    double worst = 0;
    for (int64_t b = 0; b < n; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < t; i++) {
                const float *q = qkv + b * qs_n + h * qs_h + i * qs_t;
                const float *kh = k + (b * heads + h) * l * dim, *vh = v + (b * heads + h) * l * dim;
                const int64_t seen = causal ? l - t + i + 1 : l;
                double top = -INFINITY, total = 0;
                for (int64_t c = 0; c < seen; c++) {
                    double dot = 0;
                    for (int64_t d = 0; d < dim; d++) dot += (double)q[d] * kh[c * dim + d];
                    scores[c] = dot * scale + (masked ? mask[b * l + c] : 0.0);
                    if (scores[c] > top) top = scores[c];
                }
                for (int64_t c = 0; c < seen; c++) total += scores[c] = exp(scores[c] - top);
                for (int64_t d = 0; d < dim; d++) {
                    double want = 0;
                    for (int64_t c = 0; c < seen; c++) want += scores[c] / total * vh[c * dim + d];
                    double err = fabs(out[((b * t + i) * heads + h) * dim + d] - want);
                    if (!(err <= worst)) worst = err; /* NaN too */
                }
            }
    free(qkv), free(k), free(v), free(mask), free(out), free(scores);
    const int failed = !(worst <= 4e-6);
    if (failed)
        printf("FAIL n=%lld heads=%lld t=%lld l=%lld dim=%lld causal=%d masked=%d: error %.3g\n", (long long)n,
               (long long)heads, (long long)t, (long long)l, (long long)dim, causal, masked, worst);
    return failed;
}

int main(void) {
    if (!riffd_int8_supported()) {
        printf("stubs: no kernels in this build\n");
        return 2;
    }
    printf("kernels built for %s\n", riffd_isa());
    static const int64_t dims[] = {16, 32, 64, 128};
    static const int64_t shapes[][2] = {{1, 1}, {3, 3}, {5, 5}, {37, 37}, {70, 133}, {1, 90}, {130, 130}};
    int checked = 0, failed = 0;
    for (int d = 0; d < 4; d++) {
        if (!riffd_prefill_attention_fits(dims[d])) failed++, printf("FAIL: head size %lld refused\n", (long long)dims[d]);
        for (int s = 0; s < 7; s++) {
            failed += check(2, 3, shapes[s][0], shapes[s][1], dims[d], 1, 0), checked++;
            failed += check(2, 3, shapes[s][0], shapes[s][1] % 17 + 1, dims[d], 0, 1), checked++; /* cross: few keys */
        }
    }
    if (riffd_prefill_attention_fits(48)) failed++, printf("FAIL: head size 48 accepted\n");
    printf("prefill attention: %d checked, %d failed\n", checked, failed);
    return failed ? 1 : 0;
}
