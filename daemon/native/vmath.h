/* e^x, erf(x) and GELU a vector at a time, over simd.h (softmax in attention.c, GELU in decoder_step.c
   and int8_matvec.c). */

#ifndef RIFFD_VMATH_H
#define RIFFD_VMATH_H

#include <math.h>

#include "simd.h"

#ifdef RIFFD_KERNELS
/* e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^6 (relative error under
   2e-7), times 2^n built in the exponent bits. Below -87 (a masked score) the result is exactly 0. */
static inline vf exp_v(vf x) {
    vf clamped = vf_min(vf_max(x, vf_set1(-87.0f)), vf_set1(88.0f));
    vf n = vf_round(vf_mul(clamped, vf_set1(1.44269504f)));
    vf r = vf_fnmadd(n, vf_set1(0.693145752f), clamped); /* ln 2 in two parts (Cody-Waite) */
    r = vf_fnmadd(n, vf_set1(1.42860677e-6f), r);
    vf p = vf_set1(1.0f / 720);
    p = vf_fmadd(p, r, vf_set1(1.0f / 120));
    p = vf_fmadd(p, r, vf_set1(1.0f / 24));
    p = vf_fmadd(p, r, vf_set1(1.0f / 6));
    p = vf_fmadd(p, r, vf_set1(0.5f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    p = vf_fmadd(p, r, vf_set1(1.0f));
    vf two_to_n = vf_as_float(vi_shift_left(vi_add(vf_to_int(n), vi_set1(127)), 23)); /* n in [-126, 127] */
    return vf_zero_below(vf_mul(p, two_to_n), x, -87.0f);
}

/* ELU, x for x > 0 else alpha (e^x - 1): max(x, 0) + alpha (e^min(x, 0) - 1), one formula for every
   kernel that takes an ELU (elu.c, residual_unit.c), so that they give the same bits. */
static inline vf elu_v(vf x, vf alpha) {
    const vf zero = vf_zero();
    return vf_fmadd(alpha, vf_sub(exp_v(vf_min(x, zero)), vf_set1(1.0f)), vf_max(x, zero));
}

/* erf(x): Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7), odd in x. */
static inline vf erf_v(vf x) {
    vf a = vf_abs(x);
    vf t = vf_div(vf_set1(1.0f), vf_fmadd(a, vf_set1(0.3275911f), vf_set1(1.0f)));
    vf p = vf_set1(1.061405429f);
    p = vf_fmadd(p, t, vf_set1(-1.453152027f));
    p = vf_fmadd(p, t, vf_set1(1.421413741f));
    p = vf_fmadd(p, t, vf_set1(-0.284496736f));
    p = vf_fmadd(p, t, vf_set1(0.254829592f));
    p = vf_mul(p, t);
    vf e = vf_fnmadd(p, exp_v(vf_mul(vf_sub(vf_zero(), a), a)), vf_set1(1.0f));
    return vf_copysign(e, x);
}

/* Exact (erf) GELU, x / 2 * (1 + erf(x / sqrt 2)): decoder_step.c's riffd_gelu and the products that
   apply it to their outputs (int8_matvec.c), one expression so both give the same bits. */
static inline vf gelu_v(vf x) {
    vf half = vf_mul(x, vf_set1(0.5f));
    return vf_fmadd(half, erf_v(vf_mul(x, vf_set1((float)M_SQRT1_2))), half);
}
#endif

#endif
