//! The canonical body on real clips of every layout we hold (MSR Action3D, the Bandai-Namco
//! BVH rig, the embedded Bandai subset; skipped with a message when `../shared/data` is absent)
//! and on hand-made poses, built from each layout's documentation, for the layouts we do not
//! hold (Kinect v1 / v2, SMPL, Human3.6M).
//!
//! Left and right are checked by geometry, not by names: the facing direction `up x (right -
//! left)` must point the way the feet point (toes or foot joints ahead of the ankles).

use std::path::PathBuf;

use haad_motion::canonical::*;
use haad_motion::io::{self, DataFormat};
use haad_motion::normalize::{body_size, facing};
use haad_motion::{Canonicalizer, Dataset, Layout, Motion, NormalizeConfig, Skeleton};
use ndarray::Array3;

fn data_dir(rel: &str) -> Option<PathBuf> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = crate_dir.join("../../../shared/data").join(rel);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent", dir.display());
        None
    }
}

fn dist(d: &Array3<f32>, t: usize, a: usize, b: usize) -> f32 {
    (0..3)
        .map(|c| (d[[t, a, c]] - d[[t, b, c]]).powi(2))
        .sum::<f32>()
        .sqrt()
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// Median length in metres of every canonical bone over all frames of all clips.
fn bone_lengths(ds: &Dataset) -> Vec<f32> {
    let mut per_bone = vec![Vec::new(); CANONICAL_JOINTS.len()];
    for c in ds.clips() {
        let d = c.motion.data();
        for t in 0..c.motion.frames() {
            for (j, p) in CANONICAL_PARENTS.iter().enumerate() {
                if let Some(p) = p {
                    per_bone[j].push(dist(d, t, j, *p));
                }
            }
        }
    }
    per_bone
        .into_iter()
        .map(|v| if v.is_empty() { 0.0 } else { median(v) })
        .collect()
}

/// Plausible adult bone lengths (metres), generous enough for every capture setup: each
/// bone's range and left / right within 20 % of each other.
fn check_bones(what: &str, b: &[f32]) {
    let ranges = [
        (NECK, 0.30, 0.75, "pelvis-neck"),
        (HEAD, 0.05, 0.40, "neck-head"),
        (LEFT_SHOULDER, 0.08, 0.30, "neck-shoulder"),
        (4, 0.18, 0.40, "upper arm"),
        (5, 0.15, 0.35, "forearm"),
        (LEFT_HIP, 0.04, 0.20, "pelvis-hip"),
        (LEFT_KNEE, 0.28, 0.60, "thigh"),
        (LEFT_ANKLE, 0.28, 0.60, "shin"),
    ];
    for (j, lo, hi, name) in ranges {
        // Left joint j and its right twin j + 3 (arms 3..5 -> 6..8, legs 9..11 -> 12..14);
        // the neck and head have no twin.
        let right = if j == NECK || j == HEAD { j } else { j + 3 };
        for (side, len) in [("left", b[j]), ("right", b[right])] {
            assert!(
                (lo..=hi).contains(&len),
                "{what}: {side} {name} is {len:.3} m, outside [{lo}, {hi}]"
            );
        }
        if j != NECK && j != HEAD {
            let ratio = b[j] / b[right];
            assert!(
                (0.8..1.25).contains(&ratio),
                "{what}: left/right {name} {ratio:.2}"
            );
        }
    }
}

/// Share of clips whose facing (from the canonical hips and shoulders) agrees with the feet
/// (raw `toe - ankle` of both sides, on the ground plane) in most frames.
fn facing_agrees_with_feet(raw: &Dataset, canon: &Dataset, feet: [(usize, usize); 2]) -> f64 {
    let mut agree = 0;
    for (r, c) in raw.clips().iter().zip(canon.clips()) {
        let (rd, m) = (r.motion.data(), &c.motion);
        let mut votes = 0i32;
        for t in 0..m.frames() {
            let (fx, fz) = facing(m, t);
            let (mut tx, mut tz) = (0.0, 0.0);
            for (toe, ankle) in feet {
                tx += rd[[t, toe, 0]] - rd[[t, ankle, 0]];
                tz += rd[[t, toe, 2]] - rd[[t, ankle, 2]];
            }
            votes += if fx * tx + fz * tz > 0.0 { 1 } else { -1 };
        }
        if votes > 0 {
            agree += 1;
        }
    }
    agree as f64 / raw.clips().len() as f64
}

fn canonical(raw: &Dataset, layout: Layout, cfg: NormalizeConfig) -> Dataset {
    Canonicalizer::new(layout, raw.skeleton(), None, cfg)
        .unwrap()
        .apply_dataset(raw)
        .unwrap()
}

#[test]
fn msr_action3d_maps_with_plausible_bones_and_left_on_the_left() {
    let Some(dir) = data_dir("msr_action3d/MSRAction3DSkeletonReal3D") else {
        return;
    };
    let raw = io::load(DataFormat::Msr, &dir).unwrap();
    let canon = canonical(&raw, Layout::Msr, NormalizeConfig::none());
    check_bones("MSR", &bone_lengths(&canon));
    // MSR rows: 15/16 left/right ankle, 17/18 left/right foot.
    let share = facing_agrees_with_feet(&raw, &canon, [(17, 15), (18, 16)]);
    assert!(
        share > 0.95,
        "facing agrees with the feet in {share:.3} of MSR clips"
    );
}

#[test]
fn bandai_bvh_maps_with_plausible_bones_and_left_on_the_left() {
    let Some(dir) = data_dir("bandai_namco_ds2_subset") else {
        return;
    };
    let raw = io::load(DataFormat::Bandai, &dir).unwrap();
    let canon = canonical(&raw, Layout::Bvh, NormalizeConfig::none());
    check_bones("Bandai", &bone_lengths(&canon));
    let s = raw.skeleton();
    let j = |n: &str| s.index_of(n).unwrap();
    let share = facing_agrees_with_feet(
        &raw,
        &canon,
        [(j("Toes_L"), j("Foot_L")), (j("Toes_R"), j("Foot_R"))],
    );
    assert!(
        share > 0.95,
        "facing agrees with the toes in {share:.3} of clips"
    );
    // Walks move forward: the pelvis travels the way frame 0 faces.
    let walk = raw.category_index("dataset-2_walk").unwrap();
    for c in canon.clips().iter().filter(|c| c.category == walk) {
        let d = c.motion.data();
        let last = c.motion.frames() - 1;
        let (fx, fz) = facing(&c.motion, 0);
        let (dx, dz) = (
            d[[last, PELVIS, 0]] - d[[0, PELVIS, 0]],
            d[[last, PELVIS, 2]] - d[[0, PELVIS, 2]],
        );
        assert!(fx * dx + fz * dz > 0.0, "{}", c.source.display());
    }
}

#[test]
fn embedded_bandai_and_msr_meet_after_normalisation() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bandai = Dataset::load(root.join("data/bandai/bandai-ds2-60f.safetensors")).unwrap();
    let canon = canonical(&bandai, Layout::Bvh, NormalizeConfig::none());
    let bones = bone_lengths(&canon);
    check_bones("embedded Bandai", &bones);
    let full = canonical(&bandai, Layout::Bvh, NormalizeConfig::default());
    for c in full.clips() {
        let m = &c.motion;
        assert_eq!(m.fps(), Some(30.0));
        assert!((body_size(m) - 1.0).abs() < 1e-3);
        let (fx, fz) = facing(m, 0);
        assert!(fx.abs() < 1e-3 * fz.abs() && fz > 0.0);
    }
    // Against MSR (metres, 15 fps; Bandai is in centimetres): after body-size scaling the
    // thighs agree within a third (measured: Bandai / MSR = 0.81; the Kinect puts its hip
    // joints higher than the BVH rig, so the thigh is a larger share of its body size).
    if let Some(dir) = data_dir("msr_action3d/MSRAction3DSkeletonReal3D") {
        let msr = canonical(
            &io::load(DataFormat::Msr, &dir).unwrap(),
            Layout::Msr,
            NormalizeConfig::default(),
        );
        let (a, b) = (bone_lengths(&full), bone_lengths(&msr));
        let ratio = a[LEFT_KNEE] / b[LEFT_KNEE];
        assert!((0.75..1.33).contains(&ratio), "thigh ratio {ratio}");
        assert!(msr.clips().iter().all(|c| c.motion.fps() == Some(30.0)));
    }
}

