/* A decode step's sampling scores in one pass (daemon/models/musicgen/sampling.py's `native_scores`):
   classifier-free guidance, the temperature and the top-k cut, the same float operations as the
   PyTorch expressions they replace, in the same order, so the same bits:

       scores = uncond + (cond - uncond) * guidance      (float32 each step, no fused multiply-add)
       scores = scores / temperature
       scores[scores < k-th largest of the row] = -inf

   Measured in the daemon's step on the shared 2-core Zen 4 (4 rows of 2048), those were ten PyTorch
   calls and 0.3 ms a step, most of it torch.topk and each call's start with the weights just streamed
   through the caches; here they are one pass over the rows and a selection.
   Plain C on any CPU: nothing here needs the kernels' instruction sets. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "riffd_native.h"

/* (c - u) * g + u as two roundings, as PyTorch's separate kernels make it: never contracted into an FMA. */
#pragma GCC optimize("fp-contract=off")
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* A float's bits as an unsigned key in the float's order (no NaN): -0 just below +0, -inf and +inf at the
   ends. Only the selection sees keys; the cut compares floats, where the two zeros are equal. */
static inline uint32_t order_key(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

static inline float key_value(uint32_t key) {
    uint32_t bits = key & 0x80000000u ? key & 0x7fffffffu : ~key;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* The k-th largest of v[0..n) (1 <= k <= n; no NaN), as torch.topk(v, k).values[-1] gives it (ties
   counted, its two zeros alike under the cut's comparison); keys [n] scratch. The largest key T with
   at least k keys >= T, set bit by bit from the top: 32 counting passes, each a branch-free compare
   the compiler vectorizes (n < 2^32). A quickselect's data-dependent branches took 87 us for a step's
   4 rows of 2048 MusicGen scores on the Zen 4 (the draw's largest part), these passes 15 us (AVX-512;
   19 us built for AVX2). */
static float kth_largest(const float *v, uint32_t *keys, int64_t n, int64_t k) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) keys[i] = order_key(v[i]);
    uint32_t found = 0;
    for (int bit = 31; bit >= 0; bit--) {
        const uint32_t trial = found | (1u << bit);
        uint32_t at_least = 0; /* 32-bit lanes as the keys' (n < 2^32) */
#pragma omp simd reduction(+ : at_least)
        for (int64_t i = 0; i < n; i++) at_least += keys[i] >= trial;
        if ((int64_t)at_least >= k) found = trial;
    }
    return key_value(found);
}

/* logits: guided, [2 * rows][vocab] (the conditional rows first, then the null ones); otherwise
   [rows][vocab]. scores [rows][vocab] out; work [vocab] 32-bit scratch. top_k outside 1..vocab-1: no cut.
   Returns the number of rows holding a NaN (then the caller takes PyTorch's path, whose order
   puts NaN first: not worth mirroring for a step that is lost anyway), else 0. */
int64_t riffd_sampling_scores(const float *logits, int64_t rows, int64_t vocab, int guided, float guidance,
                              float temperature, int64_t top_k, float *scores, float *work) {
    int64_t nans = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *cond = logits + r * vocab, *uncond = logits + (rows + r) * vocab;
        float *out = scores + r * vocab;
        if (guided)
            for (int64_t v = 0; v < vocab; v++) {
                float delta = cond[v] - uncond[v];
                float scaled = delta * guidance;
                out[v] = (uncond[v] + scaled) / temperature;
            }
        else
            for (int64_t v = 0; v < vocab; v++) out[v] = cond[v] / temperature;
        int nan = 0;
        for (int64_t v = 0; v < vocab; v++) nan |= isnan(out[v]);
        if (nan) {
            nans++;
            continue;
        }
        if (top_k <= 0 || top_k >= vocab) continue;
        const float kth = kth_largest(out, (uint32_t *)work, vocab, top_k);
        for (int64_t v = 0; v < vocab; v++)
            if (out[v] < kth) out[v] = -INFINITY;
    }
    return nans;
}

