/* A decode step's inputs: each row's codebook embeddings summed, plus its position's embedding.

   The native step's rows enter as `_embed(codes) + positions[p]` makes them in PyTorch: a sum over
   the codebooks (4, or 8 in stereo) in codebook order from zero (PyTorch's sum over so few rows is
   sequential), then the position added, each in float32: the same operations in the same order here,
   so the same bits. One call instead of PyTorch's five (gather, sum, add, a guided window's null rows
   copied) saves ~0.1 ms of Python and dispatch a step. */

#include <stdint.h>
#include <string.h>

/* tables [books][codes_per_book][hidden], codes [prompts][books], position [hidden], out [rows][hidden]
   with rows = prompts (unguided) or 2 * prompts (guided: the null rows feed the same codes).
   Returns 0, or -1 (nothing written) where a code is outside its table. */
int64_t riffd_embed_inputs(const float *tables, int64_t books, int64_t codes_per_book, int64_t hidden,
                           const int64_t *codes, int64_t prompts, const float *position, int64_t rows, float *out) {
    for (int64_t i = 0; i < prompts * books; i++)
        if (codes[i] < 0 || codes[i] >= codes_per_book) return -1;
    for (int64_t p = 0; p < prompts; p++) {
        float *o = out + p * hidden;
        for (int64_t j = 0; j < hidden; j++) o[j] = 0.0f;
        for (int64_t k = 0; k < books; k++) {
            const float *e = tables + (k * codes_per_book + codes[p * books + k]) * hidden;
#pragma omp simd
            for (int64_t j = 0; j < hidden; j++) o[j] += e[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < hidden; j++) o[j] += position[j];
    }
    for (int64_t r = prompts; r < rows; r++) memcpy(out + r * hidden, out + (r % prompts) * hidden, sizeof(float) * hidden);
    return 0;
}
