//! ROC AUC (exact, with ties), ROC curve points, average precision and equal error rate for
//! anomaly scores.
//!
//! Convention: `anomaly[i] == true` marks a positive (anomalous) sample, and a higher score
//! means "more anomalous".

use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};

/// One point of the ROC curve: predicting "anomaly" iff `score >= threshold` gives these rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// False positive rate: share of normal samples predicted anomalous.
    pub fpr: f64,
    /// True positive rate: share of anomalous samples predicted anomalous.
    pub tpr: f64,
    /// The score threshold (`+inf` for the first point, where nothing is predicted anomalous).
    pub threshold: f32,
}

/// Checks lengths, finiteness and that both classes are present; returns (positives, negatives).
fn check(scores: &[f32], anomaly: &[bool]) -> Result<(usize, usize)> {
    if scores.len() != anomaly.len() {
        return Err(DetectError::Shape {
            what: "ROC input".into(),
            expected: format!("one label per score ({} scores)", scores.len()),
            got: format!("{} labels", anomaly.len()),
        });
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(DetectError::Metric(format!(
            "score {i} is not finite ({})",
            scores[i]
        )));
    }
    let pos = anomaly.iter().filter(|&&a| a).count();
    let neg = anomaly.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(DetectError::Metric(format!(
            "ROC needs both classes, got {pos} anomalous and {neg} normal samples"
        )));
    }
    Ok((pos, neg))
}

/// Area under the ROC curve, exactly: the Mann-Whitney U statistic with midranks for ties,
/// divided by `positives * negatives`. Equals the probability that a random anomalous sample
/// scores above a random normal one, counting ties as one half.
pub fn roc_auc(scores: &[f32], anomaly: &[bool]) -> Result<f64> {
    let (pos, neg) = check(scores, anomaly)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, midrank) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean.
        let midrank = (start + 1 + end) as f64 / 2.0;
        let tied_pos = order[start..end].iter().filter(|&&i| anomaly[i]).count();
        rank_sum += midrank * tied_pos as f64;
        start = end;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Ok(u / (pos as f64 * neg as f64))
}

/// The ROC curve: one point per distinct score (descending thresholds) after the `(0, 0)`
/// point at threshold `+inf`; the last point is `(1, 1)`.
pub fn roc_curve(scores: &[f32], anomaly: &[bool]) -> Result<Vec<RocPoint>> {
    let (pos, neg) = check(scores, anomaly)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: f32::INFINITY,
    }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut start = 0;
    while start < order.len() {
        let threshold = scores[order[start]];
        let mut end = start;
        while end < order.len() && scores[order[end]] == threshold {
            if anomaly[order[end]] {
                tp += 1;
            } else {
                fp += 1;
            }
            end += 1;
        }
        points.push(RocPoint {
            fpr: fp as f64 / neg as f64,
            tpr: tp as f64 / pos as f64,
            threshold,
        });
        start = end;
    }
    Ok(points)
}

/// Average precision (area under the precision-recall curve, step-wise, as scikit-learn's
/// `average_precision_score`): `sum_k (R_k - R_{k-1}) P_k` over the distinct thresholds in
/// descending order, tied scores forming one step. Equals the mean, over anomalous samples
/// `i`, of the precision among samples scoring `>= score_i`. A random ranking gives about the
/// share of anomalies; a perfect one 1.
pub fn average_precision(scores: &[f32], anomaly: &[bool]) -> Result<f64> {
    let (pos, _) = check(scores, anomaly)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap) = (0usize, 0usize, 0.0f64);
    let mut start = 0;
    while start < order.len() {
        let threshold = scores[order[start]];
        let mut end = start;
        let mut new_tp = 0usize;
        while end < order.len() && scores[order[end]] == threshold {
            if anomaly[order[end]] {
                new_tp += 1;
            } else {
                fp += 1;
            }
            end += 1;
        }
        tp += new_tp;
        if new_tp > 0 {
            ap += (new_tp as f64 / pos as f64) * (tp as f64 / (tp + fp) as f64);
        }
        start = end;
    }
    Ok(ap)
}