/* ---- The draw: PyTorch's exponential race, with its generator's very numbers ----

   `loop.next_columns` draws a row's code as torch.multinomial does: argmax over v of p[v] / E[v],
   p = softmax(scores), E[v] ~ Exp(1) from the stream's torch.Generator (`exponential_`). Here the
   same E come from the generator's own state (read with get_state, written back with set_state):
   PyTorch's CPU `exponential_` takes, for each element in order, one 64-bit draw of its Mersenne
   twister (two 32-bit outputs, the first the high half), u = (draw & (2^53 - 1)) * 2^-53, and
   E = (float)(-log1p(-u)) in double. sampling.py checks that recipe against torch at load (the
   bits of E and the state after) and keeps PyTorch's path where it differs.

   Every E is made (the generator moves exactly as torch's call moves it), but the logarithm only
   where the score is finite (top-k leaves 250 of 2048) and the code could win (race_rows' bounds). The softmax is not computed as PyTorch's
   vector kernels compute it (their exp's bits are theirs): each candidate's p / E is computed in
   double, and the row's winner taken only when it beats every other code by more than PyTorch's
   float rounding can move either (`slack`, a relative bound, plus the subnormal floor); otherwise
   the row is left to PyTorch (its noise row written out exactly), so the codes are PyTorch's in
   every case. */

enum { MT_N = 624, MT_M = 397 };

/* torch.Generator.get_state()'s bytes (CPUGeneratorImplState): left (int32) at 8, next (uint64)
   at 16, the 624 state words (uint64 each, 32 bits used) from 24; 5056 bytes in all. */
enum { STATE_LEFT = 8, STATE_NEXT = 16, STATE_WORDS = 24, STATE_BYTES = 5056 };

typedef struct {
    uint32_t word[MT_N];
    int64_t left, next;
} twister;

static void twister_load(twister *t, const uint8_t *state) {
    int32_t left;
    uint64_t next, word;
    memcpy(&left, state + STATE_LEFT, sizeof left);
    memcpy(&next, state + STATE_NEXT, sizeof next);
    for (int i = 0; i < MT_N; i++) {
        memcpy(&word, state + STATE_WORDS + 8 * i, sizeof word);
        t->word[i] = (uint32_t)word;
    }
    t->left = left, t->next = (int64_t)next;
}

static void twister_store(const twister *t, uint8_t *state) {
    int32_t left = (int32_t)t->left;
    uint64_t next = (uint64_t)t->next;
    memcpy(state + STATE_LEFT, &left, sizeof left);
    memcpy(state + STATE_NEXT, &next, sizeof next);
    for (int i = 0; i < MT_N; i++) {
        uint64_t word = t->word[i];
        memcpy(state + STATE_WORDS + 8 * i, &word, sizeof word);
    }
}

/* MT19937's regeneration of the whole state (Matsumoto and Nishimura, 1998). */
static inline uint32_t twist(uint32_t upper, uint32_t lower, uint32_t far) {
    uint32_t y = (upper & 0x80000000u) | (lower & 0x7fffffffu);
    return far ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu); /* branch-free: the low bit is a coin toss */
}

static void twister_refill(twister *t) {
    uint32_t *w = t->word;
    int i = 0;
    for (; i < MT_N - MT_M; i++) w[i] = twist(w[i], w[i + 1], w[i + MT_M]);
    for (; i < MT_N - 1; i++) w[i] = twist(w[i], w[i + 1], w[i + MT_M - MT_N]);
    w[MT_N - 1] = twist(w[MT_N - 1], w[0], w[MT_M - 1]);
}

/* The next n 32-bit outputs, as PyTorch's mt19937 gives them one by one: each call counts `left`
   down and takes word[next++]; the call that brings `left` to 0 refills first, sets left = 624 and
   next = 0 and takes word[0] without counting (so here: left = 625, then counted like the rest). */
static void twister_fill(twister *t, uint32_t *out, int64_t n) {
    while (n > 0) {
        if (t->left <= 1) {
            twister_refill(t);
            t->left = MT_N + 1, t->next = 0;
        }
        int64_t take = t->left - 1 < n ? t->left - 1 : n;
        const uint32_t *w = t->word + t->next;
#pragma omp simd
        for (int64_t i = 0; i < take; i++) {
            uint32_t y = w[i];
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c5680u;
            y ^= (y << 15) & 0xefc60000u;
            out[i] = y ^ (y >> 18);
        }
        t->next += take, t->left -= take, out += take, n -= take;
    }
}

