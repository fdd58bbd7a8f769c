//! The raw-DCT baseline on real MSR Action3D data reproduces the independently measured mean
//! AUC (0.77 +- 0.02: 20 categories, K = 3, seeds 0..10, first 80 % of each category's clips in
//! file order as train). Skipped, with a message, when the data is absent.

use std::path::PathBuf;

use haad_detect::{evaluate, Embedder, EvalConfig};
use haad_motion::io::{load, DataFormat};
use haad_motion::split::{Split, DEFAULT_TRAIN_FRACTION};

fn msr_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/msr_action3d/MSRAction3DSkeletonReal3D")
}

#[test]
fn raw_dct_baseline_matches_reference_on_msr() {
    let dir = msr_dir();
    if !dir.is_dir() {
        eprintln!("skipped: MSR Action3D not found at {}", dir.display());
        return;
    }
    let ds = load(DataFormat::Msr, &dir).unwrap();
    assert_eq!(ds.categories().len(), 20);
    assert_eq!(
        ds.clips().len(),
        566,
        "567 files minus the all-zero a13_s09_e02"
    );
    assert_eq!(ds.skipped().len(), 1);
    let unseen: Vec<String> = [
        "forward_punch",
        "high_throw",
        "forward_kick",
        "tennis_serve",
        "pick_up_throw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &unseen).unwrap();
    let cfg = EvalConfig::default().check().unwrap();
    let ev = evaluate(&ds, &split, &Embedder::raw_dct(), &cfg, None, None).unwrap();
    assert!(
        (0.75..=0.79).contains(&ev.mean_auc),
        "raw-DCT mean AUC {} outside 0.77 +- 0.02",
        ev.mean_auc
    );
    assert_eq!(ev.per_category.len(), 20);
    assert!(ev.unseen_mean_auc.is_some());
}