/// A standing body facing +z, y up, metres, by body part (the layouts' documentation names
/// these parts; the test places each layout's joints on them by hand).
mod body {
    pub const PELVIS: [f32; 3] = [0.0, 1.0, 0.0];
    pub const SPINE: [f32; 3] = [0.0, 1.2, 0.0];
    pub const CHEST: [f32; 3] = [0.0, 1.35, 0.0];
    pub const NECK: [f32; 3] = [0.0, 1.5, 0.0];
    pub const NOSE: [f32; 3] = [0.0, 1.6, 0.08];
    pub const HEAD: [f32; 3] = [0.0, 1.68, 0.0];
    // The body's left is +x when facing +z with y up (right-handed).
    pub const L_CLAV: [f32; 3] = [0.08, 1.48, 0.0];
    pub const L_SH: [f32; 3] = [0.2, 1.45, 0.0];
    pub const L_EL: [f32; 3] = [0.22, 1.17, 0.0];
    pub const L_WR: [f32; 3] = [0.24, 0.92, 0.05];
    pub const L_HAND: [f32; 3] = [0.24, 0.84, 0.07];
    pub const L_TIP: [f32; 3] = [0.24, 0.78, 0.08];
    pub const L_THUMB: [f32; 3] = [0.22, 0.86, 0.1];
    pub const L_HIP: [f32; 3] = [0.1, 0.95, 0.0];
    pub const L_KNEE: [f32; 3] = [0.11, 0.52, 0.02];
    pub const L_ANKLE: [f32; 3] = [0.11, 0.08, 0.0];
    pub const L_FOOT: [f32; 3] = [0.12, 0.02, 0.14];
    pub fn right(p: [f32; 3]) -> [f32; 3] {
        [-p[0], p[1], p[2]]
    }
}

