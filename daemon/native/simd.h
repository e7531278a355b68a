/* The vector operations riffd's kernels use, for the two instruction sets they are built for:
   AVX-512 with VNNI (16 floats a vector: Xeons since Cascade Lake, AMD Zen 4 and later) and
   AVX2 with AVX-VNNI (8 floats: Intel's 12th-generation and later desktops and laptops). The
   kernels are written once against these; `-march=native` picks one at build time, and a CPU
   with neither gets stubs (riffd_int8_supported() says 0, Python uses PyTorch instead). */

#ifndef RIFFD_SIMD_H
#define RIFFD_SIMD_H

#include <stdint.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define RIFFD_SIMD_BITS 512
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
/* acc + sum of four u8 x s8 products per int32 lane */
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) { return _mm512_dpbusd_epi32(acc, u8, s8); }
static inline vf vi_to_float(vi a) { return _mm512_cvtepi32_ps(a); }
static inline vi vf_to_int(vf a) { return _mm512_cvtps_epi32(a); } /* nearest, ties to even */
/* VL int8 values widened to float */
static inline vf vf_load_i8(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
/* the low byte of each int32 lane, VL bytes */
static inline void vi_store_bytes(void *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(a)); }

#elif defined(__AVX2__) && defined(__FMA__) && defined(__AVXVNNI__)
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
static inline vi vi_dot_u8s8(vi acc, vi u8, vi s8) { return _mm256_dpbusd_avx_epi32(acc, u8, s8); }
static inline vf vi_to_float(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi vf_to_int(vf a) { return _mm256_cvtps_epi32(a); }
static inline vf vf_load_i8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
static inline void vi_store_bytes(void *p, vi a) {
    /* the low byte of each lane to the bottom of each 128-bit half, then the halves side by side */
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(a, low_bytes), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    _mm_storel_epi64((__m128i *)p, _mm256_castsi256_si128(packed));
}
#endif

#ifdef RIFFD_SIMD_BITS
#define RIFFD_VNNI 1
/* a with b's sign */
static inline vf vf_copysign(vf a, vf b) {
    vi sign = vi_set1(INT32_MIN);
    return vf_as_float(vi_or(vi_and(vf_as_int(b), sign), vf_as_int(vf_abs(a))));
}
#endif

#endif
