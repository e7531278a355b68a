/* The vector operations riffd's kernels use, one set per instruction set. The kernels are written
   once against these; `-march=native` picks one at build time:

   - AVX-512 with VNNI (16 floats a vector: Xeons since Cascade Lake, AMD Zen 4 and later);
   - AVX2 with AVX-VNNI (8 floats: Intel's 12th-generation and later desktops and laptops, Zen 5);
   - AVX2 without VNNI (8 floats: AMD Zen 2/3, Intel Haswell to 11th generation), whose int8 products
     widen the weights to 16 bits and use vpmaddwd (see the int8 dot product below);
   - 64-bit ARM with the dot-product instructions, ARMv8.2-A+dotprod (4 floats: Apple M1 and later,
     AWS Graviton 2 and later, Raspberry Pi 5), whose sdot multiplies signed bytes by signed bytes;

   a CPU with none of these gets stubs (riffd_int8_supported() says 0, Python uses PyTorch instead).
   RIFFD_ISA names the branch built. For the tests, two switches build a branch on a CPU that would
   pick another: RIFFD_SIMD_256 takes the 256-bit branch where AVX-512 is there (its VNNI products
   then use AVX-512 VL's encoding of the same instruction), RIFFD_EMULATE_VNNI emulates VNNI's
   product exactly with AVX2, so the AVX-VNNI branch's code runs on any AVX2 CPU.

   Every branch also defines the int8 dot products the matrix kernels use: int8 weights times
   activations carried at 16 bits (dot_*) or at 8 bits (dot8_*, the int8a8 mode), summed exactly
   in integers. */

#ifndef RIFFD_SIMD_H
#define RIFFD_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* Built for an AMD Zen core (-march=native there names one): where the kernels' tuning measured
   otherwise on Zen than on Intel (int8_matvec.c's prefetch distances, decoder_step.c's fused regions). */
#if defined(__znver1__) || defined(__znver2__) || defined(__znver3__) || defined(__znver4__) || defined(__znver5__)
#define RIFFD_ZEN 1
#else
#define RIFFD_ZEN 0
#endif

/* Asks for the lines of [start, start + bytes) to come into the cache (locality 2: x86 prefetcht1, into L2),
   for data a kernel reads soon but not next. */
static inline __attribute__((always_inline)) void riffd_prefetch_bytes(const void *start, size_t bytes) {
    const char *line = (const char *)((uintptr_t)start & ~(uintptr_t)63), *end = (const char *)start + bytes;
    for (; line < end; line += 64) __builtin_prefetch(line, 0, 2);
}

/* ---------------------------------------------------------------- x86: AVX-512 with VNNI */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && !defined(RIFFD_SIMD_256)
#include <immintrin.h>
#define RIFFD_SIMD_BITS 512
#define RIFFD_ISA "avx512vnni"
#define RIFFD_VNNI 1
#define VL 16 /* floats (or int32) per vector */
typedef __m512 vf;
typedef __m512i vi;

static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_fnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
static inline vf vf_abs(vf a) { return _mm512_abs_ps(a); }
static inline vf vf_round(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline float vf_sum(vf a) { return _mm512_reduce_add_ps(a); }
static inline float vf_largest(vf a) { return _mm512_reduce_max_ps(a); }
/* a where a >= limit, else 0 */
static inline vf vf_zero_below(vf a, vf test, float limit) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(test, _mm512_set1_ps(limit), _CMP_GE_OQ), a);
}
static inline vf vf_as_float(vi a) { return _mm512_castsi512_ps(a); }
static inline vi vf_as_int(vf a) { return _mm512_castps_si512(a); }

