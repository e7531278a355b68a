/* A batch's shared decode step in one call: each window's column embedded (embed.c), the step
   (riffd_step_rows_out), and each sampling window's draw from its logits (riffd_sampling_draw).

   From Python these were three calls and some twenty small torch and ctypes calls around them, each
   starting cold after the step's weights streamed through the caches (5-30 us apiece on a 2-core
   Zen 4): here it is the same functions on the same buffers in the same order, so the same bits. */

#include <stdint.h>

#include "riffd_native.h"

int64_t riffd_embed_inputs(const float *tables, int64_t books, int64_t codes_per_book, int64_t hidden,
                           const int64_t *codes, int64_t prompts, const float *position, int64_t rows, float *out);
int64_t riffd_sampling_draw(const float *logits, int64_t rows, int64_t vocab, int guided, float guidance,
                            float temperature, int64_t top_k, uint8_t *state, double slack, float *scores,
                            int64_t *codes, float *noise, uint64_t *bits, double *work);
void riffd_step_rows_out(const riffd_model *m, const riffd_row *rows, int64_t n, int64_t logit_rows, float *x,
                         float *logits, float *scratch, int threads);

/* Built with -DRIFFD_STEP_PROFILE (as decoder_step.c's phases): the inputs' and the draws' wall time,
   nanoseconds, read and cleared by riffd_step_draw_profile (bench.step_account), which returns 2;
   without the flag it returns 0. */
#ifdef RIFFD_STEP_PROFILE
static double part_ns[2];
#define PART(which, statement) RIFFD_TIMED(part_ns[which], statement)
int64_t riffd_step_draw_profile(double *ns, int64_t count) { return riffd_profile_take(ns, count, part_ns, 2); }
#else
#define PART(which, statement) statement
int64_t riffd_step_draw_profile(double *ns, int64_t count) {
    (void)ns; (void)count;
    return 0;
}
#endif

/* Feeds `windows` columns (their rows in order fill x [n][hidden], n their rows' sum; each row's position
   set from its window's: the caller's structs, written), steps the rows (logits [logit_rows][lm_heads.rows]
   for the first logit_rows, the rows after keys-only), then draws each of `drawn` draws in order, each
   from its logits (rows of vocab = lm_heads.rows / books scores, a codebook's each), `undecided` set as
   riffd_draw says. A draw that meets a NaN stops the draws there (the later ones may share its
   generator state, which PyTorch's path must move first). Returns 0 where every draw was decided, 1
   where one was not; -1 where a code or a position is outside the tables or its row's cache, or two
   rows of one cache would write one slot, and -2 where the feeds' rows are not n (then nothing was
   stepped or drawn). */
int64_t riffd_step_draw(const riffd_model *m, const riffd_embedding *e, riffd_row *rows, int64_t n,
                        const riffd_feed *feeds, int64_t windows, int64_t logit_rows, riffd_draw *draws, int64_t drawn,
                        float *x, float *logits, float *scratch, int threads, double slack) {
    const int64_t hidden = m->hidden, vocab = m->lm_heads.rows / e->books;
    int64_t filled = 0;
    for (int64_t w = 0; w < windows; w++) {
        const int64_t position = feeds[w].position;
        if (filled + feeds[w].rows > n) return -2;
        if (position < 0 || position >= e->position_count) return -1;
        for (int64_t r = filled; r < filled + feeds[w].rows; r++) {
            if (position >= rows[r].max_positions) return -1;
            rows[r].position = position;
        }
        filled += feeds[w].rows;
    }
    if (filled != n) return -2;
    /* rows of one cache (a next window's context columns riding together) must write slots of their own */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            if (rows[i].layer == rows[j].layer && rows[i].position == rows[j].position) return -1;
    int64_t bad = 0;
    PART(0, {
        float *out = x;
        for (int64_t w = 0; w < windows && !bad; w++) {
            const riffd_feed *f = &feeds[w];
            bad = riffd_embed_inputs(e->tables, e->books, e->codes_per_book, hidden, f->codes, f->prompts,
                                     e->positions + f->position * hidden, f->rows, out);
            out += f->rows * hidden;
        }
    });
    if (bad) return -1;
    riffd_step_rows_out(m, rows, n, logit_rows, x, logits, scratch, threads);
    int64_t left = 0;
    PART(1, {
        for (int64_t i = 0; i < drawn; i++) {
            riffd_draw *d = &draws[i];
            if (left < 0) {
                d->undecided = -2;
                continue;
            }
            d->undecided = riffd_sampling_draw(d->logits, d->rows, vocab, (int)d->guided, d->guidance,
                                               d->temperature, d->top_k, d->state, slack, d->scores, d->codes,
                                               d->noise, d->bits, d->work);
            left = d->undecided < 0 ? -1 : left + d->undecided;
        }
    });
    return left != 0;
}