/// Places `layout`'s joints by name and checks the canonical pose: every canonical joint where
/// the body has it, left on +x (facing +z by geometry), units and up axis undone.
fn check_hand_made(
    layout: Layout,
    place: &[(&str, [f32; 3])],
    to_layout: impl Fn([f32; 3]) -> [f32; 3],
) {
    let names = layout.joint_names().unwrap();
    assert_eq!(place.len(), names.len(), "{layout}: place every joint");
    let mut a = Array3::zeros((1, names.len(), 3));
    for (j, n) in names.iter().enumerate() {
        let p = place
            .iter()
            .find(|(m, _)| m == n)
            .unwrap_or_else(|| panic!("{layout}: {n} not placed"))
            .1;
        let q = to_layout(p);
        for c in 0..3 {
            a[[0, j, c]] = q[c];
        }
    }
    let sk = Skeleton::new(
        names.iter().map(|s| s.to_string()).collect(),
        layout.parents().unwrap().to_vec(),
        0,
    )
    .unwrap();
    let cfg = NormalizeConfig {
        fps: None,
        body_size: None,
        heading: false,
        vertical: true,
    };
    let canon = Canonicalizer::new(layout, &sk, Some(30.0), cfg).unwrap();
    let out = canon.apply(&Motion::new(a, None).unwrap()).unwrap();
    use body::*;
    let expected = [
        [0.0, 0.95, 0.0], // pelvis = mean of the hips
        NECK,
        HEAD,
        L_SH,
        L_EL,
        L_WR,
        right(L_SH),
        right(L_EL),
        right(L_WR),
        L_HIP,
        L_KNEE,
        L_ANKLE,
        right(L_HIP),
        right(L_KNEE),
        right(L_ANKLE),
    ];
    let d = out.data();
    for (j, e) in expected.iter().enumerate() {
        for c in 0..3 {
            // Positions are relative to the frame-0 pelvis (0, 0.95, 0).
            let want = e[c] - [0.0, 0.95, 0.0][c];
            assert!(
                (d[[0, j, c]] - want).abs() < 1e-4,
                "{layout}: {} axis {c}: {} vs {want}",
                CANONICAL_JOINTS[j],
                d[[0, j, c]]
            );
        }
    }
    let (fx, fz) = facing(&out, 0);
    assert!(fz > 0.0 && fx.abs() < 1e-4, "{layout}: facing ({fx}, {fz})");
}