static inline vi vi_zero(void) { return _mm512_setzero_si512(); }
static inline vi vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
static inline vi vi_load(const void *p) { return _mm512_loadu_si512(p); }
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
static inline vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
static inline vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
static inline vi vi_min(vi a, vi b) { return _mm512_min_epi32(a, b); }
static inline vi vi_max(vi a, vi b) { return _mm512_max_epi32(a, b); }
static inline vi vi_shift_right(vi a, int bits) { return _mm512_srai_epi32(a, bits); }
static inline vi vi_shift_left(vi a, int bits) { return _mm512_slli_epi32(a, bits); }
/* acc + sum of four u8 x s8 products per int32 lane. Written as asm: GCC 12 copies the accumulator
   around the intrinsic's tied operand (4 register moves per 8 products in the kernel's loop). */
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}
static inline vf vi_to_float(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vi vf_to_int(vf a) { return _mm512_cvtps_epi32(a); } /* nearest, ties to even */
/* VL int8 values widened to float */
static inline vf vf_load_i8(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
/* VL int8 values widened to int32 lanes */
static inline vi vi_load_i8(const int8_t *p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)); }
/* the low byte of each int32 lane, VL bytes */
static inline void vi_store_bytes(void *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(a)); }
/* the low 16 bits of each int32 lane, VL int16 values */
static inline void vi_store_int16(void *p, vi a) { _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(a)); }
/* VL bfloat16 values to float (a bfloat16 is a float's top half) */
static inline vf vf_load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
/* VL float16 values (IEEE binary16 bits) to float, exactly */
static inline vf vf_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
/* lane i = the sum of v[i]'s lanes: sums within 128-bit blocks pairwise (two levels), then across blocks */
static inline vf vf_reduce_vl(const vf v[VL]) {
    vf pairs[8], quads[4];
    for (int i = 0; i < 8; i++)
        pairs[i] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0x88), _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0xdd));
    for (int i = 0; i < 4; i++) /* block k, lane j: block k's sum of v[4i + j] */
        quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x88),
                                 _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xdd));
    vf low = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88), _mm512_shuffle_f32x4(quads[0], quads[1], 0xdd));
    vf high = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x88), _mm512_shuffle_f32x4(quads[2], quads[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(low, high, 0x88), _mm512_shuffle_f32x4(low, high, 0xdd));
}

/* ---------------------------------------------------------------- x86: AVX2 (with or without VNNI) */
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RIFFD_SIMD_BITS 256
#define VL 8
typedef __m256 vf;
typedef __m256i vi;

static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_fnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline vf vf_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline float vf_sum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline float vf_largest(vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
static inline vf vf_zero_below(vf a, vf test, float limit) {
    return _mm256_and_ps(a, _mm256_cmp_ps(test, _mm256_set1_ps(limit), _CMP_GE_OQ));
}
static inline vf vf_as_float(vi a) { return _mm256_castsi256_ps(a); }
static inline vi vf_as_int(vf a) { return _mm256_castps_si256(a); }

static inline vi vi_zero(void) { return _mm256_setzero_si256(); }
static inline vi vi_set1(int32_t x) { return _mm256_set1_epi32(x); }
static inline vi vi_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
static inline vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
static inline vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
static inline vi vi_min(vi a, vi b) { return _mm256_min_epi32(a, b); }
static inline vi vi_max(vi a, vi b) { return _mm256_max_epi32(a, b); }
static inline vi vi_shift_right(vi a, int bits) { return _mm256_srai_epi32(a, bits); }
static inline vi vi_shift_left(vi a, int bits) { return _mm256_slli_epi32(a, bits); }
static inline vf vi_to_float(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi vf_to_int(vf a) { return _mm256_cvtps_epi32(a); }
static inline vf vf_load_i8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
static inline vi vi_load_i8(const int8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline void vi_store_bytes(void *p, vi a) {
    /* the low byte of each lane to the bottom of each 128-bit half, then the halves side by side */
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(a, low_bytes), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    _mm_storel_epi64((__m128i *)p, _mm256_castsi256_si128(packed));
}
/* lane i = the sum of v[i]'s lanes: pairwise within 128-bit halves (two levels), then the halves */
static inline vf vf_reduce_vl(const vf v[VL]) {
    vf pairs[4], quads[2];
    for (int i = 0; i < 4; i++)
        pairs[i] = _mm256_add_ps(_mm256_shuffle_ps(v[2 * i], v[2 * i + 1], 0x88), _mm256_shuffle_ps(v[2 * i], v[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++) /* half k, lane j: half k's sum of v[4i + j] */
        quads[i] = _mm256_add_ps(_mm256_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x88),
                                 _mm256_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xdd));
    return _mm256_add_ps(_mm256_permute2f128_ps(quads[0], quads[1], 0x20), _mm256_permute2f128_ps(quads[0], quads[1], 0x31));
}
/* the low 16 bits of each lane (values within int16), VL int16 values */
static inline void vi_store_int16(void *p, vi a) {
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, a), 0x08); /* 64-bit parts 0 and 2 */
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}
static inline vf vf_load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
#if defined(__F16C__) /* every AVX2 CPU has it; -march=native turns it on */
static inline vf vf_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#else
static inline float f16_to_float(uint16_t bits);
static inline vf vf_load_f16(const uint16_t *p) {
    float lanes[VL];
    for (int i = 0; i < VL; i++) lanes[i] = f16_to_float(p[i]);
    return _mm256_loadu_ps(lanes);
}
#endif

#if defined(__AVXVNNI__)
#define RIFFD_ISA "avxvnni"
#define RIFFD_VNNI 1
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) { /* asm: see the AVX-512 branch; {vex}: not AVX-512's encoding */
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u8), "x"(s8));
    return acc;
}
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__) /* RIFFD_SIMD_256 on an AVX-512 VNNI CPU */
#define RIFFD_ISA "avxvnni(avx512vl)"
#define RIFFD_VNNI 1
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) { /* asm: see the AVX-512 branch */
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}
#elif defined(RIFFD_EMULATE_VNNI)
#define RIFFD_ISA "avxvnni(emulated)"
#define RIFFD_VNNI 1
/* vpdpbusd's exact result from AVX2: bytes widened to 16 bits, pairs multiplied and summed into 32
   bits (no saturation: 255 * 127 * 2 fits), then each lane's two pairs added. Tests only. */
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) {
    __m256i u_even = _mm256_and_si256(u8, _mm256_set1_epi16(0x00ff)), u_odd = _mm256_srli_epi16(u8, 8);
    __m256i s_even = _mm256_srai_epi16(_mm256_slli_epi16(s8, 8), 8), s_odd = _mm256_srai_epi16(s8, 8);
    __m256i products = _mm256_add_epi32(_mm256_madd_epi16(u_even, s_even), _mm256_madd_epi16(u_odd, s_odd));
    return _mm256_add_epi32(acc, products);
}
#else
#define RIFFD_ISA "avx2"
#define RIFFD_AVX2_MADD 1
#endif

