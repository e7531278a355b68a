/* Attention for one (row, head) of a decode step: softmax(q . K / sqrt(head_dim) + mask) . V.

   Self-attention keys and values are int8, or 4-bit codes two to a byte, with a float scale per
   vector (kv_cache.py's layouts): a step reads every slot written so far, so late in a window they
   outweigh the weights, and this code must keep up with memory. Cross-attention keys and values are float32 (short, read-only).
   Rows are head_dim apart; head_dim % VL == 0.

   Scores: VL positions at a time, each a vector of partial products (one fused multiply-add per
   VL dimensions), summed across lanes for all VL positions at once (vf_reduce_vl) instead of one
   horizontal sum per position. 4-bit keys meet the query rounded to bytes in the CPU's byte product
   instead (score4_int), which costs a late window's scores ~half their time. Weighted values: one pass over the positions, every dimension's
   accumulator live at once, two positions in flight so the multiply-adds do not wait on each
   other. The common head sizes are compiled with head_dim a constant (all in registers). */

#include <math.h>
#include <stddef.h> /* NULL: x86's intrinsics headers bring it, arm_neon.h does not */
#include <stdint.h>

#include "riffd_native.h"
#include "vmath.h"

#ifdef RIFFD_KERNELS

#define MAX_CHUNKS (256 / VL) /* head_dim up to 256 in the specialised paths */

/* A late step's 4-bit keys and values come from memory (a (row, head)'s ~100 KB at 1400 positions,
   read once a step), and a task is one stream per pass that the hardware prefetchers pick up late
   and that its short compute between loads leaves waiting. So the score and weighing passes ask for
   the bytes ahead, a line at a time, in two reaches as int8_matvec.c's weight stream does:
   ATTENTION_PREFETCH_L2_BYTES ahead into L2 (prefetcht1) and ATTENTION_PREFETCH_BYTES ahead into
   L1 (prefetcht0); 0 turns a reach off. An L1 prefetch holds one of the core's few L1 fill buffers
   until its line arrives, so L1 prefetches alone (2048 ahead, 7f709a0) kept only that many lines in
   flight; the far ones wait in L2's longer queue instead. Measured on a 2-core Intel Xeon (AVX-512
   VNNI, KVM), bench.step_ab (int8a8+kv4, one stream, 60 pairs, same bits):
   - L1 alone at 2048 against none: 0.968x at position 1400, 0.965x riding at 1400 + 450, 1.001x at
     100 (AVX-512 VNNI); 0.936x, 0.930x, 1.001x (AVX-VNNI, -mno-avx512f); 0.923x, 0.912x, 0.998x
     (AVX2, -mno-avx512f -mno-avxvnni).
   - 4096 into L2 and 512 into L1 against that: 0.974x riding at 1400 + 450 (58 of 60 pairs
     faster), 0.986x at 1400 (56/60), 1.002x at 100 (AVX-512 VNNI); 0.966x, 0.977x, 0.995x
     (AVX-VNNI); 0.977x, 0.986x, 1.004x (AVX2). Riding, 8192/512 measured 1.009x of 4096/512 and
     4096/256 0.998x.
   Not measured on AMD: the weight stream there wanted other distances than on Intel. */
#ifndef ATTENTION_PREFETCH_BYTES
#define ATTENTION_PREFETCH_BYTES 512
#endif
#ifndef ATTENTION_PREFETCH_L2_BYTES
#define ATTENTION_PREFETCH_L2_BYTES 4096
#endif

/* A +kv4 task asks for the first ATTENTION_PRIME_BYTES of each of its four streams (keys, their
   scales, values, theirs) into L2 as it starts (0: not). The passes' own prefetches reach only
   ahead of where they read, and the int8 head's passes none, so each stream's first lines came on
   demand, one at a time, and the values' only once the weighing began; a task is short (4 KB of
   int8 head and 1.1 KB of 4-bit keys at position 100, ~50 KB at 1400), so those starts were a good
   part of it. 4096 meets the 4-bit passes' L2 reach where it takes over. Measured on a 2-core
   Intel Xeon (AVX-512 VNNI, KVM), bench.step_ab against none, 60 pairs, the same bits: a step at
   1400 with riding rows at 450 0.982x (58 of 60 pairs faster), at 1400 alone 0.988x, at 100
   0.983x; the AVX-VNNI branch 0.995x, 0.985x, 0.987x; the AVX2 branch 0.991x, 0.990x, 0.991x.
   2048 measured alike, 8192 less (0.992x riding).
   The int8 cache (engines without +kv4) primes its streams alike, and its score and weighing passes
   ask for their slots ahead as the 4-bit ones do (they had no prefetches): bench.native_step, one
   guided stream at position 1400, the int8 cache, processes taking turns, 24.0-24.8 -> 20.8-21.4 ms
   a step (AVX-512 VNNI), 25.8-25.9 -> 22.8-23.2 (AVX2 branch); bench.step_account --riding --engine
   int8: the riding steps' self-attention 10.5 -> 6.7 ms. */
#ifndef ATTENTION_PRIME_BYTES
#define ATTENTION_PRIME_BYTES 4096
#endif

static inline __attribute__((always_inline)) void prime_stream(const void *start, int64_t bytes) {
    riffd_prefetch_bytes(start, (size_t)(bytes < ATTENTION_PRIME_BYTES ? bytes : ATTENTION_PRIME_BYTES));
}

static inline __attribute__((always_inline)) void prefetch_slots_ahead(const uint8_t *at, const int64_t bytes) {
    if (ATTENTION_PREFETCH_BYTES > 0)
        for (int64_t line = 0; line < bytes; line += 64) __builtin_prefetch(at + ATTENTION_PREFETCH_BYTES + line, 0, 3);
    if (ATTENTION_PREFETCH_L2_BYTES > 0)
        for (int64_t line = 0; line < bytes; line += 64) __builtin_prefetch(at + ATTENTION_PREFETCH_L2_BYTES + line, 0, 2);
}

int64_t riffd_attention_scratch_floats(int64_t length, int64_t head_dim) {
    (void)head_dim;
    return length + VL; /* scores, and room for a whole last vector */
}

/* A vector's int8 codes, round(x * (127 / max|x|)) half to even; returns max|x|. count % VL == 0. */
static float quantize_int8(int8_t *to, const float *from, int64_t count) {
    vf amax = vf_zero();
    for (int64_t j = 0; j < count; j += VL) amax = vf_max(amax, vf_abs(vf_load(from + j)));
    float largest = vf_largest(amax);
    vf inverse = vf_set1(largest > 0.0f ? 127.0f / largest : 0.0f);
    for (int64_t j = 0; j < count; j += VL) {
        vi codes = vi_min(vi_max(vf_to_int(vf_mul(vf_load(from + j), inverse)), vi_set1(-127)), vi_set1(127));
        vi_store_bytes(to + j, codes);
    }
    return largest;
}

/* The +kv4 cache's 4-bit vectors' scales are float16 (kv_cache.py): a late step reads one a key and
   one a value beside each 32 bytes of codes (head_dim 64), so float32 ones are 1/9 of what it reads,
   float16 1/17. A scale is the float32 one rounded to nearest (ties to even), saturated at float16's
   largest finite value 65504 (vectors up to 7 * 65504 decode as they were; larger ones decode
   smaller, never infinite): kv_cache.half_scales, the same bits. The int8 head's stay float32. */