/* n elements' uniforms as 53-bit integers (u = bits * 2^-53): a 64-bit draw each, two outputs with
   the first as the high half, cut to 53 bits. 0 is u == 0: E == 0, which PyTorch races as p / 0. */
static void twister_bits53(twister *t, uint64_t *bits, uint32_t *outputs, int64_t n) {
    twister_fill(t, outputs, 2 * n);
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        bits[i] = (((uint64_t)outputs[2 * i] << 32) | outputs[2 * i + 1]) & ((1ull << 53) - 1);
}

static inline float exponential_of(uint64_t bits53) {
    double u = (double)bits53 * (1.0 / 9007199254740992.0);
    return (float)(-1.0 * log1p(-u));
}

/* n exponentials into out from the generator state `state` (advanced in place): torch's
   `out.exponential_(1, generator=g)` on a float32 tensor. sampling.py's load check uses it. */
void riffd_sampling_exponentials(uint8_t *state, int64_t n, float *out) {
    twister t;
    twister_load(&t, state);
    uint64_t bits[256];
    uint32_t outputs[512];
    for (int64_t done = 0; done < n; done += 256) {
        int64_t count = n - done < 256 ? n - done : 256;
        twister_bits53(&t, bits, outputs, count);
        for (int64_t i = 0; i < count; i++) out[done + i] = exponential_of(bits[i]);
    }
    twister_store(&t, state);
}

int64_t riffd_sampling_state_bytes(void) { return STATE_BYTES; }

/* Each row r of scores [rows][vocab] (guided, tempered and cut: -inf outside the cut; no NaN) draws
   its code with the generator state states[r] (rows of one stream share one; advanced in place, in
   row order). codes[r]: the code, or -1 where the margin does not decide it; then noise[r] holds
   the row's E, exactly, for PyTorch's race. Scratch: bits [vocab], work [3 * vocab]. Returns the
   rows left undecided. */
static int64_t race_rows(const float *scores, int64_t rows, int64_t vocab, uint8_t *const *states, uint8_t *state,
                         double slack, int64_t *codes, float *noise, uint64_t *bits, double *work);

int64_t riffd_sampling_race(const float *scores, int64_t rows, int64_t vocab, uint8_t *const *states, double slack,
                            int64_t *codes, float *noise, uint64_t *bits, double *work) {
    return race_rows(scores, rows, vocab, states, NULL, slack, codes, noise, bits, work);
}