/* ---------------------------------------------------------------- ARM: NEON with dot products */
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#define RIFFD_SIMD_BITS 128
#define RIFFD_ISA "neon-dotprod"
#define RIFFD_NEON_DOT 1
#define VL 4
typedef float32x4_t vf;
typedef int32x4_t vi;

static inline vf vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, vf v) { vst1q_f32(p, v); }
static inline vf vf_set1(float x) { return vdupq_n_f32(x); }
static inline vf vf_zero(void) { return vdupq_n_f32(0.0f); }
static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf vf_fnmadd(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
static inline vf vf_abs(vf a) { return vabsq_f32(a); }
static inline vf vf_round(vf a) { return vrndnq_f32(a); } /* nearest, ties to even */
static inline float vf_sum(vf a) { return vaddvq_f32(a); }
static inline float vf_largest(vf a) { return vmaxvq_f32(a); }
static inline vf vf_zero_below(vf a, vf test, float limit) {
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(a), vcgeq_f32(test, vdupq_n_f32(limit))));
}
static inline vf vf_as_float(vi a) { return vreinterpretq_f32_s32(a); }
static inline vi vf_as_int(vf a) { return vreinterpretq_s32_f32(a); }

static inline vi vi_zero(void) { return vdupq_n_s32(0); }
static inline vi vi_set1(int32_t x) { return vdupq_n_s32(x); }
static inline vi vi_load(const void *p) { return vld1q_s32((const int32_t *)p); }
static inline vi vi_add(vi a, vi b) { return vaddq_s32(a, b); }
static inline vi vi_sub(vi a, vi b) { return vsubq_s32(a, b); }
static inline vi vi_and(vi a, vi b) { return vandq_s32(a, b); }
static inline vi vi_or(vi a, vi b) { return vorrq_s32(a, b); }
static inline vi vi_min(vi a, vi b) { return vminq_s32(a, b); }
static inline vi vi_max(vi a, vi b) { return vmaxq_s32(a, b); }
/* Shifts by a register (vshlq: a negative count shifts right, arithmetically for signed lanes), so
   the count need not be a compile-time constant as vshrq_n's must be. */