static inline uint16_t kv4_scale(float scale) { return f16_from_float(scale > 65504.0f ? 65504.0f : scale); }

/* Store a float32 vector as int8 codes and its scale, as kv_cache.quantize_vectors does:
   round(x * (127 / max|x|)), half to even, and max|x| / 127. count % VL == 0. The scale may sit
   at any 2-byte boundary (the +kv4 layout's int8 head: kv_cache.py). */
void riffd_store_int8(int8_t *to, float *scale, const float *from, int64_t count) {
    const float value = quantize_int8(to, from, count) / 127.0f;
    __builtin_memcpy(scale, &value, sizeof value);
}

/* 1: this build's +kv4 layout keeps the 4-bit vectors' scales in float16 and the int8 head's float32
   in the same buffer (kv_cache.py); builds without it kept float32 throughout (bench.step_ab asks). */
int riffd_kv4_half_scales(void) { return 1; }

/* 4-bit slots (kv_cache.py's packed layout): a vector of hd values is hd/2 bytes, byte i holding
   value i in its low nibble and value i + hd/2 in its high one, each a two's-complement code in
   -7..7; the vector's scale is max|x| / 7. Read VL bytes at a time widened to int32 lanes, a lane's
   low nibble shifted to the top (<< 28), and its high nibble masked there (<< 24, & 0xF0000000), are
   each code * 2^28 exactly: as floats they enter the products at once, and the 2^-28 (a power of
   two: no rounding) is folded into the score's and the output's factors. Three integer operations
   per two vectors of VL values, against the half a read that int8 slots take. */
#define NIBBLE_UNIT 268435456.0f   /* 2^28 */
#define NIBBLE_INVERSE 0x1p-28f

/* Store a float32 vector as 4-bit codes and its float16 scale, as kv_cache.quantize_vectors4 does:
   round(x * (7 / max|x|)), half to even, and max|x| / 7 (kv4_scale). count % VL == 0, count <= 256. */
void riffd_store_int4(uint8_t *to, uint16_t *scale, const float *from, int64_t count) {
    vf amax = vf_zero();
    for (int64_t j = 0; j < count; j += VL) amax = vf_max(amax, vf_abs(vf_load(from + j)));
    float largest = vf_largest(amax);
    vf inverse = vf_set1(largest > 0.0f ? 7.0f / largest : 0.0f);
    const int64_t half = count / 2;
    if (half % VL == 0) { /* value i and value i + half side by side in lanes: one byte each, no round trip */
        for (int64_t j = 0; j < half; j += VL) {
            vi low = vi_min(vi_max(vf_to_int(vf_mul(vf_load(from + j), inverse)), vi_set1(-7)), vi_set1(7));
            vi high = vi_min(vi_max(vf_to_int(vf_mul(vf_load(from + half + j), inverse)), vi_set1(-7)), vi_set1(7));
            vi_store_bytes(to + j, vi_or(vi_and(low, vi_set1(15)), vi_shift_left(vi_and(high, vi_set1(15)), 4)));
        }
        *scale = kv4_scale(largest / 7.0f);
        return;
    }
    float codes[256]; /* int32 codes, stored through the float view of their lanes */
    for (int64_t j = 0; j < count; j += VL) {
        vi c = vi_min(vi_max(vf_to_int(vf_mul(vf_load(from + j), inverse)), vi_set1(-7)), vi_set1(7));
        vf_store(codes + j, vf_as_float(c));
    }
    for (int64_t i = 0; i < half; i++) {
        int32_t low, high;
        __builtin_memcpy(&low, codes + i, 4);
        __builtin_memcpy(&high, codes + i + half, 4);
        to[i] = (uint8_t)((low & 15) | ((high & 15) << 4));
    }
    *scale = kv4_scale(largest / 7.0f);
}

/* A prefill's keys or values into a cache: `groups` (row, head) pairs of `count` vectors each (vector t
   of group g at from + (g * count + t) * hd, float32), vector t to position positions[t] of its
   group's slots, as the one-step stores above write them. Slots: int8 (bits 8: a group is slot_rows
   rows of hd bytes; scales float32, max_positions a group), or kv_cache.py's 4-bit layout (bits 4:
   rows of hd / 2 bytes, the first int8_positions positions int8 across two rows each; scales as the
   rows, slot_rows float16 a group: the head's float32 scales two entries each, then float16 ones).
   1 where done,
   0 where hd is not a whole number of vectors (the caller quantises instead). One call a layer
   instead of torch's quantising and index copies: 180-210 ms of a 601-frame window's prefill. */
int riffd_store_vectors(void *slots, void *scales, const float *from, const int64_t *positions, int64_t groups,
                        int64_t count, int64_t head_dim, int64_t slot_rows, int64_t max_positions, int64_t bits,
                        int64_t int8_positions) {
    const int64_t hd = head_dim;
    if (hd % VL || hd > 256 || (bits != 8 && bits != 4)) return 0;
    const size_t row_bytes = (size_t)(bits == 8 ? hd : hd / 2);
    for (int64_t g = 0; g < groups; g++) {
        uint8_t *base = (uint8_t *)slots + (size_t)g * (size_t)slot_rows * row_bytes;
        /* bits 8: max_positions float32 scales a group; bits 4: slot_rows float16 entries */
        float *group_scales = (float *)scales + g * max_positions;
        uint16_t *group_halves = (uint16_t *)scales + g * slot_rows;
        for (int64_t t = 0; t < count; t++) {
            const int64_t p = positions[t];
            const float *x = from + (g * count + t) * hd;
            if (bits == 8)
                riffd_store_int8((int8_t *)base + p * hd, group_scales + p, x, hd);
            else if (p < int8_positions)
                riffd_store_int8((int8_t *)base + p * hd, (float *)(void *)(group_halves + 2 * p), x, hd);
            else
                riffd_store_int4(base + (size_t)(p + int8_positions) * row_bytes, group_halves + p + int8_positions,
                                 x, hd);
        }
    }
    return 1;
}

/* One 4-bit vector's values times 2^28 as floats, for head sizes whose VL-value chunks are odd in
   number (the two halves of a vector then do not split into whole vector loads). */
static void unpack4(const uint8_t *slot, int64_t hd, float *out) {
    const int64_t half = hd / 2;
    for (int64_t i = 0; i < half; i++) {
        out[i] = (float)((int8_t)(uint8_t)(slot[i] << 4) >> 4) * NIBBLE_UNIT;
        out[i + half] = (float)((int8_t)slot[i] >> 4) * NIBBLE_UNIT;
    }
}

#if RIFFD_SIMD_BITS == 512
/* AVX-512: a lane's nibble picks its code * 2^28 from a 16-entry table (vpermps reads only an
   index's low 4 bits), one instruction instead of a shift and a conversion; the same values. A
   single-core probe on the Zen 4 (768 heads x 1501 positions, hd 64): scores 3.05 -> 2.72 ns a
   position in cache, 4.0 -> 3.2-4.3 from memory; weighted values 2.70 -> 2.37. */