#[test]
fn kinect_v1_hand_made_pose_maps() {
    use body::*;
    let place = [
        ("HipCenter", PELVIS),
        ("Spine", SPINE),
        ("ShoulderCenter", NECK),
        ("Head", HEAD),
        ("ShoulderLeft", L_SH),
        ("ElbowLeft", L_EL),
        ("WristLeft", L_WR),
        ("HandLeft", L_HAND),
        ("ShoulderRight", right(L_SH)),
        ("ElbowRight", right(L_EL)),
        ("WristRight", right(L_WR)),
        ("HandRight", right(L_HAND)),
        ("HipLeft", L_HIP),
        ("KneeLeft", L_KNEE),
        ("AnkleLeft", L_ANKLE),
        ("FootLeft", L_FOOT),
        ("HipRight", right(L_HIP)),
        ("KneeRight", right(L_KNEE)),
        ("AnkleRight", right(L_ANKLE)),
        ("FootRight", right(L_FOOT)),
    ];
    check_hand_made(Layout::KinectV1, &place, |p| p);
}

#[test]
fn kinect_v2_hand_made_pose_maps() {
    use body::*;
    let place = [
        ("SpineBase", PELVIS),
        ("SpineMid", SPINE),
        ("Neck", [0.0, 1.56, 0.0]),
        ("Head", HEAD),
        ("ShoulderLeft", L_SH),
        ("ElbowLeft", L_EL),
        ("WristLeft", L_WR),
        ("HandLeft", L_HAND),
        ("ShoulderRight", right(L_SH)),
        ("ElbowRight", right(L_EL)),
        ("WristRight", right(L_WR)),
        ("HandRight", right(L_HAND)),
        ("HipLeft", L_HIP),
        ("KneeLeft", L_KNEE),
        ("AnkleLeft", L_ANKLE),
        ("FootLeft", L_FOOT),
        ("HipRight", right(L_HIP)),
        ("KneeRight", right(L_KNEE)),
        ("AnkleRight", right(L_ANKLE)),
        ("FootRight", right(L_FOOT)),
        ("SpineShoulder", NECK),
        ("HandTipLeft", L_TIP),
        ("ThumbLeft", L_THUMB),
        ("HandTipRight", right(L_TIP)),
        ("ThumbRight", right(L_THUMB)),
    ];
    check_hand_made(Layout::KinectV2, &place, |p| p);
}

#[test]
fn smpl_hand_made_pose_maps() {
    use body::*;
    let place = [
        ("pelvis", PELVIS),
        ("left_hip", L_HIP),
        ("right_hip", right(L_HIP)),
        ("spine1", [0.0, 1.1, 0.0]),
        ("left_knee", L_KNEE),
        ("right_knee", right(L_KNEE)),
        ("spine2", SPINE),
        ("left_ankle", L_ANKLE),
        ("right_ankle", right(L_ANKLE)),
        ("spine3", CHEST),
        ("left_foot", L_FOOT),
        ("right_foot", right(L_FOOT)),
        ("neck", NECK),
        ("left_collar", L_CLAV),
        ("right_collar", right(L_CLAV)),
        ("head", HEAD),
        ("left_shoulder", L_SH),
        ("right_shoulder", right(L_SH)),
        ("left_elbow", L_EL),
        ("right_elbow", right(L_EL)),
        ("left_wrist", L_WR),
        ("right_wrist", right(L_WR)),
        ("left_hand", L_HAND),
        ("right_hand", right(L_HAND)),
    ];
    check_hand_made(Layout::Smpl, &place, |p| p);
}

#[test]
fn h36m_hand_made_pose_maps_from_z_up_millimetres() {
    use body::*;
    let place = [
        ("Hip", PELVIS),
        ("RHip", right(L_HIP)),
        ("RKnee", right(L_KNEE)),
        ("RFoot", right(L_ANKLE)),
        ("LHip", L_HIP),
        ("LKnee", L_KNEE),
        ("LFoot", L_ANKLE),
        ("Spine", SPINE),
        ("Thorax", NECK),
        ("Neck/Nose", NOSE),
        ("Head", HEAD),
        ("LShoulder", L_SH),
        ("LElbow", L_EL),
        ("LWrist", L_WR),
        ("RShoulder", right(L_SH)),
        ("RElbow", right(L_EL)),
        ("RWrist", right(L_WR)),
    ];
    // Human3.6M's world frame: z up, millimetres. A y-up point (x, y, z) is (x, -z, y) there
    // (a proper rotation: facing +z becomes facing -y, left stays left).
    check_hand_made(Layout::H36m, &place, |[x, y, z]| {
        [1000.0 * x, -1000.0 * z, 1000.0 * y]
    });
}