static inline vi vi_shift_right(vi a, int bits) { return vshlq_s32(a, vdupq_n_s32(-bits)); }
static inline vi vi_shift_left(vi a, int bits) { return vshlq_s32(a, vdupq_n_s32(bits)); }
/* acc + sum of four s8 x s8 products per int32 lane (sdot) */
static inline vi vi_dot_s8s8(vi acc, vi a, vi b) { return vdotq_s32(acc, vreinterpretq_s8_s32(a), vreinterpretq_s8_s32(b)); }
static inline vf vi_to_float(vi a) { return vcvtq_f32_s32(a); }
static inline vi vf_to_int(vf a) { return vcvtnq_s32_f32(a); } /* nearest, ties to even */
static inline vf vf_load_i8(const int8_t *p) {
    int32_t four;
    __builtin_memcpy(&four, p, 4);
    int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)));
}
static inline vi vi_load_i8(const int8_t *p) {
    int32_t four;
    __builtin_memcpy(&four, p, 4);
    return vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)))));
}
static inline void vi_store_bytes(void *p, vi a) {
    int8x8_t bytes = vmovn_s16(vcombine_s16(vmovn_s32(a), vdup_n_s16(0)));
    int32_t four = vget_lane_s32(vreinterpret_s32_s8(bytes), 0);
    __builtin_memcpy(p, &four, 4);
}
static inline void vi_store_int16(void *p, vi a) { vst1_s16((int16_t *)p, vmovn_s32(a)); }
static inline vf vf_load_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline vf vf_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
/* lane i = the sum of v[i]'s lanes: two levels of pairwise adds */
static inline vf vf_reduce_vl(const vf v[VL]) { return vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3])); }
#endif

/* ---------------------------------------------------------------- float16 scalars

   The +kv4 cache's scales are IEEE float16 (kv_cache.py): f16_from_float rounds to nearest, ties to
   even, as torch's .to(torch.float16) does (the Python reference's bits); f16_to_float is exact. */
#if defined(RIFFD_SIMD_BITS)
#if defined(__F16C__)
static inline uint16_t f16_from_float(float x) { return (uint16_t)_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT); }
static inline float f16_to_float(uint16_t bits) { return _cvtsh_ss(bits); }
#else /* ARM, or x86 built without F16C: the compiler's binary16 type, IEEE conversions */
static inline uint16_t f16_from_float(float x) {
    _Float16 h = (_Float16)x;
    uint16_t bits;
    __builtin_memcpy(&bits, &h, 2);
    return bits;
}
static inline float f16_to_float(uint16_t bits) {
    _Float16 h;
    __builtin_memcpy(&h, &bits, 2);
    return (float)h;
}
#endif
#endif

/* ---------------------------------------------------------------- the int8 dot product

   dot_*: VL weight rows times one activation row, DOT_GROUP inputs a step, summed exactly.
   Activations are 16-bit integers q (|q| <= 32767, a scale per row, see int8_matvec.c), stored
   per row by act_store in the layout the branch's products want (2 bytes per input in all).
     dot_act  one activation row's DOT_GROUP inputs, ready for dot_step
     dot_w    VL weight rows x DOT_GROUP inputs (the packed block's layout)
     dot_acc  int32 sums since the last flush; exact for DOT_FLUSH_GROUPS steps
     dot_sum  exact sums of the flushed accumulators
   dot_finish gives the VL rows' sums as floats (one rounding), given each row's sum of codes. */
#define DOT_GROUP 4

#if defined(RIFFD_VNNI)
/* q = 256 * (high - 128) + low with both bytes unsigned: vpdpbusd multiplies each by four weights.
   Per int32 lane and step: at most 4 * 255 * 128, so 2^31 holds 16384 inputs (int8_matvec's MAX_K)
   and accumulators never need a flush before the end. */
#define DOT_FLUSH_GROUPS (1 << 30)
/* Sums in registers: 2 vectors x (high, low) per activation row; AVX-512 has 32 registers. */
#if RIFFD_SIMD_BITS == 512
#define DOT_PASS_VECS 2
#define DOT_ROW_TILE 4
#else
#define DOT_PASS_VECS 2
#define DOT_ROW_TILE 2
#endif
typedef struct { vi high, low; } dot_act;
typedef vi dot_w;
typedef struct { vi high, low; } dot_acc;
typedef dot_acc dot_sum;