static inline __attribute__((always_inline)) vf nibble_table(void) {
    return _mm512_setr_ps(0.0f, NIBBLE_UNIT, 2 * NIBBLE_UNIT, 3 * NIBBLE_UNIT, 4 * NIBBLE_UNIT, 5 * NIBBLE_UNIT,
                          6 * NIBBLE_UNIT, 7 * NIBBLE_UNIT, -8 * NIBBLE_UNIT, -7 * NIBBLE_UNIT, -6 * NIBBLE_UNIT,
                          -5 * NIBBLE_UNIT, -4 * NIBBLE_UNIT, -3 * NIBBLE_UNIT, -2 * NIBBLE_UNIT, -NIBBLE_UNIT);
}
static inline __attribute__((always_inline)) vf low_nibbles(vi bytes) {
    return _mm512_permutexvar_ps(bytes, nibble_table());
}
static inline __attribute__((always_inline)) vf high_nibbles(vi bytes) {
    return _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), nibble_table());
}
#else
static inline __attribute__((always_inline)) vf low_nibbles(vi bytes) { return vi_to_float(vi_shift_left(bytes, 28)); }
static inline __attribute__((always_inline)) vf high_nibbles(vi bytes) {
    return vi_to_float(vi_and(vi_shift_left(bytes, 24), vi_set1((int32_t)0xF0000000u)));
}
#endif

/* q . slot * 2^28 for one 4-bit vector (query: hd / VL chunks). */
static inline __attribute__((always_inline)) vf dot4(const vf *query, const uint8_t *slot, const int64_t hd) {
    const int64_t chunks = hd / VL;
    vf acc = vf_zero();
    if (chunks % 2 == 0) {
        const int64_t half = chunks / 2;
        for (int64_t c = 0; c < half; c++) {
            vi bytes = vi_load_i8((const int8_t *)slot + c * VL);
            acc = vf_fmadd(query[c], low_nibbles(bytes), acc);
            acc = vf_fmadd(query[c + half], high_nibbles(bytes), acc);
        }
    } else {
        float unpacked[256];
        unpack4(slot, hd, unpacked);
        for (int64_t c = 0; c < chunks; c++) acc = vf_fmadd(query[c], vf_load(unpacked + c * VL), acc);
    }
    return acc;
}

/* Integer q . K over 4-bit keys. The query is rounded to bytes once per call, q8 = round(q * 127 / max|q|)
   (riffd_store_int8's rounding, scale max|q| / 127), and each key's codes meet it in the branch's byte
   product (vi_dot_u7s8: vpdpbusd, AVX2's maddubs, sdot), summed exactly in int32: a position's 32 bytes
   (head_dim 64) take two products and four logic operations instead of widening 64 codes to floats
   and 64 multiply-adds. The product wants its first operand's bytes in 0..127: a byte xor 0x88
   turns both its two's-complement nibbles c into c + 8 (0..15), and 8 * sum(q8) comes off after.
   |dot| <= 15 * 127 * 256 < 2^24, so the sums convert to float exactly.
   The cost is q's rounding: each score moves by at most max|q| / 254 * sum|k| * key_scale / sqrt(hd)
   (kernel_harness.c checks both the exact specification and that bound; the greedy agreement of
   +kv4 with float32 is bench/kv4_agreement.py's engine+kv4). The int8 head keeps the float product:
   its bits stay riffd_attend_int8's. */
#if RIFFD_SIMD_BITS == 512
static inline __attribute__((always_inline)) vi vi_xor(vi a, vi b) { return _mm512_xor_si512(a, b); }
#elif RIFFD_SIMD_BITS == 256
static inline __attribute__((always_inline)) vi vi_xor(vi a, vi b) { return _mm256_xor_si256(a, b); }
#else
static inline __attribute__((always_inline)) vi vi_xor(vi a, vi b) { return veorq_s32(a, b); }
#endif

#define QK_BYTES (4 * VL) /* bytes a vector holds */

/* Whether q . K over 4-bit keys of this head size takes the integer product: a position's hd / 2
   bytes are whole vectors, or a vector holds two of them (AVX-512, head_dim 64). */
static inline __attribute__((always_inline)) int integer_qk(const int64_t hd) {
    return (hd / 2) % QK_BYTES == 0 || (RIFFD_SIMD_BITS == 512 && hd / 2 * 2 == QK_BYTES);
}

/* One 4-bit vector's q8 products over `vectors` vectors of its bytes (qlow, qhigh: q8's halves). */
static inline __attribute__((always_inline)) vi dot4_int(const uint8_t *slot, const vi *qlow, const vi *qhigh,
                                                        const int64_t vectors) {
    const vi flip = vi_set1((int32_t)0x88888888u), nibbles = vi_set1(0x0F0F0F0F);
    vi acc = vi_zero();
    for (int64_t c = 0; c < vectors; c++) {
        vi x = vi_xor(vi_load(slot + c * QK_BYTES), flip);
        acc = vi_dot_u7s8(acc, vi_and(x, nibbles), qlow[c]);
        acc = vi_dot_u7s8(acc, vi_and(vi_shift_right(x, 4), nibbles), qhigh[c]);
    }
    return acc;
}

#if RIFFD_SIMD_BITS == 512
/* Lane i = the sum of the 8-lane half i % 2 of v[i / 2]: two positions a vector (head_dim 64).
   Pairwise within 128-bit blocks twice (block k, lane j of quads[i]: block k's sum of v[4i + j]),
   then the blocks of each half added; the lanes then hold positions 0,2,4,6 | 1,3,5,7 | 8,10.. |
   9,11.., which one permutation puts in order. */
static inline __attribute__((always_inline)) vf reduce_halves(const vf v[8]) {
    vf pairs[4], quads[2];
    for (int i = 0; i < 4; i++)
        pairs[i] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0x88), _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++)
        quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x88),
                                 _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xdd));
    vf sums = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88), _mm512_shuffle_f32x4(quads[0], quads[1], 0xdd));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), sums);
}
#endif

#if RIFFD_SIMD_BITS == 256
/* dots4_int for head_dim 64 on the 256-bit branches, where a position's 32 bytes are one vector: 8
   positions' lane sums added across lanes in integers and converted once, instead of 8 conversions
   and vf_reduce_vl's 21 shuffles and adds. A position's partial sums are at most 15240 in size, so
   16 bits hold them: VNNI's int32 lanes (8 products of a code + 8 <= 15 and |q8| <= 127 each) packed
   two positions to a vector (vpackssdw, exact), or AVX2's: the low and high nibbles' pair products
   (vpmaddubsw, 2 products each) added in 16 bits and then pairs of those (vphaddw), so that vpmaddwd
   by ones runs once per 4 positions instead of once per product. Then pairs once more (30480 <
   32767: vphaddw), into 32 bits (vpmaddwd by ones), and the two 128-bit halves. The integers are
   the same, so the scores are the same bits. Hot, one core of the Zen 4, 1425 positions: scores 0.97
   -> 0.83 ns a position (AVX-VNNI through AVX-512 VL), 1.23 -> 1.00 (AVX2); AVX-512 0.85. */