/* riffd_sampling_race's rows, each with the state states[r], or all with `state` where states is NULL. */
static int64_t race_rows(const float *scores, int64_t rows, int64_t vocab, uint8_t *const *states, uint8_t *state,
                         double slack, int64_t *codes, float *noise, uint64_t *bits, double *work) {
    int64_t undecided = 0;
    twister t;
    const uint8_t *loaded = NULL;
    double *ceiling = work, *inverse = work + vocab;
    uint32_t *outputs = (uint32_t *)(work + 2 * vocab);
    for (int64_t r = 0; r < rows; r++) {
        const float *s = scores + r * vocab;
        const uint8_t *row_state = states != NULL ? states[r] : state;
        if (row_state != loaded) {
            if (loaded != NULL) twister_store(&t, (uint8_t *)loaded);
            twister_load(&t, row_state);
            loaded = row_state;
        }
        twister_bits53(&t, bits, outputs, vocab);
        int zero = 0;
#pragma omp simd reduction(| : zero)
        for (int64_t v = 0; v < vocab; v++) zero |= bits[v] == 0;
        float top = -INFINITY; /* no NaN in s: a max in any order is the max */
#pragma omp simd reduction(max : top)
        for (int64_t v = 0; v < vocab; v++) top = s[v] > top ? s[v] : top;
        /* The codes the cut kept, in order (branch-free: they lie scattered among the cut ones); the
           twister's outputs are spent, so their room holds the list. */
        uint32_t *kept = outputs;
        int64_t count = 0;
        for (int64_t v = 0; v < vocab; v++) {
            kept[count] = (uint32_t)v;
            count += s[v] != -INFINITY;
        }
        /* The winner in double: p[v] / E[v] up to the softmax's common 1 / sum. PyTorch's p[v] / E[v]
           is that ratio / sum times (1 + d), |d| <= slack * (|x| + 1) with x = s[v] - top (its float
           subtraction scales exp's error by |x|), plus 2^-149 / E[v] at most where p underflows to a
           subnormal. The winner must beat every other code by both (a cut code's p is 0 exactly).
           The logarithms go only to the codes that might: u <= E <= u / (1 - u) (E = -log(1 - u), and
           the float E within 2^-24 of it, so both bounds widened by 2^-23) bounds each ratio without
           one; the best lower bound, less the widest margin, is a threshold the winner's floor
           reaches, so a code whose ceiling stays under it (with E at its least) neither wins nor
           comes close, and only the others (a handful of 250) take their exact E. */
        int64_t best = -1, finalists = 0;
        double best_ratio = -1.0, best_floor = 0.0, total = 0.0;
        if (!zero && isfinite(top)) {
            double *weight = ceiling, *most_inverse = inverse; /* until a code's exact E replaces them */
            double low = 0.0, widest = 0.0;
            for (int64_t k = 0; k < count; k++) {
                const uint32_t v = kept[k];
                const double x = (double)s[v] - (double)top, u = (double)bits[v] * 0x1p-53;
                weight[k] = exp(x);
                total += weight[k];
                most_inverse[k] = (1.0 + 0x1p-23) / u;
                const double least = weight[k] * ((1.0 - u) / u) * (1.0 - 0x1p-23);
                low = least > low ? least : low;
                const double bound = slack * (fabs(x) + 1.0);
                widest = bound > widest ? bound : widest;
            }
            const double threshold = low * (1.0 - widest), tiny = ldexp(1.0, -148) * total;
            for (int64_t k = 0; k < count; k++) {
                const uint32_t v = kept[k];
                const double bound = slack * (fabs((double)s[v] - (double)top) + 1.0);
                if (weight[k] * most_inverse[k] * (1.0 + bound) + tiny * most_inverse[k] < threshold) continue;
                /* a finalist: its exact ratio, packed to the front (f <= k: read before written) */
                const double w = weight[k], exact_inverse = 1.0 / (double)exponential_of(bits[v]);
                const double ratio = w * exact_inverse;
                const int64_t f = finalists++;
                kept[f] = v, inverse[f] = exact_inverse, ceiling[f] = ratio * (1.0 + bound);
                if (ratio > best_ratio) best_ratio = ratio, best = f, best_floor = ratio * (1.0 - bound);
            }
        }
        int decided = best >= 0 && best_ratio / total > 1e-30 && best_floor > 0.0;
        const double tiny = ldexp(1.0, -148) * total;
        for (int64_t k = 0; k < finalists && decided; k++)
            decided &= k == best || ceiling[k] + tiny * inverse[k] < best_floor;
        if (decided) {
            codes[r] = kept[best];
        } else {
            codes[r] = -1;
            undecided++;
            for (int64_t v = 0; v < vocab; v++) noise[r * vocab + v] = exponential_of(bits[v]);
        }
    }
    if (loaded != NULL) twister_store(&t, (uint8_t *)loaded);
    return undecided;
}

/* riffd_sampling_scores then riffd_sampling_race in one call (a window's whole draw when no top-p cut
   follows the top-k one), every row from the one generator state `state` (a window's stream: the
   caller passes its address, no array of them): scores [rows][vocab] out, the rest as
   riffd_sampling_race. Returns -1, with no generator moved, where a row's scores hold a NaN (then the
   caller takes PyTorch's path), else the rows left undecided. */
int64_t riffd_sampling_draw(const float *logits, int64_t rows, int64_t vocab, int guided, float guidance,
                            float temperature, int64_t top_k, uint8_t *state, double slack, float *scores,
                            int64_t *codes, float *noise, uint64_t *bits, double *work) {
    /* the selection's [vocab] 32-bit keys lie in work's first vocab doubles, free until the race */
    if (riffd_sampling_scores(logits, rows, vocab, guided, guidance, temperature, top_k, scores, (float *)work))
        return -1;
    return race_rows(scores, rows, vocab, NULL, state, slack, codes, noise, bits, work);
}
