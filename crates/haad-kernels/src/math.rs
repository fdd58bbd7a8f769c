//! Branch-free f32 functions whose loops the compiler vectorises (libm's `expf` is a call per
//! element).

/// `e^x` in f32, relative error below 2e-7 for `x` in `[-87, 88]` (inputs outside are clamped
/// there; NaN stays NaN). `x = n ln 2 + r` with `n` rounded to nearest by adding `1.5 * 2^23`
/// (which also leaves `n` in the low bits of the sum, read without a float-to-int conversion)
/// and `|r| <= ln(2) / 2`; `e^r` by its degree-7 Taylor polynomial; `2^n` from its exponent
/// bits. Only arithmetic and bit operations, and no division: the last Taylor coefficient is
/// multiplied as `1/5040` (a vector division takes several multiplies' time; dividing by 5040
/// was the slowest instruction of attention's softmax).
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
                                     // `clamp` keeps NaN (`min`/`max` would not).
    let x = x.clamp(-87.0, 88.0);
    let k = x * LOG2E + ROUND;
    let n = k - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // k's bits are ROUND's plus n (two's complement in the low mantissa bits).
    let n_bits = k.to_bits().wrapping_sub(ROUND.to_bits());
    f32::from_bits(n_bits.wrapping_add(127) << 23) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_over_its_range() {
        let mut worst = 0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = (x as f64).exp();
            worst = worst.max(((exp_f32(x) as f64) - want).abs() / want);
        }
        assert!(worst < 2e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
        assert!(exp_f32(1000.0).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