static inline __attribute__((always_inline)) vf dots4_int_row(const uint8_t *block, vi qlow, vi qhigh) {
    vi pairs[4]; /* per 128-bit half: position 2i's 4 partial sums, then position 2i + 1's, as int16 */
#if defined(RIFFD_AVX2_MADD)
    const vi flip = vi_set1((int32_t)0x88888888u), nibbles = vi_set1(0x0F0F0F0F);
    for (int i = 0; i < 4; i++) {
        vi words[2]; /* 16 sums of 4 products each (7620 at most) */
        for (int k = 0; k < 2; k++) {
            const vi x = vi_xor(vi_load(block + (2 * i + k) * QK_BYTES), flip);
            words[k] = _mm256_add_epi16(_mm256_maddubs_epi16(vi_and(x, nibbles), qlow),
                                        _mm256_maddubs_epi16(vi_and(vi_shift_right(x, 4), nibbles), qhigh));
        }
        pairs[i] = _mm256_hadd_epi16(words[0], words[1]);
    }
#else
    for (int i = 0; i < 4; i++)
        pairs[i] = _mm256_packs_epi32(dot4_int(block + 2 * i * QK_BYTES, &qlow, &qhigh, 1),
                                      dot4_int(block + (2 * i + 1) * QK_BYTES, &qlow, &qhigh, 1));
#endif
    const vi ones = _mm256_set1_epi16(1); /* per half: positions 4i .. 4i + 3's sums, int32 */
    const vi quads[2] = {_mm256_madd_epi16(_mm256_hadd_epi16(pairs[0], pairs[1]), ones),
                         _mm256_madd_epi16(_mm256_hadd_epi16(pairs[2], pairs[3]), ones)};
    return vi_to_float(_mm256_add_epi32(_mm256_permute2x128_si256(quads[0], quads[1], 0x20),
                                        _mm256_permute2x128_si256(quads[0], quads[1], 0x31)));
}
#endif

/* VL positions' exact integer products q8 . codes (offset included) as floats, from `block`: their
   slots one after another, hd / 2 bytes each. */
static inline __attribute__((always_inline)) vf dots4_int(const uint8_t *block, const vi *qlow, const vi *qhigh,
                                                         const int64_t hd) {
    const int64_t bytes = hd / 2;
#if RIFFD_SIMD_BITS == 512
    if (bytes * 2 == QK_BYTES) {
        vf part[8];
        for (int m = 0; m < 8; m++) part[m] = vi_to_float(dot4_int(block + m * QK_BYTES, qlow, qhigh, 1));
        return reduce_halves(part);
    }
#elif RIFFD_SIMD_BITS == 256
    if (bytes == QK_BYTES) return dots4_int_row(block, qlow[0], qhigh[0]);
#endif
    vf part[VL];
    for (int i = 0; i < VL; i++) part[i] = vi_to_float(dot4_int(block + i * bytes, qlow, qhigh, bytes / QK_BYTES));
    return vf_reduce_vl(part);
}

/* score() for 4-bit keys through the integer product (integer_qk(hd)); scale without 2^-28. */
static inline __attribute__((always_inline)) float score4_int(const float *q, const uint8_t *keys,
                                                             const uint16_t *key_scales, float scale, int64_t length,
                                                             const int64_t hd, float *scores) {
    const int64_t bytes = hd / 2, vectors = bytes < QK_BYTES ? 1 : bytes / QK_BYTES;
    int8_t q8[256];
    float q_scale;
    riffd_store_int8(q8, &q_scale, q, hd);
    int32_t q_sum = 0;
    for (int64_t i = 0; i < hd; i++) q_sum += q8[i];
    /* q8's halves in the bytes' order: byte j of a slot holds dims j (low nibble) and j + hd/2 (high);
       where a vector holds two slots, each half twice */
    int8_t low[256], high[256];
    for (int64_t j = 0; j < vectors * QK_BYTES; j += bytes) { /* whole copies: bytes divides vectors * QK_BYTES */
        __builtin_memcpy(low + j, q8, (size_t)bytes);
        __builtin_memcpy(high + j, q8 + bytes, (size_t)bytes);
    }
    vi qlow[MAX_CHUNKS], qhigh[MAX_CHUNKS];
    for (int64_t c = 0; c < vectors; c++) qlow[c] = vi_load(low + c * QK_BYTES), qhigh[c] = vi_load(high + c * QK_BYTES);
    const vf offset = vf_set1(8.0f * (float)q_sum), factor = vf_set1(q_scale * scale);
    vf largest = vf_set1(-INFINITY);
    int64_t p0 = 0;
    for (; p0 + VL <= length; p0 += VL) {
        prefetch_slots_ahead(keys + p0 * bytes, VL * bytes);
        vf dots = vf_sub(dots4_int(keys + p0 * bytes, qlow, qhigh, hd), offset);
        vf s = vf_mul(dots, vf_mul(vf_load_f16(key_scales + p0), factor));
        vf_store(scores + p0, s);
        largest = vf_max(largest, s);
    }
    if (p0 < length) { /* the last few, from a copy: no reads past the slots or the scales */
        uint8_t tail[VL * 128];
        uint16_t tail_scales[VL] = {0};
        float lanes[VL];
        const int64_t count = length - p0;
        __builtin_memcpy(tail, keys + p0 * bytes, (size_t)(count * bytes));
        __builtin_memset(tail + count * bytes, 0, (size_t)((VL - count) * bytes));
        __builtin_memcpy(tail_scales, key_scales + p0, sizeof(uint16_t) * (size_t)count);
        vf dots = vf_sub(dots4_int(tail, qlow, qhigh, hd), offset);
        vf_store(lanes, vf_mul(dots, vf_mul(vf_load_f16(tail_scales), factor)));
        for (int64_t i = 0; i < count; i++) {
            scores[p0 + i] = lanes[i];
            largest = vf_max(largest, vf_set1(lanes[i]));
        }
    }
    return vf_largest(largest);
}

static inline __attribute__((always_inline)) vf load_slot(const void *rows, const int int8, int64_t index) {
    return int8 ? vf_load_i8((const int8_t *)rows + index) : vf_load((const float *)rows + index);
}

/* VL scales from index on, and one: float16 (`half`: the +kv4 layout's) or float32, as float32. */
static inline __attribute__((always_inline)) vf load_scales(const void *scales, const int half, int64_t index) {
    return half ? vf_load_f16((const uint16_t *)scales + index) : vf_load((const float *)scales + index);
}
static inline __attribute__((always_inline)) float scale_at(const void *scales, const int half, int64_t index) {
    if (half) return f16_to_float(((const uint16_t *)scales)[index]);
    float value; /* the +kv4 head's float32 scales sit at 2-byte boundaries */
    __builtin_memcpy(&value, (const float *)scales + index, sizeof value);
    return value;
}

/* scores[p] = (q . K[p]) * key_scales[p] * scale + mask[p] for p < length (key_scales, mask: NULL
   for none; key_scales float16 where `half`); returns the largest. `int8`, `int4` (4-bit slots: scale
   includes 2^-28), `half` and `hd` are constants where inlined; `ahead`: the int8 cache's slots are
   asked for ahead of the reads (prefetch_slots_ahead; the +kv4 cache's int8 head is primed instead). */