/// Equal error rate: the false-alarm rate (FPR) where it equals the miss rate (FNR =
/// 1 - TPR), on the piecewise-linear ROC curve of [`roc_curve`] (linear interpolation between
/// the two points where `FPR - FNR` changes sign). 0 for a perfect ranking, 0.5 for chance.
pub fn equal_error_rate(scores: &[f32], anomaly: &[bool]) -> Result<f64> {
    let curve = roc_curve(scores, anomaly)?;
    let gap = |p: &RocPoint| p.fpr - (1.0 - p.tpr);
    // The first point has gap -1 and the last +1, so a sign change exists.
    let k = curve
        .iter()
        .position(|p| gap(p) >= 0.0)
        .expect("the last ROC point (1, 1) has FPR - FNR = 1");
    let (a, b) = (&curve[k - 1], &curve[k]);
    let (ga, gb) = (gap(a), gap(b));
    let t = -ga / (gb - ga);
    Ok(a.fpr + t * (b.fpr - a.fpr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Counts 1 for every (anomaly, normal) pair ordered correctly and 0.5 for every tie.
    fn brute_force(scores: &[f32], anomaly: &[bool]) -> f64 {
        let mut sum = 0.0;
        let mut pairs = 0.0;
        for (i, &a) in anomaly.iter().enumerate() {
            for (j, &b) in anomaly.iter().enumerate() {
                if a && !b {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        sum += 1.0;
                    } else if scores[i] == scores[j] {
                        sum += 0.5;
                    }
                }
            }
        }
        sum / pairs
    }

    #[test]
    fn auc_matches_pairwise_count_with_ties() {
        let mut rng = StdRng::seed_from_u64(11);
        for trial in 0..200 {
            let n = rng.random_range(2..60);
            // Few distinct values, so ties are common.
            let levels = rng.random_range(1..8);
            let scores: Vec<f32> = (0..n)
                .map(|_| rng.random_range(0..levels) as f32 * 0.25)
                .collect();
            let mut anomaly: Vec<bool> = (0..n).map(|_| rng.random_bool(0.4)).collect();
            anomaly[0] = true;
            anomaly[1] = false;
            let got = roc_auc(&scores, &anomaly).unwrap();
            let want = brute_force(&scores, &anomaly);
            assert!((got - want).abs() < 1e-12, "trial {trial}: {got} vs {want}");
        }
    }

    #[test]
    fn hand_cases() {
        // Pairs: 0.35 > 0.1, 0.35 < 0.4, 0.8 > 0.1, 0.8 > 0.4: 3 of 4.
        let s = [0.1, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        assert_eq!(roc_auc(&s, &y).unwrap(), 0.75);
        // All tied: one half. Perfect and inverted rankings: 1 and 0.
        assert_eq!(
            roc_auc(&[1.0, 1.0, 1.0], &[true, false, false]).unwrap(),
            0.5
        );
        assert_eq!(roc_auc(&[2.0, 1.0], &[true, false]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, false]).unwrap(), 0.0);
    }

    #[test]
    fn curve_hand_case() {
        let c = roc_curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        let got: Vec<(f64, f64, f32)> = c.iter().map(|p| (p.fpr, p.tpr, p.threshold)).collect();
        assert_eq!(
            got,
            vec![
                (0.0, 0.0, f32::INFINITY),
                (0.0, 0.5, 0.8),
                (0.5, 0.5, 0.4),
                (0.5, 1.0, 0.35),
                (1.0, 1.0, 0.1),
            ]
        );
        // Ties collapse into one point: scores 0.5 (anomaly), 0.5 (normal), 0.2 (normal).
        let c = roc_curve(&[0.5, 0.5, 0.2], &[true, false, false]).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!((c[1].fpr, c[1].tpr, c[1].threshold), (0.5, 1.0, 0.5));
    }

    #[test]
    fn trapezoid_area_under_curve_equals_auc() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..50 {
            let n = rng.random_range(4..40);
            let s: Vec<f32> = (0..n).map(|_| rng.random_range(0..5) as f32).collect();
            let mut y: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
            y[0] = true;
            y[1] = false;
            let c = roc_curve(&s, &y).unwrap();
            let area: f64 = c
                .windows(2)
                .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
                .sum();
            assert!((area - roc_auc(&s, &y).unwrap()).abs() < 1e-12);
        }
    }

    /// Mean over anomalies i of the precision among samples scoring >= score_i.
    fn brute_ap(scores: &[f32], anomaly: &[bool]) -> f64 {
        let mut sum = 0.0;
        let mut pos = 0.0;
        for (i, &a) in anomaly.iter().enumerate() {
            if a {
                pos += 1.0;
                let above: Vec<usize> = (0..scores.len())
                    .filter(|&j| scores[j] >= scores[i])
                    .collect();
                let hits = above.iter().filter(|&&j| anomaly[j]).count();
                sum += hits as f64 / above.len() as f64;
            }
        }
        sum / pos
    }

    /// FPR and FNR counted at every threshold "score >= t" (t = each score, and +inf), joined
    /// by straight lines in ROC space, sampled densely; the sample with the smallest |FPR - FNR|.
    fn brute_eer(scores: &[f32], anomaly: &[bool]) -> f64 {
        let mut ts: Vec<f32> = scores.to_vec();
        ts.push(f32::INFINITY);
        ts.sort_by(|a, b| b.total_cmp(a));
        ts.dedup();
        let rates = |t: f32| {
            let (mut fp, mut miss, mut neg, mut pos) = (0.0, 0.0, 0.0, 0.0);
            for (s, &a) in scores.iter().zip(anomaly) {
                if a {
                    pos += 1.0;
                    if *s < t {
                        miss += 1.0;
                    }
                } else {
                    neg += 1.0;
                    if *s >= t {
                        fp += 1.0;
                    }
                }
            }
            (fp / neg, miss / pos)
        };
        let pts: Vec<(f64, f64)> = ts.iter().map(|&t| rates(t)).collect();
        let mut best = (f64::INFINITY, 0.0);
        for w in pts.windows(2) {
            for i in 0..=20_000 {
                let u = i as f64 / 20_000.0;
                let fpr = w[0].0 + u * (w[1].0 - w[0].0);
                let fnr = w[0].1 + u * (w[1].1 - w[0].1);
                if (fpr - fnr).abs() < best.0 {
                    best = ((fpr - fnr).abs(), (fpr + fnr) / 2.0);
                }
            }
        }
        best.1
    }

    #[test]
    fn ap_and_eer_match_brute_force_with_ties() {
        let mut rng = StdRng::seed_from_u64(5);
        for trial in 0..200 {
            let n = rng.random_range(2..40);
            let levels = rng.random_range(1..8);
            let scores: Vec<f32> = (0..n)
                .map(|_| rng.random_range(0..levels) as f32 * 0.5)
                .collect();
            let mut anomaly: Vec<bool> = (0..n).map(|_| rng.random_bool(0.4)).collect();
            anomaly[0] = true;
            anomaly[1] = false;
            let ap = average_precision(&scores, &anomaly).unwrap();
            let want = brute_ap(&scores, &anomaly);
            assert!(
                (ap - want).abs() < 1e-12,
                "trial {trial}: AP {ap} vs {want}"
            );
            let eer = equal_error_rate(&scores, &anomaly).unwrap();
            let want = brute_eer(&scores, &anomaly);
            assert!(
                (eer - want).abs() < 1e-3,
                "trial {trial}: EER {eer} vs {want}"
            );
        }
    }

    #[test]
    fn ap_and_eer_hand_cases() {
        // Ranking: 0.8 (a), 0.4 (n), 0.35 (a), 0.1 (n): AP = (1/1 + 2/3) / 2.
        let s = [0.1, 0.4, 0.35, 0.8];
        let y = [false, false, true, true];
        assert!((average_precision(&s, &y).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = FNR = 0.5 on the flat segment's end.
        assert!((equal_error_rate(&s, &y).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(average_precision(&[2.0, 1.0], &[true, false]).unwrap(), 1.0);
        assert_eq!(equal_error_rate(&[2.0, 1.0], &[true, false]).unwrap(), 0.0);
        assert_eq!(equal_error_rate(&[1.0, 2.0], &[true, false]).unwrap(), 1.0);
        // All tied: AP is the share of anomalies, EER one half.
        assert!(
            (average_precision(&[1.0; 4], &[true, false, false, false]).unwrap() - 0.25).abs()
                < 1e-12
        );
        assert!(
            (equal_error_rate(&[1.0; 4], &[true, false, false, false]).unwrap() - 0.5).abs()
                < 1e-12
        );
        assert!(average_precision(&[1.0, 2.0], &[true, true]).is_err());
        assert!(equal_error_rate(&[f32::NAN, 2.0], &[true, false]).is_err());
    }

    #[test]
    fn errors_on_empty_classes_and_bad_input() {
        assert!(matches!(
            roc_auc(&[1.0, 2.0], &[true, true]),
            Err(DetectError::Metric(_))
        ));
        assert!(matches!(
            roc_auc(&[1.0, 2.0], &[false, false]),
            Err(DetectError::Metric(_))
        ));
        assert!(roc_curve(&[], &[]).is_err());
        assert!(roc_auc(&[1.0], &[true, false]).is_err());
        assert!(roc_auc(&[f32::NAN, 1.0], &[true, false]).is_err());
    }
}
