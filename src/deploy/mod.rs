//! Deployment: what the `haad` command-line tool is built from, and the experiments that
//! measure it.
//!
//! - [`clips`]: clips from the files a user names, in any loadable format;
//! - [`fit`]: `haad fit` as a library call (support, threshold source, target);
//! - [`frames`]: the one-frame-a-line stream format (CSV or JSON);
//! - [`recording`]: long evaluation recordings made of test clips, labelled per frame;
//! - [`output`]: the table, CSV and JSON lines `haad score` and `haad stream` print;
//! - [`svg`]: a plot of window scores over time with the threshold;
//! - [`frame_level`]: frame-level ROC AUC on built recordings;
//! - [`calibration`]: measured false alarms and detections of calibrated thresholds.
//!
//! [`format_frame_level`] and [`format_calibration`] print their results as text tables.

pub mod calibration;
pub mod clips;
pub mod fit;
pub mod frame_level;
pub mod frames;
pub mod output;
pub mod recording;
pub mod svg;

use std::fmt::Write as _;

pub use calibration::{
    calibration_experiment, CalibrationExperiment, CalibrationExperimentConfig, CalibrationSetup,
};
pub use frame_level::{frame_level, FrameLevel, FrameLevelConfig};
pub use recording::{build_recording, Recording, RecordingConfig, Segment};

/// A text table of frame-level results, one column per method, one row per category, then
/// the mean +- std over (category, seed) pairs.
pub fn format_frame_level(results: &[FrameLevel]) -> String {
    let mut s = String::new();
    let Some(first) = results.first() else {
        return s;
    };
    let w = first
        .per_category
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = write!(s, "{:<w$}  {:>9}", "category", "anomalous");
    for r in results {
        let _ = write!(s, "  {:>15}", format!("{} AUC", r.method));
    }
    s.push('\n');
    for (i, c) in first.per_category.iter().enumerate() {
        let _ = write!(s, "{:<w$}  {:>8.1}%", c.name, 100.0 * c.anomalous_share);
        for r in results {
            let _ = write!(s, "  {:>15.3}", r.per_category[i].mean);
        }
        s.push('\n');
    }
    let _ = write!(s, "{:<w$}  {:>9}", "mean +- std", "");
    for r in results {
        let _ = write!(
            s,
            "  {:>15}",
            format!("{:.3} +- {:.3}", r.mean_auc, r.std_auc)
        );
    }
    s.push('\n');
    s
}

/// A text table of a calibration experiment: setup, n, target, measured false alarms,
/// detection rate.
pub fn format_calibration(e: &CalibrationExperiment) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} embedder, target {:.1} % false alarms (needs n >= {} normal scores)",
        e.method,
        100.0 * e.config.target,
        e.needed_scores
    );
    let _ = writeln!(
        s,
        "{:<44}  {:>6}  {:>9}  {:>9}  {:>12}  {:>9}",
        "calibration set", "n", "reachable", "1/(n+1)", "false alarms", "detection"
    );
    for r in &e.rows {
        let _ = writeln!(
            s,
            "{:<44}  {:>6.1}  {:>9}  {:>8.1}%  {:>11.1}%  {:>8.1}%",
            r.label,
            r.scores,
            if r.reachable { "yes" } else { "no" },
            100.0 * r.floor,
            100.0 * r.false_alarm,
            100.0 * r.detection
        );
    }
    s
}

/// Synthetic datasets for the tests: 3 joints, category `c` sways at frequency `0.05 (c + 1)`,
/// clips of 40 to 80 frames, each with uniform noise of `noise`; clips are independent.
#[cfg(test)]
pub(crate) fn test_dataset(n_cat: usize, per_cat: usize, noise: f32) -> haad_motion::Dataset {
    use haad_motion::{Clip, Dataset, Motion, Skeleton};
    use ndarray::Array3;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let names = (0..3).map(|j| format!("j{j}")).collect();
    let skel = Skeleton::new(names, vec![None, Some(0), Some(1)], 0).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let mut clips = Vec::new();
    for c in 0..n_cat {
        for i in 0..per_cat {
            let frames = rng.random_range(40..80);
            let off: f32 = rng.random_range(-1.0..1.0);
            let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, x)| {
                (t as f32 * 0.05 * (c + 1) as f32).sin() * (j + x + 1) as f32 + off
            });
            let a = a.mapv(|v| v + noise * rng.random_range(-1.0f32..1.0));
            clips.push(Clip {
                motion: Motion::new(a, Some(30.0)).unwrap(),
                category: c,
                source: format!("c{c}/{i:02}.txt").into(),
            });
        }
    }
    let cats = (0..n_cat).map(|c| format!("cat{c}")).collect();
    Dataset::new(skel, cats, clips, vec![]).unwrap()
}