static inline __attribute__((always_inline)) float score(const float *q, const void *keys, const int int8,
                                                         const int ahead, const int int4, const void *key_scales,
                                                         const int half, float scale, const float *mask,
                                                         int64_t length, const int64_t hd, float *scores) {
    const int64_t chunks = hd / VL;
    vf query[MAX_CHUNKS];
    for (int64_t c = 0; c < chunks; c++) query[c] = vf_load(q + c * VL);
    vf largest = vf_set1(-INFINITY);
    for (int64_t p0 = 0; p0 < length; p0 += VL) {
        const int64_t count = length - p0 < VL ? length - p0 : VL;
        vf part[VL];
        if (ahead) prefetch_slots_ahead((const uint8_t *)keys + p0 * hd, VL * hd);
        for (int i = 0; i < VL; i++) {
            vf acc = vf_zero();
            if (i < count && int4)
                acc = dot4(query, (const uint8_t *)keys + (p0 + i) * (hd / 2), hd);
            else if (i < count)
                for (int64_t c = 0; c < chunks; c++) acc = vf_fmadd(query[c], load_slot(keys, int8, (p0 + i) * hd + c * VL), acc);
            part[i] = acc;
        }
        vf dots = vf_reduce_vl(part);
        if (count == VL) {
            vf factor = key_scales ? vf_mul(load_scales(key_scales, half, p0), vf_set1(scale)) : vf_set1(scale);
            vf s = vf_mul(dots, factor);
            if (mask) s = vf_add(s, vf_load(mask + p0));
            vf_store(scores + p0, s);
            largest = vf_max(largest, s);
        } else { /* the last few: no loads past the end of the scales or the mask */
            float lanes[VL];
            vf_store(lanes, dots);
            for (int64_t i = 0; i < count; i++) {
                float s = lanes[i] * (key_scales ? scale_at(key_scales, half, p0 + i) * scale : scale)
                          + (mask ? mask[p0 + i] : 0.0f);
                scores[p0 + i] = s;
                largest = vf_max(largest, vf_set1(s));
            }
        }
    }
    return vf_largest(largest);
}

/* scores[0..length) = e^(score - largest), times value_scales (NULL: none; float16 where `half`);
   returns the sum before the value scales. */
static float weights(float *scores, int64_t length, float largest, const void *value_scales, const int half) {
    vf sum = vf_zero();
    int64_t whole = length - length % VL;
    for (int64_t p = 0; p < whole; p += VL) {
        vf e = exp_v(vf_sub(vf_load(scores + p), vf_set1(largest)));
        sum = vf_add(sum, e);
        vf_store(scores + p, value_scales ? vf_mul(e, load_scales(value_scales, half, p)) : e);
    }
    float total = vf_sum(sum);
    for (int64_t p = whole; p < length; p++) { /* the last few, one at a time */
        float e = scores[p] - largest < -87.0f ? 0.0f : expf(scores[p] - largest);
        total += e;
        scores[p] = value_scales ? e * scale_at(value_scales, half, p) : e;
    }
    return total;
}

/* out = sum_p scores[p] V[p] / total: every chunk's accumulator live, two positions in flight; `ahead` as
   score's. */
static inline __attribute__((always_inline)) void weigh(const float *scores, const void *values, const int int8,
                                                        const int ahead, int64_t length, const int64_t hd, float total,
                                                        float *out) {
    const int64_t chunks = hd / VL;
    vf even[MAX_CHUNKS], odd[MAX_CHUNKS];
    for (int64_t c = 0; c < chunks; c++) even[c] = odd[c] = vf_zero();
    int64_t p = 0;
    for (; p + 1 < length; p += 2) {
        if (ahead) prefetch_slots_ahead((const uint8_t *)values + p * hd, 2 * hd);
        vf w0 = vf_set1(scores[p]), w1 = vf_set1(scores[p + 1]);
        for (int64_t c = 0; c < chunks; c++) {
            even[c] = vf_fmadd(w0, load_slot(values, int8, p * hd + c * VL), even[c]);
            odd[c] = vf_fmadd(w1, load_slot(values, int8, (p + 1) * hd + c * VL), odd[c]);
        }
    }
    if (p < length) {
        vf w = vf_set1(scores[p]);
        for (int64_t c = 0; c < chunks; c++) even[c] = vf_fmadd(w, load_slot(values, int8, p * hd + c * VL), even[c]);
    }
    vf inverse = vf_div(vf_set1(1.0f), vf_set1(total));
    for (int64_t c = 0; c < chunks; c++) vf_store(out + c * VL, vf_mul(vf_add(even[c], odd[c]), inverse));
}

#if (RIFFD_SIMD_BITS == 512 && defined(__AVX512VBMI__)) || RIFFD_SIMD_BITS == 256
#define WEIGH4_WORDS 1
/* weigh4 for head_dim 64 in integers: the weights (softmax times value scales, all >= 0) rounded to
   16 bits, w16 = round(w * 32767 / max w), and each pair of positions' codes meeting them in one
   16-bit product per lane (w16[p] c[p][d] + w16[p + 1] c[p + 1][d], exact in int32: vpdpwssd, or
   AVX2's vpmaddwd and an add) instead of widening 64 codes a position to floats for 4 (AVX-512) or 8
   (256-bit) multiply-adds. weigh_pair spreads a pair's bytes so that each 32-bit lane holds byte d of
   the first position in its low 16 bits and byte d of the second in its high ones, zero-extended:
   a mask or a shift then leaves the nibbles (dimensions d and d + 32). A byte xor 0x88 first makes
   each two's-complement nibble c into c + 8 (0..15), and 8 * sum(w16) comes off after. Per lane
   |sum| <= 15 * 32767 a position: int32 holds WORD_BLOCK positions, a longer run adds blocks in
   float. Single core on the Zen 4 (1401 positions in cache): 2.33 -> 1.30 ns a position with
   AVX-512. The cost is the weights' rounding: each is off by at most max w / 65534, so an output by
   at most max w / 65534 * sum_p |c[p][d]| / total (kernel_harness.c and test_kv4 check that bound);
   float32 arithmetic elsewhere. Weights overwrite their scores in place (16 bits at byte 2p, read as
   floats from byte 4p). */
#define WORD_BLOCK 4096
/* The high nibbles' sums come from whole bytes: a lane's w16 b = w16 (lo + 8) + 16 w16 (hi + 8), so the
   high nibbles' sum is (sum w16 b - sum w16 (lo + 8)) / 16, exact in integers (the same int32 as
   weighing each nibble, one shift a lane instead of one a product). A lane's byte sums grow by up to
   32767 * 255 a position: int32 holds BYTE_RUN (256) positions, after which they are split and added
   to the nibbles' sums. Even, and divides WORD_BLOCK: a pair never straddles two runs. Hot, one core
   of the Zen 4, 1337 positions: 1322 -> 1130 ns (AVX-512), 1470 -> 1320 (AVX-VNNI through AVX-512
   VL), 2380 -> 2270 (AVX2); from memory and in a step no faster (bound by the reads). */
#define BYTE_RUN 256

#if RIFFD_SIMD_BITS == 512
#define WORD_ACCS 4

/* Lane d of whole[0..1] (bytes d, d + 16) += w16[p] b[p] + w16[p + 1] b[p + 1] and of low[0..1] the same for
   the bytes' low nibbles, b = a byte xor 0x88 (both its nibbles c + 8), for a pair of positions' 64 bytes
   at `bytes` (the first alone where !both: its second's weight is 0) and their weights (w16[p] the low
   half). A pair is one read; vpermb spreads byte d of each into lane d. */