static inline void act_store(uint8_t *row, int64_t k, int64_t j, vi q) {
    vi_store_bytes(row + j, vi_add(vi_shift_right(q, 8), vi_set1(128)));
    vi_store_bytes(row + k + j, vi_and(q, vi_set1(255)));
}
static inline dot_act dot_load_act(const uint8_t *row, int64_t k, int64_t j) {
    int32_t high, low;
    __builtin_memcpy(&high, row + j, 4);
    __builtin_memcpy(&low, row + k + j, 4);
    return (dot_act){vi_set1(high), vi_set1(low)};
}
static inline dot_w dot_load_w(const int8_t *p) { return vi_load(p); }
static inline dot_acc dot_acc_zero(void) { return (dot_acc){vi_zero(), vi_zero()}; }
static inline dot_acc dot_step(dot_acc acc, dot_act x, dot_w w) {
    return (dot_acc){vi_dot_u8s8(acc.high, x.high, w), vi_dot_u8s8(acc.low, x.low, w)};
}
static inline dot_sum dot_sum_zero(void) { return dot_acc_zero(); }
static inline dot_sum dot_flush(dot_sum sum, dot_acc acc) {
    return (dot_sum){vi_add(sum.high, acc.high), vi_add(sum.low, acc.low)};
}
static inline vf dot_finish(dot_sum sum, const int32_t *row_sums) {
    /* sum((high - 128) * w) = high's sum - 128 * sum(w); both fit int32 for MAX_K inputs */
    vf high = vi_to_float(vi_sub(sum.high, vi_shift_left(vi_load(row_sums), 7)));
    return vf_fmadd(high, vf_set1(256.0f), vi_to_float(sum.low));
}

#elif defined(RIFFD_AVX2_MADD)
/* Without VNNI, AVX2's byte product (vpmaddubsw) saturates at 16 bits, which is what costs PyTorch's
   int8 accuracy on these CPUs. Here the weights are widened to 16 bits once per load and multiplied
   by q with vpmaddwd, pairs summed into int32: exact. A step adds at most 2 * 128 * 32767 to a lane,
   so after 256 steps (1024 inputs) the int32 sums are moved into float64, exact far beyond any k.
   A 16-byte weight load is 4 rows x 4 inputs, widened; a lane holds one row's pair of inputs, so a
   vector of lanes covers 4 rows, and dot_finish adds each row's two lanes. */
#define DOT_FLUSH_GROUPS 256
#define DOT_PASS_VECS 1
#define DOT_ROW_TILE 4
typedef vi dot_act;                          /* q[j..j+3] as int16, repeated 4 times */
typedef struct { vi rows03, rows47; } dot_w; /* int16: rows 0-3 and 4-7, 4 inputs each */
typedef struct { vi rows03, rows47; } dot_acc;
typedef struct { __m256d lanes[4]; } dot_sum; /* rows 0,0,1,1 / 2,2,3,3 / 4,4,5,5 / 6,6,7,7 */

static inline void act_store(uint8_t *row, int64_t k, int64_t j, vi q) {
    (void)k;
    vi_store_int16(row + 2 * j, q);
}
static inline dot_act dot_load_act(const uint8_t *row, int64_t k, int64_t j) {
    (void)k;
    int64_t four;
    __builtin_memcpy(&four, row + 2 * j, 8);
    return _mm256_set1_epi64x(four);
}
static inline dot_w dot_load_w(const int8_t *p) {
    return (dot_w){_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)),
                   _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)))};
}
static inline dot_acc dot_acc_zero(void) { return (dot_acc){vi_zero(), vi_zero()}; }
static inline dot_acc dot_step(dot_acc acc, dot_act x, dot_w w) {
    return (dot_acc){_mm256_add_epi32(acc.rows03, _mm256_madd_epi16(w.rows03, x)),
                     _mm256_add_epi32(acc.rows47, _mm256_madd_epi16(w.rows47, x))};
}
static inline dot_sum dot_sum_zero(void) {
    return (dot_sum){{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()}};
}
static inline dot_sum dot_flush(dot_sum sum, dot_acc acc) {
    sum.lanes[0] = _mm256_add_pd(sum.lanes[0], _mm256_cvtepi32_pd(_mm256_castsi256_si128(acc.rows03)));
    sum.lanes[1] = _mm256_add_pd(sum.lanes[1], _mm256_cvtepi32_pd(_mm256_extracti128_si256(acc.rows03, 1)));
    sum.lanes[2] = _mm256_add_pd(sum.lanes[2], _mm256_cvtepi32_pd(_mm256_castsi256_si128(acc.rows47)));
    sum.lanes[3] = _mm256_add_pd(sum.lanes[3], _mm256_cvtepi32_pd(_mm256_extracti128_si256(acc.rows47, 1)));
    return sum;
}
static inline vf dot_finish(dot_sum sum, const int32_t *row_sums) {
    (void)row_sums;
    /* hadd: [r0, r2, r1, r3]; the permute puts the rows in order */
    __m256d low = _mm256_permute4x64_pd(_mm256_hadd_pd(sum.lanes[0], sum.lanes[1]), 0xd8);
    __m256d high = _mm256_permute4x64_pd(_mm256_hadd_pd(sum.lanes[2], sum.lanes[3]), 0xd8);
    return _mm256_set_m128(_mm256_cvtpd_ps(high), _mm256_cvtpd_ps(low));
}

