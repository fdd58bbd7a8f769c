//! [`Scoring`]: how a query embedding's distances to the support embeddings become one anomaly
//! score (higher = more anomalous).

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};

/// The scoring rule. Distances are computed in f64 and the score returned as f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The paper's Eq. 6: mean Euclidean distance to all support embeddings.
    #[default]
    MeanDistance,
    /// Euclidean distance to the nearest support embedding.
    MinDistance,
    /// Mean Euclidean distance to the `k` nearest support embeddings (`1 <= k <= support size`).
    KNearest(usize),
    /// Mean cosine distance `1 - cos(query, support)` to all support embeddings (embeddings must
    /// not be zero vectors).
    MeanCosineDistance,
}

impl Scoring {
    /// Checks that the rule applies to a support set of `support` embeddings.
    pub fn check(&self, support: usize) -> Result<()> {
        if support == 0 {
            return Err(DetectError::InvalidArgument(
                "a support set needs at least one embedding".into(),
            ));
        }
        if let Scoring::KNearest(k) = *self {
            if k == 0 || k > support {
                return Err(DetectError::InvalidArgument(format!(
                    "k-nearest scoring needs 1 <= k <= {support} (the support size), got k = {k}"
                )));
            }
        }
        Ok(())
    }

    /// The anomaly score of `query` `[E]` against `support` `[M, E]`.
    pub fn score(&self, support: ArrayView2<'_, f32>, query: ArrayView1<'_, f32>) -> Result<f32> {
        self.check(support.nrows())?;
        if support.ncols() != query.len() {
            return Err(DetectError::Shape {
                what: "query embedding".into(),
                expected: format!("{} values (the support width)", support.ncols()),
                got: format!("{} values", query.len()),
            });
        }
        let score = match *self {
            Scoring::MeanDistance => {
                let sum: f64 = support.rows().into_iter().map(|s| euclid(s, query)).sum();
                sum / support.nrows() as f64
            }
            Scoring::MinDistance => support
                .rows()
                .into_iter()
                .map(|s| euclid(s, query))
                .fold(f64::INFINITY, f64::min),
            Scoring::KNearest(k) => {
                let mut d: Vec<f64> = support
                    .rows()
                    .into_iter()
                    .map(|s| euclid(s, query))
                    .collect();
                d.sort_by(f64::total_cmp);
                d[..k].iter().sum::<f64>() / k as f64
            }
            Scoring::MeanCosineDistance => {
                let qn = norm(query);
                if qn == 0.0 {
                    return Err(DetectError::InvalidArgument(
                        "cosine distance is undefined for a zero query embedding".into(),
                    ));
                }
                let mut sum = 0.0;
                for (i, s) in support.rows().into_iter().enumerate() {
                    let sn = norm(s);
                    if sn == 0.0 {
                        return Err(DetectError::InvalidArgument(format!(
                            "cosine distance is undefined: support embedding {i} is zero"
                        )));
                    }
                    let dot: f64 = s
                        .iter()
                        .zip(query)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum();
                    sum += 1.0 - dot / (sn * qn);
                }
                sum / support.nrows() as f64
            }
        };
        let score32 = score as f32;
        if !score32.is_finite() {
            return Err(DetectError::Metric(format!(
                "score {score} does not fit an f32: embeddings overflow"
            )));
        }
        Ok(score32)
    }
}

impl std::fmt::Display for Scoring {
    /// The command-line name: `mean_distance`, `min_distance`, `k_nearest:K`,
    /// `mean_cosine_distance`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scoring::MeanDistance => f.write_str("mean_distance"),
            Scoring::MinDistance => f.write_str("min_distance"),
            Scoring::KNearest(k) => write!(f, "k_nearest:{k}"),
            Scoring::MeanCosineDistance => f.write_str("mean_cosine_distance"),
        }
    }
}

impl std::str::FromStr for Scoring {
    type Err = DetectError;