static inline __attribute__((always_inline)) void weigh_pair(vi whole[WORD_ACCS / 2], vi low[WORD_ACCS / 2],
                                                             const uint8_t *bytes, const int both, int32_t weights) {
    /* lane d's 16-bit halves: byte d of the first position (low half) and byte 32 + d of the second */
    const vi first = _mm512_set_epi8(0, 47, 0, 15, 0, 46, 0, 14, 0, 45, 0, 13, 0, 44, 0, 12, 0, 43, 0, 11, 0, 42, 0, 10,
                                     0, 41, 0, 9, 0, 40, 0, 8, 0, 39, 0, 7, 0, 38, 0, 6, 0, 37, 0, 5, 0, 36, 0, 4, 0, 35,
                                     0, 3, 0, 34, 0, 2, 0, 33, 0, 1, 0, 32, 0, 0);
    const vi second = _mm512_add_epi8(first, _mm512_set1_epi8(16)); /* bytes 16..31 of each */
    const __mmask64 low_bytes = 0x5555555555555555ull;
    const vi nibble = _mm512_set1_epi16(15), w = vi_set1(weights);
    vi x = both ? vi_load(bytes) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, bytes);
    x = vi_xor(x, vi_set1((int32_t)0x88888888u));
    const vi lo = _mm512_maskz_permutexvar_epi8(low_bytes, first, x), hi = _mm512_maskz_permutexvar_epi8(low_bytes, second, x);
    whole[0] = _mm512_dpwssd_epi32(whole[0], lo, w);
    low[0] = _mm512_dpwssd_epi32(low[0], vi_and(lo, nibble), w);
    whole[1] = _mm512_dpwssd_epi32(whole[1], hi, w);
    low[1] = _mm512_dpwssd_epi32(low[1], vi_and(hi, nibble), w);
}

/* acc[0..3] (dims d, d + 32, d + 16, d + 48: low and high nibbles of bytes d and d + 16) += a run's sums */
static inline __attribute__((always_inline)) void split_nibbles(vi acc[WORD_ACCS], const vi whole[WORD_ACCS / 2],
                                                                const vi low[WORD_ACCS / 2]) {
    for (int i = 0; i < 2; i++) {
        acc[2 * i] = _mm512_add_epi32(acc[2 * i], low[i]);
        acc[2 * i + 1] = _mm512_add_epi32(acc[2 * i + 1], _mm512_srli_epi32(_mm512_sub_epi32(whole[i], low[i]), 4));
    }
}

/* out[0..64) from weigh_pair's lanes (as floats, times back) */
static inline __attribute__((always_inline)) void words_out(const vf sums[WORD_ACCS], vf back, float *out) {
    vf_store(out, vf_mul(sums[0], back));
    vf_store(out + 16, vf_mul(sums[2], back));
    vf_store(out + 32, vf_mul(sums[1], back));
    vf_store(out + 48, vf_mul(sums[3], back));
}

/* The sum of `count` 16-bit weights. */
static int32_t word_sum(const int16_t *w, int64_t count) {
    const vi ones = _mm512_set1_epi16(1);
    vi sum = vi_zero();
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) sum = _mm512_add_epi32(sum, _mm512_madd_epi16(vi_load(w + i), ones));
    if (i < count)
        sum = _mm512_add_epi32(sum, _mm512_madd_epi16(_mm512_maskz_loadu_epi16((__mmask32)((1ull << (count - i)) - 1), w + i), ones));
    return _mm512_reduce_add_epi32(sum);
}

#else /* 256-bit: AVX-VNNI, or AVX2 without it */
#define WORD_ACCS 8

/* acc + the sum of each lane's two 16-bit products. asm: see vi_dot_u8s8 in simd.h. */
static inline __attribute__((always_inline)) vi word_dot(vi acc, vi a, vi b) {
#if defined(__AVXVNNI__)
    __asm__("%{vex%} vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__) /* RIFFD_SIMD_256 on an AVX-512 VNNI CPU */
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
#else /* exact: each product and their sum are within 2 * 15 * 32767 */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* Lane k of 128-bit half h in whole[j] (j < 4) += w16[p] b[p][d] + w16[p + 1] b[p + 1][d] for byte d =
   16h + 4j + k (b = a byte xor 0x88: both its nibbles c + 8), low[j] the same for the bytes' low
   nibbles, for a pair of positions' 64 bytes at `bytes` (the first alone where !both: its second's
   weight is 0) and their weights (w16[p] the low half). No byte permutation across 128-bit halves
   without VBMI: the two positions' 8-byte quarters are interleaved (vpunpck*qdq), then vpshufb
   spreads them within each half. */
static inline __attribute__((always_inline)) void weigh_pair(vi whole[WORD_ACCS / 2], vi low[WORD_ACCS / 2],
                                                             const uint8_t *bytes, const int both, int32_t weights) {
    /* within a half holding bytes b..b+7 of the first position, then of the second: lane k's 16-bit
       halves byte b + k of the first (low) and of the second, zero-extended (-1: zero) */
    const vi spread_low = _mm256_setr_epi8(0, -1, 8, -1, 1, -1, 9, -1, 2, -1, 10, -1, 3, -1, 11, -1,
                                           0, -1, 8, -1, 1, -1, 9, -1, 2, -1, 10, -1, 3, -1, 11, -1);
    const vi spread_high = _mm256_setr_epi8(4, -1, 12, -1, 5, -1, 13, -1, 6, -1, 14, -1, 7, -1, 15, -1,
                                            4, -1, 12, -1, 5, -1, 13, -1, 6, -1, 14, -1, 7, -1, 15, -1); /* b + 4..7 */
    const vi nibble = _mm256_set1_epi16(15), w = vi_set1(weights), offset = vi_set1((int32_t)0x88888888u);
    const vi x0 = vi_xor(vi_load(bytes), offset);
    const vi x1 = vi_xor(both ? vi_load(bytes + 32) : vi_zero(), offset);
    const vi quarters[2] = {_mm256_unpacklo_epi64(x0, x1), _mm256_unpackhi_epi64(x0, x1)}; /* bytes 0-7 | 16-23, 8-15 | 24-31 */
    for (int i = 0; i < 2; i++) {
        const vi a = _mm256_shuffle_epi8(quarters[i], spread_low), b = _mm256_shuffle_epi8(quarters[i], spread_high);
        whole[2 * i] = word_dot(whole[2 * i], a, w);
        whole[2 * i + 1] = word_dot(whole[2 * i + 1], b, w);
        low[2 * i] = word_dot(low[2 * i], vi_and(a, nibble), w);
        low[2 * i + 1] = word_dot(low[2 * i + 1], vi_and(b, nibble), w);
    }
}

/* acc[j] (j < 4: low nibbles, dims d) and acc[j + 4] (high nibbles, dims d + 32) += a run's sums */
static inline __attribute__((always_inline)) void split_nibbles(vi acc[WORD_ACCS], const vi whole[WORD_ACCS / 2],
                                                                const vi low[WORD_ACCS / 2]) {
    for (int j = 0; j < 4; j++) {
        acc[j] = _mm256_add_epi32(acc[j], low[j]);
        acc[j + 4] = _mm256_add_epi32(acc[j + 4], _mm256_srli_epi32(_mm256_sub_epi32(whole[j], low[j]), 4));
    }
}

/* out[0..64) from weigh_pair's lanes (as floats, times back): acc[j]'s halves are dims 4j.. and 16 + 4j.. */
static inline __attribute__((always_inline)) void words_out(const vf sums[WORD_ACCS], vf back, float *out) {
    for (int h = 0; h < 2; h++) /* low and high nibbles: dims 0-31, 32-63 */
        for (int i = 0; i < 2; i++) {
            const vf a = vf_mul(sums[4 * h + 2 * i], back), b = vf_mul(sums[4 * h + 2 * i + 1], back);
            vf_store(out + 32 * h + 8 * i, _mm256_permute2f128_ps(a, b, 0x20));
            vf_store(out + 32 * h + 16 + 8 * i, _mm256_permute2f128_ps(a, b, 0x31));
        }
}

/* The sum of `count` 16-bit weights. */
static int32_t word_sum(const int16_t *w, int64_t count) {
    const vi ones = _mm256_set1_epi16(1);
    vi sum = vi_zero();
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) sum = _mm256_add_epi32(sum, _mm256_madd_epi16(vi_load(w + i), ones));
    int32_t total = 0;
    for (; i < count; i++) total += w[i];
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)(void *)lanes, sum);
    for (int k = 0; k < 8; k++) total += lanes[k];
    return total;
}
#endif

