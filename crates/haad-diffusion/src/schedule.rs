//! Noise schedules: [`Schedule`] (which one) and [`NoiseSchedule`] (its alpha-bar table).

use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};

/// The largest beta_t kept: betas are clipped to this (as in improved DDPM).
pub const MAX_BETA: f64 = 0.999;

/// How alpha-bar(t) falls from 1 to about 0 over T steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// Cosine schedule (Nichol and Dhariwal 2021): f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2),
    /// alpha-bar(t) = f(t) / f(0), betas `1 - ab(t) / ab(t - 1)` clipped to [`MAX_BETA`].
    Cosine {
        /// The offset s (0.008).
        s: f64,
    },
    /// Linear betas from `beta_start` to `beta_end` (DDPM: 1e-4 to 0.02), alpha-bar their
    /// running product of `1 - beta`.
    Linear {
        /// beta_1.
        beta_start: f64,
        /// beta_T.
        beta_end: f64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Cosine { s: 0.008 }
    }
}

impl Schedule {
    /// Checks the parameters; the error is a [`DiffusionError::Config`] on field `schedule`
    /// with the rule broken.
    pub fn check(&self) -> Result<Schedule> {
        let rule = match *self {
            Schedule::Cosine { s } if !(s.is_finite() && s > 0.0) => {
                format!("cosine offset s must be positive and finite, got {s}")
            }
            Schedule::Linear {
                beta_start,
                beta_end,
            } if !(beta_start > 0.0 && beta_start <= beta_end && beta_end < 1.0) => format!(
                "linear betas need 0 < beta_start <= beta_end < 1, got {beta_start} and {beta_end}"
            ),
            _ => return Ok(*self),
        };
        Err(DiffusionError::Config {
            field: "schedule",
            rule,
        })
    }
}

/// The table alpha-bar(t), t = 0..=T, with alpha-bar(0) = 1 (no noise).
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    alpha_bar: Vec<f64>,
}

impl NoiseSchedule {
    /// Tabulates `schedule` over `steps` (T) steps.
    pub fn new(schedule: Schedule, steps: usize) -> Result<Self> {
        schedule.check()?;
        if steps < 2 {
            return Err(DiffusionError::Config {
                field: "diffusion_steps",
                rule: format!("need at least 2 steps, got {steps}"),
            });
        }
        let tf = steps as f64;
        let betas: Vec<f64> = match schedule {
            Schedule::Cosine { s } => {
                let f = |t: f64| {
                    (((t / tf + s) / (1.0 + s)) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (1..=steps)
                    .map(|t| (1.0 - f(t as f64) / f((t - 1) as f64)).clamp(0.0, MAX_BETA))
                    .collect()
            }
            Schedule::Linear {
                beta_start,
                beta_end,
            } => (0..steps)
                .map(|i| beta_start + (beta_end - beta_start) * i as f64 / (steps - 1) as f64)
                .collect(),
        };
        let mut alpha_bar = Vec::with_capacity(steps + 1);
        alpha_bar.push(1.0);
        for b in betas {
            let last = *alpha_bar.last().expect("non-empty");
            alpha_bar.push(last * (1.0 - b));
        }
        Ok(Self { alpha_bar })
    }

    /// T, the number of steps.
    pub fn steps(&self) -> usize {
        self.alpha_bar.len() - 1
    }

    /// alpha-bar(t) for `t` in `0..=T`.
    ///
    /// # Panics
    /// If `t > T`.
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bar[t]
    }

    /// beta_t = 1 - alpha-bar(t) / alpha-bar(t - 1) for `t` in `1..=T`.
    ///
    /// # Panics
    /// If `t == 0` or `t > T`.
    pub fn beta(&self, t: usize) -> f64 {
        1.0 - self.alpha_bar[t] / self.alpha_bar[t - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn cosine_matches_closed_form() {
        let s = 0.008;
        let sched = NoiseSchedule::new(Schedule::Cosine { s }, 1000).unwrap();
        let f = |t: f64| {
            (((t / 1000.0 + s) / (1.0 + s)) * std::f64::consts::PI / 2.0)
                .cos()
                .powi(2)
        };
        for t in [0usize, 1, 10, 250, 500, 750, 900, 990] {
            assert_abs_diff_eq!(sched.alpha_bar(t), f(t as f64) / f(0.0), epsilon = 1e-9);
        }
        // Near t = T the closed form's beta tends to 1; the table clips it to 0.999.
        assert_abs_diff_eq!(sched.beta(1000), MAX_BETA, epsilon = 1e-12);
        assert!(sched.alpha_bar(1000) > 0.0 && sched.alpha_bar(1000) < 1e-6);
        for t in 1..=1000 {
            assert!(sched.alpha_bar(t) < sched.alpha_bar(t - 1));
        }
        // ab(1) by hand: cos^2((0.001 + 0.008) / 1.008 * pi/2) / cos^2(0.008 / 1.008 * pi/2).
        let hand = (0.009f64 / 1.008 * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
            / (0.008f64 / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2);
        assert_abs_diff_eq!(sched.alpha_bar(1), hand, epsilon = 1e-12);
    }

    #[test]
    fn linear_is_a_product_of_linear_betas() {
        let sched = NoiseSchedule::new(
            Schedule::Linear {
                beta_start: 1e-4,
                beta_end: 0.02,
            },
            1000,
        )
        .unwrap();
        assert_eq!(sched.steps(), 1000);
        assert_abs_diff_eq!(sched.beta(1), 1e-4, epsilon = 1e-12);
        assert_abs_diff_eq!(sched.beta(1000), 0.02, epsilon = 1e-12);
        assert_abs_diff_eq!(
            sched.beta(500),
            1e-4 + 0.0199 * 499.0 / 999.0,
            epsilon = 1e-12
        );
        // log ab(T) = sum log(1 - beta_i).
        let log_ab: f64 = (0..1000)
            .map(|i| (1.0 - (1e-4 + 0.0199 * i as f64 / 999.0)).ln())
            .sum();
        assert_abs_diff_eq!(sched.alpha_bar(1000).ln(), log_ab, epsilon = 1e-9);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(NoiseSchedule::new(Schedule::Cosine { s: -1.0 }, 10).is_err());
        assert!(NoiseSchedule::new(Schedule::default(), 1).is_err());
    }
}
