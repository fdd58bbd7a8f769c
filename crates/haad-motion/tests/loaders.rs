//! Loaders on small files written by the tests: labels, skeletons, skipped clips, values.

use std::path::{Path, PathBuf};

use haad_motion::io::{self, DataFormat};
use ndarray::Array3;
use ndarray_npy::write_npy;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haad-loaders-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Frame t, joint j, axis c holds `base + t + j / 100 + c / 1000`.
fn ramp(frames: usize, joints: usize, base: f64) -> Array3<f64> {
    Array3::from_shape_fn((frames, joints, 3), |(t, j, c)| {
        base + t as f64 + j as f64 / 100.0 + c as f64 / 1000.0
    })
}

fn names_of(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn humanact12_labels_from_the_a_code() {
    let dir = temp("ha12");
    write_npy(
        dir.join("P01G01R01F0069T0143A0102.npy"),
        &ramp(5, 24, 1.0).mapv(|v| v as f32),
    )
    .unwrap();
    write_npy(dir.join("P02G01R01F0001T0040A1201.npy"), &ramp(7, 24, 2.0)).unwrap();
    write_npy(dir.join("P03G01R01F0001T0040A1203.npy"), &ramp(3, 24, 3.0)).unwrap();
    write_npy(dir.join("P04G01R01F0001T0040A1301.npy"), &ramp(3, 24, 3.0)).unwrap();
    write_npy(
        dir.join("P05G01R01F0001T0040A0501.npy"),
        &Array3::<f32>::zeros((3, 24, 3)),
    )
    .unwrap();
    write_npy(dir.join("mean.npy"), &ramp(3, 24, 3.0)).unwrap();
    std::fs::write(dir.join("README.txt"), "not a clip").unwrap();
    let ds = io::load(DataFormat::HumanAct12, &dir).unwrap();
    assert_eq!(ds.categories().len(), 12);
    assert_eq!(ds.categories()[1], "walk");
    assert_eq!(ds.categories()[11], "throw");
    let mut counts = vec![0; 12];
    counts[0] = 1;
    counts[11] = 2;
    assert_eq!(ds.counts(), counts);
    assert_eq!(ds.skeleton().names()[ds.skeleton().root()], "pelvis");
    let c = &ds.clips()[1];
    assert_eq!(c.category, 11);
    assert_eq!(c.motion.frames(), 7);
    assert_eq!(c.motion.fps(), None);
    // f64 input is read and stored as f32.
    assert_eq!(
        c.motion.data()[[6, 23, 2]],
        (2.0 + 6.0 + 0.23 + 0.002) as f32
    );
    let skipped: Vec<PathBuf> = ds.skipped().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        names_of(&skipped),
        [
            "P04G01R01F0001T0040A1301.npy",
            "P05G01R01F0001T0040A0501.npy",
            "mean.npy"
        ]
    );
    assert!(ds.skipped()[0].reason.contains("A13"));
    assert!(ds.skipped()[1].reason.contains("zero"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn msr_skips_zero_nan_empty_and_misnamed_files() {
    let dir = temp("msr");
    let rows = |frames: usize, v: &str| -> String {
        (0..frames * 20)
            .map(|i| format!("{i}e-3 {v} 2.5 1\n"))
            .collect()
    };
    std::fs::write(dir.join("a03_s01_e01_skeleton3D.txt"), rows(2, "0.5")).unwrap();
    std::fs::write(
        dir.join("a20_s10_e03_skeleton3D.txt"),
        rows(3, "0.5") + "\n\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a13_s09_e02_skeleton3D.txt"),
        "0 0 0 0\n".repeat(40),
    )
    .unwrap();
    std::fs::write(dir.join("a01_s01_e02_skeleton3D.txt"), rows(1, "nan")).unwrap();
    std::fs::write(dir.join("a01_s01_e03_skeleton3D.txt"), "").unwrap();
    std::fs::write(dir.join("a21_s01_e01_skeleton3D.txt"), rows(1, "0.5")).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    std::fs::write(dir.join("PROVENANCE.md"), "ignored").unwrap();
    let ds = io::load(DataFormat::Msr, &dir).unwrap();
    assert_eq!(ds.clips().len(), 2);
    assert_eq!(ds.clips()[0].category, 2);
    assert_eq!(ds.clips()[1].category, 19);
    assert_eq!(ds.clips()[1].motion.frames(), 3);
    // Row 2 of frame 1 (line 23) is joint 2: x = 22e-3, y = 0.5, z = 2.5; confidence dropped.
    let m = ds.clips()[1].motion.data();
    assert_eq!(
        [m[[1, 2, 0]], m[[1, 2, 1]], m[[1, 2, 2]]],
        [0.022, 0.5, 2.5]
    );
    let reasons: Vec<(String, &str)> = ds
        .skipped()
        .iter()
        .map(|s| {
            (
                names_of(std::slice::from_ref(&s.path))[0].clone(),
                s.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    let find = |n: &str| reasons.iter().find(|r| r.0 == n).unwrap().1;
    assert!(find("a01_s01_e02_skeleton3D.txt").contains("non-finite"));
    assert!(find("a01_s01_e03_skeleton3D.txt").contains("empty"));
    assert!(find("a13_s09_e02_skeleton3D.txt").contains("zero"));
    assert!(find("a21_s01_e01_skeleton3D.txt").contains("outside"));
    assert!(find("notes.txt").contains("does not fit"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn folder_of_npy_with_and_without_skeleton_json() {
    let dir = temp("folder-npy");
    for (cat, clip, base) in [("walk", "b", 1.0), ("walk", "a", 2.0), ("jump", "c", 3.0)] {
        std::fs::create_dir_all(dir.join(cat)).unwrap();
        let a = ramp(4, 3, base);
        if clip == "a" {
            write_npy(
                dir.join(cat).join(format!("{clip}.npy")),
                &a.mapv(|v| v as f32),
            )
            .unwrap();
        } else {
            write_npy(dir.join(cat).join(format!("{clip}.npy")), &a).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("walk/notes.txt"), "ignored").unwrap();
    let ds = io::load(DataFormat::Folder, &dir).unwrap();
    assert_eq!(ds.categories(), ["jump", "walk"]);
    assert_eq!(ds.skeleton().names(), ["j0", "j1", "j2"]);
    assert_eq!(ds.skeleton().root(), 0);
    assert_eq!(ds.skeleton().bones(), vec![]);
    let order: Vec<PathBuf> = ds.clips().iter().map(|c| c.source.clone()).collect();
    assert_eq!(names_of(&order), ["c.npy", "a.npy", "b.npy"]);
    assert_eq!(ds.clips()[1].motion.data()[[0, 0, 0]], 2.0);
    assert_eq!(ds.skipped().len(), 1);
    assert!(ds.skipped()[0].path.ends_with("empty"));

    std::fs::write(
        dir.join("skeleton.json"),
        r#"{"names": ["spine", "pelvis", "head"], "parents": [1, null, 0], "root": 1}"#,
    )
    .unwrap();
    let ds = io::load(DataFormat::Folder, &dir).unwrap();
    assert_eq!(ds.skeleton().names()[ds.skeleton().root()], "pelvis");
    assert_eq!(ds.skeleton().bones(), vec![(0, 1), (2, 0)]);

    std::fs::write(
        dir.join("skeleton.json"),
        r#"{"names": ["a", "b", "c"], "parents": [1, 0, null]}"#,
    )
    .unwrap();
    let err = io::load(DataFormat::Folder, &dir).unwrap_err().to_string();
    assert!(
        err.contains("skeleton.json") && err.contains("cycle"),
        "{err}"
    );
    std::fs::write(dir.join("skeleton.json"), r#"{"names": ["a", "b"]}"#).unwrap();
    let err = io::load(DataFormat::Folder, &dir).unwrap_err().to_string();
    assert!(err.contains(".npy") && err.contains("2 joints"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A two-joint BVH: a dummy `Root` that stays put and `Pelvis` translating along x by `step`
/// per frame, with a child `Head` one unit above it.
fn dummy_root_bvh(frames: usize, step: f64) -> String {
    let mut s = String::from(
        "HIERARCHY\nROOT Root\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n \
         JOINT Pelvis\n {\n  OFFSET 0 1 0\n  CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation\n  \
         JOINT Head\n  {\n   OFFSET 0 1 0\n   CHANNELS 3 Zrotation Yrotation Xrotation\n   \
         End Site\n   {\n    OFFSET 0 0.2 0\n   }\n  }\n }\n}\nMOTION\n",
    );
    s += &format!("Frames: {frames}\nFrame Time: 0.0166667\n");
    for t in 0..frames {
        s += &format!("0 0 0 {} 1 0 0 0 0 0 0 0\n", t as f64 * step);
    }
    s
}

#[test]
fn bvh_folders_detect_the_moving_root() {
    let dir = temp("folder-bvh");
    for (cat, name, step) in [
        ("left", "x.bvh", 0.5),
        ("right", "y.bvh", -0.5),
        ("right", "z.bvh", 0.1),
    ] {
        std::fs::create_dir_all(dir.join(cat)).unwrap();
        std::fs::write(dir.join(cat).join(name), dummy_root_bvh(5, step)).unwrap();
    }
    let ds = io::load(DataFormat::Folder, &dir).unwrap();
    assert_eq!(ds.categories(), ["left", "right"]);
    assert_eq!(ds.counts(), vec![1, 2]);
    let s = ds.skeleton();
    assert_eq!(s.names(), ["Root", "Pelvis", "Head"]);
    assert_eq!(s.names()[s.root()], "Pelvis");
    let m = &ds.clips()[0].motion;
    assert_eq!(m.fps(), Some(60.0));
    assert_eq!(m.data()[[4, 2, 0]], 2.0);
    assert_eq!(m.data()[[4, 2, 1]], 2.0);

    // The bvh format reads the same folder with the same categories ...
    let same = io::load(DataFormat::Bvh, &dir).unwrap();
    assert_eq!(same, ds);
    // ... and one file as one clip whose category is the folder holding it.
    let one = io::load(DataFormat::Bvh, dir.join("right/z.bvh")).unwrap();
    assert_eq!(one.categories(), ["right"]);
    assert_eq!(one.clips().len(), 1);

    // A hierarchy that differs from the first file's is an error naming both files.
    std::fs::write(
        dir.join("right/z.bvh"),
        dummy_root_bvh(5, 0.1).replace("Head", "Neck"),
    )
    .unwrap();
    let err = io::load(DataFormat::Folder, &dir).unwrap_err().to_string();
    assert!(
        err.contains("z.bvh") && err.contains("x.bvh") && err.contains("Neck"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn native_file_round_trips_a_loaded_folder() {
    let dir = temp("native");
    std::fs::create_dir_all(dir.join("hop")).unwrap();
    std::fs::create_dir_all(dir.join("skip")).unwrap();
    std::fs::write(dir.join("hop/a.bvh"), dummy_root_bvh(6, 0.3)).unwrap();
    std::fs::write(dir.join("skip/b.bvh"), dummy_root_bvh(3, -0.2)).unwrap();
    let ds = io::load(DataFormat::Folder, &dir).unwrap();
    let file = dir.join("data.safetensors");
    ds.save(&file).unwrap();
    let back = io::load(DataFormat::Native, &file).unwrap();
    assert_eq!(back, ds);
    assert_eq!(back.skeleton().root(), 1);
    assert!(Path::new(&back.clips()[1].source).ends_with("skip/b.bvh"));
    std::fs::remove_dir_all(dir).unwrap();
}