static void weigh4_words(float *scores, const uint8_t *values, int64_t length, float total, float *out) {
    int16_t *w16 = (int16_t *)(void *)scores;
    const int64_t whole = length - length % VL;
    vf amax = vf_zero();
    for (int64_t p = 0; p < whole; p += VL) amax = vf_max(amax, vf_load(scores + p));
    float largest = vf_largest(amax);
    for (int64_t p = whole; p < length; p++) largest = scores[p] > largest ? scores[p] : largest;
    const float to_word = largest > 0.0f ? 32767.0f / largest : 0.0f;
    const vf factor = vf_set1(to_word);
    for (int64_t p = 0; p < whole; p += VL) /* only bytes below 2p written before: none of these floats */
        vi_store_int16(w16 + p, vf_to_int(vf_mul(vf_load(scores + p), factor)));
    for (int64_t p = whole; p < length; p++) { /* the last few, rounded as the vectors are */
        const int16_t word = (int16_t)_mm_cvtss_si32(_mm_mul_ss(_mm_set_ss(scores[p]), _mm_set_ss(to_word)));
        __builtin_memcpy(w16 + p, &word, 2);
    }
    if (length % 2) __builtin_memset(w16 + length, 0, 2); /* the last pair's missing half */
    vf sums[WORD_ACCS];
    for (int k = 0; k < WORD_ACCS; k++) sums[k] = vf_zero();
    for (int64_t start = 0; start < length; start += WORD_BLOCK) {
        const int64_t end = length - start > WORD_BLOCK ? start + WORD_BLOCK : length;
        vi acc[WORD_ACCS];
        for (int k = 0; k < WORD_ACCS; k++) acc[k] = vi_zero();
        for (int64_t run = start; run < end; run += BYTE_RUN) {
            const int64_t run_end = end - run > BYTE_RUN ? run + BYTE_RUN : end;
            vi whole[WORD_ACCS / 2], low[WORD_ACCS / 2];
            for (int k = 0; k < WORD_ACCS / 2; k++) whole[k] = low[k] = vi_zero();
            int32_t pair;
            int64_t p = run;
            for (; p + 1 < run_end; p += 2) {
                prefetch_slots_ahead(values + p * 32, 64);
                __builtin_memcpy(&pair, w16 + p, 4);
                weigh_pair(whole, low, values + p * 32, 1, pair);
            }
            if (p < run_end) { /* the last position alone: its 32 bytes, its weight beside the 0 written above */
                __builtin_memcpy(&pair, w16 + p, 4);
                weigh_pair(whole, low, values + p * 32, 0, pair);
            }
            split_nibbles(acc, whole, low);
        }
        const vi offset = vi_set1(8 * word_sum(w16 + start, end - start));
        for (int k = 0; k < WORD_ACCS; k++) sums[k] = vf_add(sums[k], vi_to_float(vi_sub(acc[k], offset)));
    }
    words_out(sums, vf_set1(largest / 32767.0f / total), out);
}
#else
#define WEIGH4_WORDS 0
#endif

/* weigh for 4-bit values: each VL bytes read feed two chunks' accumulators, two positions in flight.
   Overwrites scores where it takes weigh4_words. */
static inline __attribute__((always_inline)) void weigh4(float *scores, const uint8_t *values, int64_t length,
                                                         const int64_t hd, float total, float *out) {
#if WEIGH4_WORDS
    if (hd == 64) {
        weigh4_words(scores, values, length, total, out);
        return;
    }
#endif
    const int64_t chunks = hd / VL, bytes = hd / 2;
    vf even[MAX_CHUNKS], odd[MAX_CHUNKS];
    for (int64_t c = 0; c < chunks; c++) even[c] = odd[c] = vf_zero();
    if (chunks % 2 == 0) {
        const int64_t half = chunks / 2;
        int64_t p = 0;
        for (; p + 1 < length; p += 2) {
            prefetch_slots_ahead(values + p * bytes, 2 * bytes);
            vf w0 = vf_set1(scores[p]), w1 = vf_set1(scores[p + 1]);
            for (int64_t c = 0; c < half; c++) {
                vi b0 = vi_load_i8((const int8_t *)values + p * bytes + c * VL);
                vi b1 = vi_load_i8((const int8_t *)values + (p + 1) * bytes + c * VL);
                even[c] = vf_fmadd(w0, low_nibbles(b0), even[c]);
                even[c + half] = vf_fmadd(w0, high_nibbles(b0), even[c + half]);
                odd[c] = vf_fmadd(w1, low_nibbles(b1), odd[c]);
                odd[c + half] = vf_fmadd(w1, high_nibbles(b1), odd[c + half]);
            }
        }
        if (p < length) {
            vf w = vf_set1(scores[p]);
            for (int64_t c = 0; c < half; c++) {
                vi b = vi_load_i8((const int8_t *)values + p * bytes + c * VL);
                even[c] = vf_fmadd(w, low_nibbles(b), even[c]);
                even[c + half] = vf_fmadd(w, high_nibbles(b), even[c + half]);
            }
        }
    } else {
        float unpacked[256];
        for (int64_t p = 0; p < length; p++) {
            unpack4(values + p * bytes, hd, unpacked);
            vf w = vf_set1(scores[p]);
            for (int64_t c = 0; c < chunks; c++) even[c] = vf_fmadd(w, vf_load(unpacked + c * VL), even[c]);
        }
    }
    vf inverse = vf_set1(NIBBLE_INVERSE / total);
    for (int64_t c = 0; c < chunks; c++) vf_store(out + c * VL, vf_mul(vf_add(even[c], odd[c]), inverse));
}

/* 4-bit slots (`int4`) come with float16 scales, int8 ones with float32. */
static inline __attribute__((always_inline)) void attend(const float *q, const void *keys, const void *key_scales,
                                                         const void *values, const void *value_scales, const int int8,
                                                         const int int4, const float *mask, int64_t length,
                                                         const int64_t hd, float *scores, float *out) {
    float scale = 1.0f / sqrtf((float)hd);
    if (int8 && ATTENTION_PRIME_BYTES > 0) {
        prime_stream(keys, length * hd);
        prime_stream(key_scales, 4 * length);
        prime_stream(value_scales, 4 * length);
        prime_stream(values, length * hd);
    }
    float largest = int4 && integer_qk(hd)
                        ? score4_int(q, (const uint8_t *)keys, (const uint16_t *)key_scales, scale, length, hd, scores)
                        : score(q, keys, int8, int8, int4, key_scales, int4, int4 ? scale * NIBBLE_INVERSE : scale,
                                mask, length, hd, scores);
    float total = weights(scores, length, largest, value_scales, int4);
    if (int4)
        weigh4(scores, values, length, hd, total, out);
    else
        weigh(scores, values, int8, int8, length, hd, total, out);
}