    /// Parses the names [`Scoring`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean_distance" => Ok(Scoring::MeanDistance),
            "min_distance" => Ok(Scoring::MinDistance),
            "mean_cosine_distance" => Ok(Scoring::MeanCosineDistance),
            _ => s
                .strip_prefix("k_nearest:")
                .and_then(|k| k.parse().ok())
                .map(Scoring::KNearest)
                .ok_or_else(|| {
                    DetectError::InvalidArgument(format!(
                        "unknown scoring {s:?}; expected mean_distance, min_distance, \
                         k_nearest:K or mean_cosine_distance"
                    ))
                }),
        }
    }
}

fn euclid(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

fn norm(a: ArrayView1<'_, f32>) -> f64 {
    a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    /// Support points (0, 0), (3, 4), (6, 8); query (0, 0): distances 0, 5, 10.
    fn support() -> Array2<f32> {
        array![[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]
    }

    #[test]
    fn hand_computed_scores() {
        let s = support();
        let q = array![0.0f32, 0.0];
        let sc = |r: Scoring| r.score(s.view(), q.view()).unwrap();
        assert!((sc(Scoring::MeanDistance) - 5.0).abs() < 1e-6);
        assert_eq!(sc(Scoring::MinDistance), 0.0);
        assert!((sc(Scoring::KNearest(2)) - 2.5).abs() < 1e-6);
        assert!((sc(Scoring::KNearest(3)) - 5.0).abs() < 1e-6);
        assert_eq!(Scoring::default(), Scoring::MeanDistance);
    }

    #[test]
    fn cosine_hand_case() {
        // Query (1, 0) against (2, 0) [cos 1], (0, 5) [cos 0], (-1, 0) [cos -1]: mean of 0, 1, 2.
        let s = array![[2.0f32, 0.0], [0.0, 5.0], [-1.0, 0.0]];
        let q = array![1.0f32, 0.0];
        let v = Scoring::MeanCosineDistance
            .score(s.view(), q.view())
            .unwrap();
        assert!((v - 1.0).abs() < 1e-6);
        let zero = array![0.0f32, 0.0];
        assert!(Scoring::MeanCosineDistance
            .score(s.view(), zero.view())
            .is_err());
        assert!(Scoring::MeanCosineDistance
            .score(support().view(), q.view())
            .is_err());
    }

    #[test]
    fn rejects_bad_k_sizes_and_overflow() {
        let s = support();
        let q = array![0.0f32, 0.0];
        assert!(Scoring::KNearest(0).score(s.view(), q.view()).is_err());
        assert!(Scoring::KNearest(4).score(s.view(), q.view()).is_err());
        let wide = array![0.0f32, 0.0, 0.0];
        assert!(Scoring::MeanDistance.score(s.view(), wide.view()).is_err());
        let empty = Array2::<f32>::zeros((0, 2));
        assert!(Scoring::MeanDistance.score(empty.view(), q.view()).is_err());
        let big = array![[f32::MAX, f32::MAX]];
        let neg = array![-f32::MAX, -f32::MAX];
        // 2 sqrt(2) f32::MAX is finite in f64 but overflows f32: an error, never an inf score.
        assert!(Scoring::MeanDistance.score(big.view(), neg.view()).is_err());
    }

    #[test]
    fn serde_names_are_snake_case() {
        let s = serde_json::to_string(&Scoring::KNearest(3)).unwrap();
        assert_eq!(s, r#"{"k_nearest":3}"#);
        let m: Scoring = serde_json::from_str(r#""mean_distance""#).unwrap();
        assert_eq!(m, Scoring::MeanDistance);
        for r in [
            Scoring::MeanDistance,
            Scoring::MinDistance,
            Scoring::KNearest(5),
            Scoring::MeanCosineDistance,
        ] {
            assert_eq!(r.to_string().parse::<Scoring>().unwrap(), r);
        }
        for bad in ["", "mean", "k_nearest:", "k_nearest:x", "k_nearest:-1"] {
            assert!(bad.parse::<Scoring>().is_err(), "{bad}");
        }
    }
}