#elif defined(RIFFD_NEON_DOT)
/* sdot multiplies signed bytes, so q = 256 * high + (low + 128) with high = q >> 8 and
   low = (q & 255) - 128, both in [-128, 127]: exact, as VNNI's split is. Per int32 lane and step
   at most 4 * 128 * 127, so 2^31 holds MAX_K inputs and nothing is flushed before the end.
   Sums in registers (32 NEON registers): 4 vectors (16 output rows) x (high, low) x 2 activation
   rows is 16, beside 4 weight vectors and 4 activation broadcasts. (Chosen by register count:
   ARM speed cannot be measured on the machines that built this.) */
#define DOT_FLUSH_GROUPS (1 << 30)
#define DOT_PASS_VECS 4
#define DOT_ROW_TILE 2
typedef struct { vi high, low; } dot_act;
typedef vi dot_w;
typedef struct { vi high, low; } dot_acc;
typedef dot_acc dot_sum;

static inline void act_store(uint8_t *row, int64_t k, int64_t j, vi q) {
    vi_store_bytes(row + j, vi_shift_right(q, 8));
    vi_store_bytes(row + k + j, vi_sub(vi_and(q, vi_set1(255)), vi_set1(128)));
}
static inline dot_act dot_load_act(const uint8_t *row, int64_t k, int64_t j) {
    int32_t high, low;
    __builtin_memcpy(&high, row + j, 4);
    __builtin_memcpy(&low, row + k + j, 4);
    return (dot_act){vi_set1(high), vi_set1(low)};
}
static inline dot_w dot_load_w(const int8_t *p) { return vi_load(p); }
static inline dot_acc dot_acc_zero(void) { return (dot_acc){vi_zero(), vi_zero()}; }
static inline dot_acc dot_step(dot_acc acc, dot_act x, dot_w w) {
    return (dot_acc){vi_dot_s8s8(acc.high, x.high, w), vi_dot_s8s8(acc.low, x.low, w)};
}
static inline dot_sum dot_sum_zero(void) { return dot_acc_zero(); }
static inline dot_sum dot_flush(dot_sum sum, dot_acc acc) {
    return (dot_sum){vi_add(sum.high, acc.high), vi_add(sum.low, acc.low)};
}
static inline vf dot_finish(dot_sum sum, const int32_t *row_sums) {
    /* sum((low + 128) * w) = low's sum + 128 * sum(w); fits int32 for MAX_K inputs */
    vf low = vi_to_float(vi_add(sum.low, vi_shift_left(vi_load(row_sums), 7)));
    return vf_fmadd(vi_to_float(sum.high), vf_set1(256.0f), low);
}
#endif

/* ---------------------------------------------------------------- the 8-bit-activation dot product

   dot8_*: the same weight blocks as dot_* (VL rows x DOT_GROUP inputs a vector) times one activation
   row of signed bytes q in [-127, 127] (a scale per row: the int8a8 mode), one product instruction
   per DOT_GROUP weights and row where the CPU has one, summed exactly in int32 on every branch:
   |sum| <= 128 * 127 * MAX_K < 2^31, offsets included, so nothing is flushed and every branch
   gives the same integers (and so, with the same float steps after them, the same bits).
     act8_store    one quantised row's VL inputs, in the branch's layout (1 byte per input)
     dot8_load_act one row's DOT_GROUP inputs, broadcast to every lane
     dot8_step     acc + the VL rows' products with those inputs
     dot8_finish   the exact int32 sums of the rows, given each weight row's sum of codes */
#if defined(RIFFD_VNNI)
/* vpdpbusd multiplies unsigned bytes by signed ones: the activations are stored as q + 128 (1..255)
   and 128 * (the weight row's sum) comes off at the end. */
