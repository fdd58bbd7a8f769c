//! Bad input files give errors that name the file and the problem.

use std::path::{Path, PathBuf};

use haad_motion::io::{self, DataFormat};
use ndarray::{Array2, Array3};
use ndarray_npy::write_npy;

/// A fresh folder under the system temp dir, unique to this process and test.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haad-errors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `frames` frames of 20 rows `x y z c`.
fn msr_rows(frames: usize) -> String {
    (0..frames * 20)
        .map(|i| format!("{} 0.5 2.0 1.0\n", i as f32 * 0.01))
        .collect()
}

fn load_err(format: DataFormat, path: &Path) -> String {
    io::load(format, path).unwrap_err().to_string()
}

#[test]
fn truncated_msr_file() {
    let dir = temp("msr-trunc");
    let text: String = msr_rows(3)
        .lines()
        .take(47)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("a02_s01_e01_skeleton3D.txt"), text).unwrap();
    let err = load_err(DataFormat::Msr, &dir);
    assert!(err.contains("a02_s01_e01_skeleton3D.txt:47:"), "{err}");
    assert!(err.contains("truncated") && err.contains("7 rows"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn msr_file_with_a_non_numeric_token() {
    let dir = temp("msr-token");
    let mut text = msr_rows(2);
    text = text.replacen("0.5 2.0", "0.5 abc", 3); // lines 1..3; the first bad one is line 1
    let lines: Vec<&str> = text.lines().collect();
    let fixed: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i < 2 { l.replace("abc", "2.0") } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(dir.join("a01_s02_e03_skeleton3D.txt"), fixed).unwrap();
    let err = load_err(DataFormat::Msr, &dir);
    assert!(err.contains("a01_s02_e03_skeleton3D.txt:3:"), "{err}");
    assert!(
        err.contains("not a number") && err.contains("\"abc\""),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn msr_row_with_three_values() {
    let dir = temp("msr-cols");
    let text = msr_rows(1).replacen("0.5 2.0 1.0", "0.5 2.0", 1);
    std::fs::write(dir.join("a01_s01_e01_skeleton3D.txt"), text).unwrap();
    let err = load_err(DataFormat::Msr, &dir);
    assert!(
        err.contains("a01_s01_e01_skeleton3D.txt:1:") && err.contains("found 3"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const BVH: &str = "HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.033333
0 1 0 0 0 0 0 0 0
0 1 1 0 0 0 0 10 0
";

#[test]
fn bvh_with_a_missing_brace() {
    let dir = temp("bvh-brace");
    // Drop the brace closing Spine (line 14): the parser reaches the root's `}` then MOTION.
    let broken: String = BVH
        .lines()
        .enumerate()
        .filter(|&(i, _)| i != 13)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let file = dir.join("walk.bvh");
    std::fs::write(&file, broken).unwrap();
    let err = load_err(DataFormat::Bvh, &file);
    assert!(err.contains("walk.bvh:"), "{err}");
    assert!(err.contains("`}` closing joint Hips"), "{err}");
    // An opening brace missing is named too.
    std::fs::write(
        &file,
        BVH.replacen("JOINT Spine\n  {\n", "JOINT Spine\n", 1),
    )
    .unwrap();
    let err = load_err(DataFormat::Bvh, &file);
    assert!(
        err.contains("walk.bvh:7:") && err.contains("opening joint Spine"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bvh_with_a_short_frame() {
    let dir = temp("bvh-short");
    let file = dir.join("run.bvh");
    std::fs::write(&file, BVH.replace("0 1 1 0 0 0 0 10 0", "0 1 1 0 0 0 0 10")).unwrap();
    let err = load_err(DataFormat::Bvh, &file);
    assert!(
        err.contains("run.bvh:20:") && err.contains("8 values"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn npy_of_the_wrong_rank() {
    let dir = temp("npy-rank");
    let cat = dir.join("wave");
    std::fs::create_dir_all(&cat).unwrap();
    write_npy(cat.join("clip.npy"), &Array2::<f32>::ones((5, 3))).unwrap();
    let err = load_err(DataFormat::Folder, &dir);
    assert!(
        err.contains("clip.npy") && err.contains("rank 2") && err.contains("[5, 3]"),
        "{err}"
    );
    // The same through the HumanAct12 loader.
    write_npy(
        dir.join("P01G01R01F0001T0010A0101.npy"),
        &Array2::<f64>::ones((5, 3)),
    )
    .unwrap();
    let err = load_err(DataFormat::HumanAct12, &dir);
    assert!(
        err.contains("P01G01R01F0001T0010A0101.npy") && err.contains("rank 2"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn npy_with_wrong_joints_or_element_type() {
    let dir = temp("npy-joints");
    write_npy(
        dir.join("P01G01R01F0001T0010A0101.npy"),
        &Array3::<f32>::ones((4, 20, 3)),
    )
    .unwrap();
    let err = load_err(DataFormat::HumanAct12, &dir);
    assert!(err.contains("A0101.npy") && err.contains("24"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = temp("npy-type");
    let cat = dir.join("a");
    std::fs::create_dir_all(&cat).unwrap();
    write_npy(cat.join("ints.npy"), &Array3::<i32>::ones((4, 2, 3))).unwrap();
    let err = load_err(DataFormat::Folder, &dir);
    assert!(
        err.contains("ints.npy") && err.contains("neither f32 nor f64"),
        "{err}"
    );
    std::fs::write(cat.join("ints.npy"), b"\x93NUMPY garbage").unwrap();
    let err = load_err(DataFormat::Folder, &dir);
    assert!(err.contains("ints.npy") && err.contains(".npy"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn folder_clips_with_different_joint_counts() {
    let dir = temp("folder-joints");
    for (cat, j) in [("a", 3), ("b", 4)] {
        std::fs::create_dir_all(dir.join(cat)).unwrap();
        write_npy(dir.join(cat).join("x.npy"), &Array3::<f32>::ones((4, j, 3))).unwrap();
    }
    let err = load_err(DataFormat::Folder, &dir);
    assert!(err.contains("b/x.npy") && err.contains("3 joints"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bandai_clip_without_labels() {
    let dir = temp("bandai-json");
    std::fs::create_dir_all(dir.join("cfg")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("cfg/content_label.txt"), "walk\nrun").unwrap();
    std::fs::write(dir.join("cfg/style_label.txt"), "calm").unwrap();
    std::fs::write(dir.join("data/take_001.bvh"), BVH).unwrap();
    let err = load_err(DataFormat::Bandai, &dir);
    assert!(err.contains("take_001.json"), "{err}");
    std::fs::write(
        dir.join("data/take_001.json"),
        r#"{"content": 2, "style": 0}"#,
    )
    .unwrap();
    let err = load_err(DataFormat::Bandai, &dir);
    assert!(
        err.contains("take_001.json") && err.contains("content id 2 out of range"),
        "{err}"
    );
    std::fs::write(dir.join("data/take_001.json"), r#"{"content": "walk"}"#).unwrap();
    let err = load_err(DataFormat::Bandai, &dir);
    assert!(err.contains("take_001.json:1:"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_paths_are_named() {
    let missing = std::env::temp_dir().join("haad-errors-no-such-dir");
    for format in io::DataFormat::ALL {
        let err = load_err(format, &missing);
        assert!(err.contains("haad-errors-no-such-dir"), "{format}: {err}");
    }
}
