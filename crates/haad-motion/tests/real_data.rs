//! Tests on the real datasets in `../shared/data` (skipped, with a message, when absent).

use std::path::PathBuf;
use std::sync::OnceLock;

use haad_motion::io::{self, bvh::read_bvh, DataFormat};
use haad_motion::{preprocess, Dataset};

/// `shared/data` beside the project's root: `../../../shared/data` from this crate, i.e.
/// `../shared/data` from the workspace root (also reached through the workspace root itself in
/// case the crate is moved).
fn data_dir() -> Option<PathBuf> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        crate_dir.join("../../../shared/data"),
        crate_dir.join("../..").join("../shared/data"),
    ];
    let found = candidates.into_iter().find(|p| p.is_dir());
    if found.is_none() {
        eprintln!("SKIPPED: no shared/data folder next to the project root");
    }
    found
}

fn dataset_dir(rel: &str) -> Option<PathBuf> {
    let dir = data_dir()?.join(rel);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent", dir.display());
        None
    }
}

/// The Bandai subset by content, loaded once for all tests of this file.
fn bandai() -> Option<&'static Dataset> {
    static BANDAI: OnceLock<Option<Dataset>> = OnceLock::new();
    BANDAI
        .get_or_init(|| {
            let dir = dataset_dir("bandai_namco_ds2_subset")?;
            Some(io::load(DataFormat::Bandai, dir).unwrap())
        })
        .as_ref()
}

/// MSR Action3D, loaded once for all tests of this file.
fn msr() -> Option<&'static Dataset> {
    static MSR: OnceLock<Option<Dataset>> = OnceLock::new();
    MSR.get_or_init(|| {
        let dir = dataset_dir("msr_action3d/MSRAction3DSkeletonReal3D")?;
        Some(io::load(DataFormat::Msr, dir).unwrap())
    })
    .as_ref()
}

#[test]
fn msr_action3d_loads_566_clips_of_20_actions() {
    let Some(ds) = msr() else {
        return;
    };
    assert_eq!(ds.categories().len(), 20);
    assert_eq!(ds.categories()[0], "high_arm_wave");
    assert_eq!(ds.categories()[19], "pick_up_throw");
    assert_eq!(ds.clips().len(), 566);
    assert_eq!(ds.joints(), 20);
    assert_eq!(ds.skeleton().names()[ds.skeleton().root()], "hip_centre");
    assert_eq!(ds.skipped().len(), 1);
    let skipped = &ds.skipped()[0];
    assert!(skipped
        .path
        .to_string_lossy()
        .ends_with("a13_s09_e02_skeleton3D.txt"));
    assert!(skipped.reason.contains("zero"), "{}", skipped.reason);
    assert!(ds.counts().iter().all(|&n| n >= 20));
    for clip in ds.clips() {
        assert_eq!(clip.motion.fps(), Some(15.0));
        // The category comes from the file name's action number.
        let name = clip
            .source
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let action: usize = name[1..3].parse().unwrap();
        assert_eq!(clip.category, action - 1, "{name}");
    }
}

#[test]
fn bandai_loads_10_contents_of_28_clips_rooted_at_hips() {
    let Some(ds) = bandai() else {
        return;
    };
    assert_eq!(ds.categories().len(), 10);
    assert_eq!(ds.counts(), vec![28; 10]);
    assert_eq!(ds.joints(), 22);
    assert!(ds.skipped().is_empty());
    let s = ds.skeleton();
    assert_eq!(s.names()[0], "joint_Root");
    // Detected from the data, not named anywhere in the loader.
    assert_eq!(s.names()[s.root()], "Hips");
    for clip in ds.clips() {
        assert_eq!(clip.motion.fps(), Some(30.0));
        let prepared =
            preprocess::prepare(&clip.motion, preprocess::DEFAULT_FRAMES, s.root()).unwrap();
        assert_eq!(prepared.frames(), 60);
        for a in 0..3 {
            assert_eq!(prepared.data()[[0, s.root(), a]], 0.0);
        }
    }
}

#[test]
fn bandai_style_labels_give_7_styles_of_40_clips() {
    let Some(dir) = dataset_dir("bandai_namco_ds2_subset") else {
        return;
    };
    let ds = io::bandai::load_bandai(&dir, io::bandai::BandaiLabel::Style).unwrap();
    assert_eq!(ds.counts(), vec![40; 7]);
}

/// Forward kinematics on every real BVH clip: each bone's length equals the length of the
/// child's local translation in every frame (rotations keep lengths), and since the
/// Bandai files' translation channels hold the offsets, bone lengths stay constant over frames
/// (all but the one from the static `joint_Root` to the moving `Hips`).
#[test]
fn bvh_bone_lengths_are_kept_by_forward_kinematics() {
    let Some(ds) = bandai() else {
        return;
    };
    let root = ds.skeleton().root();
    let bones = ds.skeleton().bones();
    for clip in ds.clips().iter().step_by(7) {
        let bvh = read_bvh(&clip.source).unwrap();
        let m = clip.motion.data();
        for &(c, p) in &bones {
            let len = |t: usize| -> f64 {
                (0..3)
                    .map(|a| (m[[t, c, a]] as f64 - m[[t, p, a]] as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            let first = len(0);
            for t in 0..clip.motion.frames() {
                let local = bvh.local_translations(t)[c];
                let expected = local.iter().map(|v| v * v).sum::<f64>().sqrt();
                // f32 storage of positions up to ~150 cm: about 1e-5 cm.
                assert!(
                    (len(t) - expected).abs() < 1e-3,
                    "{}: bone {c}-{p} frame {t}: {} vs {expected}",
                    clip.source.display(),
                    len(t)
                );
                // Except the bone to the body-carrying root, whose translation is the body's.
                if c != root {
                    assert!((len(t) - first).abs() < 1e-3, "{}", clip.source.display());
                }
            }
        }
    }
}

/// The rotation convention (R = R_1 R_2 R_3 in channel order) makes an upright body: in every
/// frame of every clip the head is well above the hips, and every clip's lowest toe is at the
/// same floor height to within a few cm. (The reversed order puts heads below hips and toes up
/// to 1.4 m off the floor on this data.)
#[test]
fn bvh_rotation_order_gives_upright_bodies_on_a_level_floor() {
    let Some(ds) = bandai() else {
        return;
    };
    let s = ds.skeleton();
    let idx = |n: &str| s.index_of(n).unwrap();
    let (hips, head, toe_l, toe_r) = (idx("Hips"), idx("Head"), idx("Toes_L"), idx("Toes_R"));
    let mut floor = (f32::INFINITY, f32::NEG_INFINITY);
    for clip in ds.clips() {
        let m = clip.motion.data();
        let mut lowest = f32::INFINITY;
        for t in 0..clip.motion.frames() {
            assert!(
                m[[t, head, 1]] - m[[t, hips, 1]] > 20.0,
                "{}",
                clip.source.display()
            );
            lowest = lowest.min(m[[t, toe_l, 1]]).min(m[[t, toe_r, 1]]);
        }
        floor = (floor.0.min(lowest), floor.1.max(lowest));
    }
    assert!(floor.1 - floor.0 < 3.0, "lowest toe heights span {floor:?}");
}

#[test]
fn native_file_round_trips_real_data() {
    let Some(ds) = msr() else {
        return;
    };
    let path = std::env::temp_dir().join(format!("haad-real-{}.safetensors", std::process::id()));
    ds.save(&path).unwrap();
    let back = io::load(DataFormat::Native, &path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&back, ds);
}