#define DOT8_ROW_TILE (RIFFD_SIMD_BITS == 512 ? 8 : 4) /* sums in registers: rows x BLOCK_ROWS / VL */
typedef vi dot8_w;
static inline void act8_store(uint8_t *row, int64_t j, vi q) { vi_store_bytes(row + j, vi_add(q, vi_set1(128))); }
static inline dot8_w dot8_load_w(const int8_t *p) { return vi_load(p); }
static inline vi dot8_step(vi acc, vi x, dot8_w w) { return vi_dot_u8s8(acc, x, w); }
static inline vi dot8_finish(vi acc, const int32_t *row_sums) { return vi_sub(acc, vi_shift_left(vi_load(row_sums), 7)); }

#elif defined(RIFFD_AVX2_MADD)
/* vpmaddubsw multiplies unsigned bytes by signed ones and adds pairs into int16 with saturation.
   With |w| (at most 128) as the unsigned operand and x carrying w's sign (vpsignb: x, -x or 0),
   a pair sums to at most 2 * 128 * 127 = 32512 < 32767: never saturates. vpmaddwd by ones then
   adds the pairs into int32. */
#define DOT8_ROW_TILE 4
typedef struct { vi magnitude, sign; } dot8_w;
static inline void act8_store(uint8_t *row, int64_t j, vi q) { vi_store_bytes(row + j, q); }
static inline dot8_w dot8_load_w(const int8_t *p) {
    vi w = vi_load(p);
    return (dot8_w){_mm256_abs_epi8(w), w};
}
static inline vi dot8_step(vi acc, vi x, dot8_w w) {
    __m256i pairs = _mm256_maddubs_epi16(w.magnitude, _mm256_sign_epi8(x, w.sign));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
static inline vi dot8_finish(vi acc, const int32_t *row_sums) { (void)row_sums; return acc; }

#elif defined(RIFFD_NEON_DOT)
/* sdot multiplies signed bytes by signed bytes: q as it is. */
#define DOT8_ROW_TILE 4
typedef vi dot8_w;
static inline void act8_store(uint8_t *row, int64_t j, vi q) { vi_store_bytes(row + j, q); }
static inline dot8_w dot8_load_w(const int8_t *p) { return vi_load(p); }
static inline vi dot8_step(vi acc, vi x, dot8_w w) { return vi_dot_s8s8(acc, x, w); }
static inline vi dot8_finish(vi acc, const int32_t *row_sums) { (void)row_sums; return acc; }
#endif

#if defined(RIFFD_VNNI) || defined(RIFFD_AVX2_MADD) || defined(RIFFD_NEON_DOT)
static inline vi dot8_load_act(const uint8_t *row, int64_t j) {
    int32_t four;
    __builtin_memcpy(&four, row + j, 4);
    return vi_set1(four);
}
#endif

#if defined(RIFFD_VNNI)
/* acc + sum of four u8 x s8 products per int32 lane, where the first operand's bytes are at most
   127 (int4 codes, say): the contract every branch can keep exactly */
static inline vi vi_dot_u7s8(vi acc, vi u7, vi s8) { return vi_dot_u8s8(acc, u7, s8); }
#elif defined(RIFFD_AVX2_MADD)
/* maddubs sums two u8 x s8 products into 16 bits with saturation: 2 * 127 * 128 < 32767, so for
   first operands up to 127 it never saturates; madd by ones then sums the pairs into 32 bits. */
static inline vi vi_dot_u7s8(vi acc, vi u7, vi s8) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u7, s8), _mm256_set1_epi16(1)));
}
#elif defined(RIFFD_NEON_DOT)
/* bytes up to 127 read the same signed */
static inline vi vi_dot_u7s8(vi acc, vi u7, vi s8) { return vi_dot_s8s8(acc, u7, s8); }
#endif

#if defined(RIFFD_VNNI) || defined(RIFFD_AVX2_MADD) || defined(RIFFD_NEON_DOT)
#define RIFFD_KERNELS 1 /* this build has the kernels (else: stubs that say so) */
/* a with b's sign */
static inline vf vf_copysign(vf a, vf b) {
    vi sign = vi_set1(INT32_MIN);
    return vf_as_float(vi_or(vi_and(vf_as_int(b), sign), vf_as_int(vf_abs(a))));
}
#endif

#endif