/* The +kv4 layout: positions below head8 in int8 slots (hd bytes each), the rest 4-bit right after
   them (hd / 2 bytes each); key_scales and value_scales as kv_cache.py lays them out: the head's
   float32 scales (two float16 entries each), then the 4-bit positions' float16 ones. Two score
   passes into one scores buffer, one softmax, two weighted sums added. Up to head8 positions this is
   attend()'s int8 path exactly: the same bits as riffd_attend_int8. */
static inline __attribute__((always_inline)) void attend_kv4(const float *q, const uint8_t *keys, const uint16_t *key_scales,
                                                             const uint8_t *values, const uint16_t *value_scales,
                                                             int64_t length, int64_t head8, const int64_t hd,
                                                             float *scores, float *out) {
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t early = length < head8 ? length : head8, late = length - early;
    const int8_t *keys8 = (const int8_t *)keys, *values8 = (const int8_t *)values;
    const uint16_t *late_keys = key_scales + 2 * head8, *late_values = value_scales + 2 * head8;
    if (ATTENTION_PRIME_BYTES > 0) { /* the int8 head's slots and scales, then the 4-bit ones right after */
        const int64_t slot_bytes = early * hd + late * (hd / 2);
        prime_stream(keys, slot_bytes);
        prime_stream(key_scales, 4 * early);
        prime_stream(late_keys, 2 * late);
        prime_stream(value_scales, 4 * early);
        prime_stream(late_values, 2 * late);
        prime_stream(values, slot_bytes);
    }
    float largest = score(q, keys8, 1, 0, 0, key_scales, 0, scale, NULL, early, hd, scores);
    if (late > 0) {
        float high = integer_qk(hd)
                         ? score4_int(q, keys + head8 * hd, late_keys, scale, late, hd, scores + head8)
                         : score(q, keys + head8 * hd, 0, 0, 1, late_keys, 1, scale * NIBBLE_INVERSE, NULL, late, hd,
                                 scores + head8);
        largest = high > largest ? high : largest;
    }
    /* the two regions' weights (float32 scales, then float16), one total */
    float total = weights(scores, early, largest, value_scales, 0);
    if (late > 0) total += weights(scores + head8, late, largest, late_values, 1);
    if (early > 0) weigh(scores, values8, 1, 0, early, hd, total, out);
    if (late > 0) {
        float tail[256];
        weigh4(scores + head8, values + head8 * hd, late, hd, total, early > 0 ? tail : out);
        if (early > 0)
            for (int64_t c = 0; c < hd; c += VL) vf_store(out + c, vf_add(vf_load(out + c), vf_load(tail + c)));
    }
}

/* Head sizes compiled as constants (MusicGen's is 64; the debug presets' 16); others take the
   general path, with the same arithmetic. */
#define BY_HEAD_DIM(call_with)                                                                                     \
    switch (head_dim) {                                                                                            \
    case 16: call_with(16); break;                                                                                 \
    case 32: call_with(32); break;                                                                                 \
    case 64: call_with(64); break;                                                                                 \
    case 128: call_with(128); break;                                                                               \
    default: call_with(head_dim); break;                                                                           \
    }

void riffd_attend_int8(const float *q, const int8_t *keys, const float *key_scales, const int8_t *values,
                       const float *value_scales, int64_t length, int64_t head_dim, float *scores, float *out) {
#define INT8_ATTEND(HD) attend(q, keys, key_scales, values, value_scales, 1, 0, NULL, length, HD, scores, out)
    BY_HEAD_DIM(INT8_ATTEND)
}

void riffd_attend_int4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                       const uint16_t *value_scales, int64_t length, int64_t head_dim, float *scores, float *out) {
#define INT4_ATTEND(HD) attend(q, keys, key_scales, values, value_scales, 0, 1, NULL, length, HD, scores, out)
    BY_HEAD_DIM(INT4_ATTEND)
}

/* 1 where riffd_attend_int4 and riffd_attend_kv4's 4-bit slots score through the integer product
   (q rounded to bytes) for this head size on this build, 0 where they widen the codes to floats. */
int riffd_attend_int4_integer(int64_t head_dim) { return head_dim % VL == 0 && head_dim <= 256 && integer_qk(head_dim); }

/* 1 where riffd_attend_int4 and riffd_attend_kv4's 4-bit slots weigh their values with the weights
   rounded to 16 bits (weigh4_words) for this head size on this build, 0 where in float32. */
int riffd_attend_int4_words(int64_t head_dim) { return WEIGH4_WORDS && head_dim == 64; }

void riffd_attend_kv4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                      const uint16_t *value_scales, int64_t length, int64_t int8_positions, int64_t head_dim,
                      float *scores, float *out) {
#define KV4_ATTEND(HD) attend_kv4(q, keys, key_scales, values, value_scales, length, int8_positions, HD, scores, out)
    BY_HEAD_DIM(KV4_ATTEND)
}

void riffd_attend_f32(const float *q, const float *keys, const float *values, const float *mask, int64_t length,
                      int64_t head_dim, float *scores, float *out) {
#define F32_ATTEND(HD) attend(q, keys, NULL, values, NULL, 0, 0, mask, length, HD, scores, out)
    BY_HEAD_DIM(F32_ATTEND)
}
#else
/* Built for a CPU without the kernels: never called (riffd_int8_supported() is 0); here so that
   programs linking every entry point (tests/native/kernel_harness.c) link. */
int64_t riffd_attention_scratch_floats(int64_t length, int64_t head_dim) { (void)head_dim; return length; }
void riffd_store_int4(uint8_t *to, uint16_t *scale, const float *from, int64_t count) {
    (void)to; (void)scale; (void)from; (void)count;
}
int riffd_store_vectors(void *slots, void *scales, const float *from, const int64_t *positions, int64_t groups,
                        int64_t count, int64_t head_dim, int64_t slot_rows, int64_t max_positions, int64_t bits,
                        int64_t int8_positions) {
    (void)slots; (void)scales; (void)from; (void)positions; (void)groups; (void)count; (void)head_dim;
    (void)slot_rows; (void)max_positions; (void)bits; (void)int8_positions;
    return 0;
}
void riffd_attend_kv4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                      const uint16_t *value_scales, int64_t length, int64_t int8_positions, int64_t head_dim,
                      float *scores, float *out) {
    (void)q; (void)keys; (void)key_scales; (void)values; (void)value_scales; (void)length; (void)int8_positions;
    (void)head_dim; (void)scores; (void)out;
}
int riffd_attend_int4_integer(int64_t head_dim) { (void)head_dim; return 0; }
int riffd_attend_int4_words(int64_t head_dim) { (void)head_dim; return 0; }
void riffd_attend_int4(const float *q, const uint8_t *keys, const uint16_t *key_scales, const uint8_t *values,
                       const uint16_t *value_scales, int64_t length, int64_t head_dim, float *scores, float *out) {
    (void)q; (void)keys; (void)key_scales; (void)values; (void)value_scales; (void)length; (void)head_dim;
    (void)scores; (void)out;
}
#endif
