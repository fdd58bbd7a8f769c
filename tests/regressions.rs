//! Regression tests for the defects of issue #13 (hostile files found by fuzzing): each test
//! writes the hand-made file and checks that loading it gives a clear error naming the file
//! (or works), never a panic, an abort, a huge allocation or a silently wrong result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use haad::detect::{Detector, Embedder, EvalConfig, InputSpec, RawDctConfig, Scoring};
use haad::diffusion::{DiffusionConfig, DiffusionModel};
use haad::gcn::{EncoderConfig, EncoderModel};
use haad::motion::limits::{MAX_EMBEDDING_ABS, MAX_JOINTS, MAX_SEEDS};
use haad::motion::{load, Clip, DataFormat, Dataset, Motion, Skeleton};
use ndarray::Array3;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-regress-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Two joints (3 + 0 channels), two frames.
const BVH: &str = "HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 3 Xposition Yposition Zposition
  JOINT B
  {
    OFFSET 0 1 0
    CHANNELS 0
  }
}
MOTION
Frames: 2
Frame Time: 0.04
0 0 0
1 0 0
";

/// Writes `text` as `DIR/name` and loads it as BVH; the error text or the dataset.
fn load_bvh_text(dir: &Path, name: &str, text: &str) -> Result<Dataset, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    load(DataFormat::Bvh, &path).map_err(|e| e.to_string())
}

#[test]
fn bvh_control_file_loads() {
    let dir = temp("bvh-ok");
    let ds = load_bvh_text(&dir, "ok.bvh", BVH).unwrap();
    assert_eq!((ds.clips().len(), ds.joints()), (1, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bvh_clip_with_a_huge_finite_coordinate_is_skipped() {
    // 3e38 is finite in f32, but its root-relative difference and DCT are not: found by the
    // fuzz harness's dataset probe.
    let dir = temp("bvh-huge-coordinate");
    let text = BVH.replace("1 0 0\n", "3e38 0 0\n");
    let ds = load_bvh_text(&dir, "h.bvh", &text).unwrap();
    assert!(ds.clips().is_empty());
    assert_eq!(ds.skipped().len(), 1);
    assert!(
        ds.skipped()[0].reason.contains("MAX_COORDINATE_ABS"),
        "{}",
        ds.skipped()[0].reason
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bvh_huge_channel_count_is_an_error_naming_the_line() {
    let dir = temp("bvh-channels");
    for n in ["18446744073709551615", "100000"] {
        let text = BVH.replace("CHANNELS 3", &format!("CHANNELS {n}"));
        let err = load_bvh_text(&dir, "ch.bvh", &text).unwrap_err();
        assert!(
            err.contains("ch.bvh:5:") && err.contains("limit"),
            "{n}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bvh_huge_frame_count_is_an_error() {
    let dir = temp("bvh-frames");
    // Above the limit: refused at the `Frames:` line.
    let text = BVH.replace("Frames: 2", "Frames: 18446744073709551615");
    let err = load_bvh_text(&dir, "f.bvh", &text).unwrap_err();
    assert!(err.contains("f.bvh:13:") && err.contains("limit"), "{err}");
    // Within the limit but not in the file: nothing is reserved for it, the file is truncated.
    let text = BVH.replace("Frames: 2", "Frames: 9999999");
    let err = load_bvh_text(&dir, "f.bvh", &text).unwrap_err();
    assert!(err.contains("announces 9999999 frames, found 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bvh_tiny_frame_time_is_an_error_naming_the_file() {
    let dir = temp("bvh-frametime");
    let text = BVH.replace("Frame Time: 0.04", "Frame Time: 1e-300");
    let err = load_bvh_text(&dir, "t.bvh", &text).unwrap_err();
    assert!(
        err.contains("t.bvh:14:") && err.contains("frame time"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A chain of `depth` nested joints, each with one channel.
fn nested(depth: usize) -> String {
    let mut s = String::from("HIERARCHY\nROOT j0\n{\nOFFSET 0 0 0\nCHANNELS 1 Xposition\n");
    for i in 1..depth {
        s.push_str(&format!(
            "JOINT j{i}\n{{\nOFFSET 0 1 0\nCHANNELS 1 Xrotation\n"
        ));
    }
    s.push_str(&"}\n".repeat(depth));
    s.push_str("MOTION\nFrames: 1\nFrame Time: 0.04\n");
    s.push_str(&vec!["1"; depth].join(" "));
    s.push('\n');
    s
}

#[test]
fn deeply_nested_bvh_is_parsed_without_recursion_or_refused() {
    let dir = temp("bvh-deep");
    // 20,000 nested joints (1 MB): above the joint limit, a clear error, no stack overflow.
    let err = load_bvh_text(&dir, "deep.bvh", &nested(20_000)).unwrap_err();
    assert!(
        err.contains("deep.bvh") && err.contains(&MAX_JOINTS.to_string()),
        "{err}"
    );
    // At the limit the chain loads, and its parents are the chain.
    let ds = load_bvh_text(&dir, "deep.bvh", &nested(MAX_JOINTS)).unwrap();
    let parents = ds.skeleton().parents();
    assert_eq!(parents.len(), MAX_JOINTS);
    assert!(parents[1..].iter().enumerate().all(|(i, p)| *p == Some(i)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn many_bvh_roots_load_and_too_many_are_refused() {
    let dir = temp("bvh-roots");
    let roots = |n: usize| {
        let mut s = String::from("HIERARCHY\n");
        for i in 0..n {
            let ch = if i == 0 {
                "CHANNELS 3 Xposition Yposition Zposition"
            } else {
                "CHANNELS 0"
            };
            s.push_str(&format!("ROOT r{i}\n{{\nOFFSET {i} 0 0\n{ch}\n}}\n"));
        }
        s + "MOTION\nFrames: 2\nFrame Time: 0.04\n0 0 0\n1 0 0\n"
    };
    let ds = load_bvh_text(&dir, "roots.bvh", &roots(MAX_JOINTS)).unwrap();
    // Root detection walks every joint: r0 is the one that moves.
    assert_eq!(ds.skeleton().root(), 0);
    assert_eq!(ds.skeleton().breadth_first().len(), MAX_JOINTS);
    let err = load_bvh_text(&dir, "roots.bvh", &roots(MAX_JOINTS + 1)).unwrap_err();
    assert!(err.contains("roots.bvh") && err.contains("joints"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn long_skeleton_chain_is_checked_and_ordered() {
    // The 3 MB skeleton.json chain of the issue, at the joint limit: a property check of the
    // (now linear) cycle check and breadth-first order.
    let n = MAX_JOINTS;
    let names: Vec<String> = (0..n).map(|i| format!("j{i}")).collect();
    // Parents after children (j_i's parent is j_{i+1}); the last joint is the tree root.
    let parents: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let json = serde_json::json!({"names": names, "parents": parents, "root": 0}).to_string();
    let s: Skeleton = serde_json::from_str(&json).unwrap();
    let order = s.breadth_first();
    assert_eq!(order, (0..n).rev().collect::<Vec<_>>());
    // A cycle at the bottom of the long chain is found.
    let mut cyclic = parents.clone();
    cyclic[n - 1] = Some(0);
    let err = Skeleton::new(names.clone(), cyclic, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cycle"), "{err}");
    // Above the limit: refused.
    let mut more = names;
    more.push("extra".into());
    let err = Skeleton::new(more, vec![None; n + 1], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit"), "{err}");
}

/// A version-1 `.npy` header for `shape` of little-endian f32, padded as NumPy pads it.
fn npy_header(shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

#[test]
fn npy_header_asking_for_terabytes_is_an_error() {
    let dir = temp("npy-huge");
    let cat = dir.join("walk");
    std::fs::create_dir_all(&cat).unwrap();
    // A 12 KB file whose header asks for 10^7 x 10^4 x 3 f32 (1.2 TB).
    let mut bytes = npy_header("(10000000, 10000, 3)");
    bytes.resize(12_000, 0);
    std::fs::write(cat.join("clip.npy"), &bytes).unwrap();
    let err = load(DataFormat::Folder, &dir).unwrap_err().to_string();
    assert!(
        err.contains("clip.npy") && err.contains("bytes of data"),
        "{err}"
    );
    // A shape above the limits, and one whose byte count overflows.
    for shape in [
        "(1, 18446744073709551615, 3)",
        "(18446744073709551615, 3, 3)",
    ] {
        std::fs::write(cat.join("clip.npy"), npy_header(shape)).unwrap();
        let err = load(DataFormat::Folder, &dir).unwrap_err().to_string();
        assert!(err.contains("clip.npy") && err.contains("limit"), "{err}");
    }
    // The control: a header whose data is all there loads.
    let mut ok = npy_header("(2, 1, 3)");
    for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
        ok.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(cat.join("clip.npy"), ok).unwrap();
    let ds = load(DataFormat::Folder, &dir).unwrap();
    assert_eq!(ds.clips()[0].motion.data()[[1, 0, 2]], 6.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn small_encoder() -> EncoderConfig {
    EncoderConfig {
        joints: 3,
        frames: 12,
        dct_coefficients: 4,
        hidden: 8,
        blocks: 1,
        ..Default::default()
    }
}

/// Replaces the first value of tensor `name` in a safetensors file by `value`.
fn poison(path: &Path, name: &str, value: f32) {
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = value;
    let back = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), back);
    candle_core::safetensors::save(&tensors, path).unwrap();
}

#[test]
fn encoder_files_are_checked_on_load() {
    let dir = temp("encoder");
    let dev = Device::Cpu;
    EncoderModel::new(&small_encoder(), 1, &dev)
        .unwrap()
        .save(&dir)
        .unwrap();
    assert!(EncoderModel::load(&dir, &dev).is_ok());
    let json = std::fs::read_to_string(dir.join("encoder.json")).unwrap();
    // A frame count that would build a huge DCT matrix.
    let huge = json.replace("\"frames\": 12", "\"frames\": 10000000000");
    std::fs::write(dir.join("encoder.json"), huge).unwrap();
    let err = EncoderModel::load(&dir, &dev).unwrap_err().to_string();
    assert!(
        err.contains("encoder.json") && err.contains("frames") && err.contains("limit"),
        "{err}"
    );
    // An unknown field.
    let extra = json.replace("\"frames\": 12", "\"frames\": 12, \"frame\": 60");
    std::fs::write(dir.join("encoder.json"), extra).unwrap();
    let err = EncoderModel::load(&dir, &dev).unwrap_err().to_string();
    assert!(
        err.contains("encoder.json") && err.contains("unknown field"),
        "{err}"
    );
    std::fs::write(dir.join("encoder.json"), &json).unwrap();
    // A finite weight so large that the output overflows the embedding limit: loads (weights
    // of trained models vary too much in scale for a bound), but embedding is an error, not a
    // silent score of inf.
    let clean = std::fs::read(dir.join("encoder.safetensors")).unwrap();
    poison(&dir.join("encoder.safetensors"), "gc7.bias", 3e38);
    let model = EncoderModel::load(&dir, &dev).unwrap();
    let clip = Motion::new(Array3::from_elem((12, 3, 3), 0.5), None).unwrap();
    let err = model.embed(&[clip]).unwrap_err().to_string();
    assert!(err.contains("non-finite output"), "{err}");
    std::fs::write(dir.join("encoder.safetensors"), clean).unwrap();
    // An infinite weight.
    poison(
        &dir.join("encoder.safetensors"),
        "gc1.weight",
        f32::INFINITY,
    );
    let err = EncoderModel::load(&dir, &dev).unwrap_err().to_string();
    assert!(
        err.contains("encoder.safetensors") && err.contains("non-finite") && err.contains("gc1"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn small_generator() -> DiffusionConfig {
    DiffusionConfig {
        joints: 2,
        frames: 8,
        t_his: 4,
        n_pre: 5,
        d_model: 8,
        heads: 2,
        layers: 2,
        diffusion_steps: 20,
        ddim_steps: 5,
        ..Default::default()
    }
}

/// The error of loading the generator in `dir`.
fn load_err(dir: &Path) -> String {
    match DiffusionModel::load(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn generator_files_are_checked_on_load() {
    let dir = temp("generator");
    let dev = Device::Cpu;
    let cfg = small_generator().check().unwrap();
    DiffusionModel::new(&cfg, 1, &dev)
        .unwrap()
        .save(&dir)
        .unwrap();
    assert!(DiffusionModel::load(&dir, &dev).is_ok());
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    // A width the weights do not have: refused before a model of that width is built.
    let wide = json.replace("\"d_model\": 8", "\"d_model\": 16384");
    std::fs::write(dir.join("config.json"), wide).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("config.json"),
        "{err}"
    );
    // An unknown field, in the config and in its schedule.
    for extra in [
        json.replace("\"d_model\": 8", "\"d_model\": 8, \"d_modle\": 8"),
        json.replace("\"kind\": \"cosine\"", "\"kind\": \"cosine\", \"t\": 3"),
    ] {
        assert_ne!(extra, json);
        std::fs::write(dir.join("config.json"), extra).unwrap();
        let err = load_err(&dir);
        assert!(
            err.contains("config.json") && err.contains("unknown field"),
            "{err}"
        );
    }
    let huge = json.replace("\"d_model\": 8", "\"d_model\": 100000000");
    std::fs::write(dir.join("config.json"), huge).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("config.json") && err.contains("d_model") && err.contains("limit"),
        "{err}"
    );
    std::fs::write(dir.join("config.json"), &json).unwrap();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &dev).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    poison(&dir.join("model.safetensors"), names[0], f32::NAN);
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("non-finite"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn wave(freq: f32, frames: usize) -> Motion {
    let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, c)| {
        (t as f32 * freq).cos() * (j + 1) as f32 + c as f32
    });
    Motion::new(a, None).unwrap()
}

fn saved_detector(dir: &Path) {
    let embedder = Embedder::RawDct(
        RawDctConfig {
            frames: 20,
            coefficients: 4,
        }
        .check()
        .unwrap(),
    );
    let input = InputSpec {
        joints: 3,
        root: 0,
        min_frames: 1,
    };
    let clips = [wave(0.1, 30), wave(0.2, 25), wave(0.3, 20)];
    Detector::fit(embedder, input, Scoring::MeanDistance, &clips, None)
        .unwrap()
        .save(dir)
        .unwrap();
}

#[test]
fn detector_files_are_checked_on_load() {
    let dir = temp("detector");
    saved_detector(&dir);
    let clean = Detector::load(&dir).unwrap();
    let json = std::fs::read_to_string(dir.join("detector.json")).unwrap();
    let broken = [
        // A DCT of 10^10 frames.
        json.replace("\"frames\": 20", "\"frames\": 10000000000"),
        // An unknown field.
        json.replace("\"min_frames\": 1", "\"min_frames\": 1, \"max_frames\": 9"),
        // A root outside the joints: a config error of `Detector::new`.
        json.replace("\"root\": 0", "\"root\": 7"),
        // A joint count whose embedding width overflows.
        json.replace("\"joints\": 3", "\"joints\": 18446744073709551615"),
    ];
    for text in broken {
        assert_ne!(text, json);
        std::fs::write(dir.join("detector.json"), &text).unwrap();
        let err = Detector::load(&dir).unwrap_err().to_string();
        assert!(err.contains("detector.json"), "{err}");
    }
    std::fs::write(dir.join("detector.json"), &json).unwrap();
    // A support embedding of 3e38 would make every score 1e38; an infinite one, inf.
    for v in [3e38, f32::INFINITY, f32::NAN, -2.0 * MAX_EMBEDDING_ABS] {
        saved_detector(&dir);
        poison(&dir.join("support.safetensors"), "embeddings", v);
        let err = Detector::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("support.safetensors") && err.contains("embedding 0"),
            "{v}: {err}"
        );
    }
    saved_detector(&dir);
    assert_eq!(Detector::load(&dir).unwrap(), clean);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn native_loader_skips_non_finite_clips() {
    let dir = temp("native-nan");
    let skeleton = Skeleton::new(vec!["a".into(), "b".into()], vec![None, Some(0)], 0).unwrap();
    let clip = |bad: bool, source: &str| {
        let mut a = Array3::from_elem((4, 2, 3), 0.5f32);
        a[[3, 1, 2]] = 1.0;
        if bad {
            a[[2, 1, 0]] = f32::NAN;
        }
        Clip {
            motion: Motion::new(a, Some(30.0)).unwrap(),
            category: 0,
            source: source.into(),
        }
    };
    let ds = Dataset::new(
        skeleton,
        vec!["walk".into()],
        vec![clip(false, "good.bvh"), clip(true, "bad.bvh")],
        vec![],
    )
    .unwrap();
    let path = dir.join("d.safetensors");
    ds.save(&path).unwrap();
    let back = load(DataFormat::Native, &path).unwrap();
    assert_eq!(back.clips().len(), 1);
    assert_eq!(back.clips()[0].source, PathBuf::from("good.bvh"));
    let skipped = back.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, PathBuf::from("bad.bvh"));
    assert!(
        skipped[0].reason.contains("non-finite") && skipped[0].reason.contains("frame 2"),
        "{}",
        skipped[0].reason
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_bandai_labels_are_named() {
    let dir = temp("bandai-dup");
    std::fs::create_dir_all(dir.join("cfg")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("cfg/content_label.txt"), "walk\nrun\n\nwalk\n").unwrap();
    std::fs::write(dir.join("cfg/style_label.txt"), "normal\n").unwrap();
    std::fs::write(dir.join("data/x.bvh"), BVH).unwrap();
    std::fs::write(dir.join("data/x.json"), r#"{"content": 1, "style": 0}"#).unwrap();
    let err = load(DataFormat::Bandai, &dir).unwrap_err().to_string();
    assert!(
        err.contains("content_label.txt:4:") && err.contains("line 1"),
        "{err}"
    );
    // The control: distinct labels load.
    std::fs::write(dir.join("cfg/content_label.txt"), "walk\nrun\n").unwrap();
    let ds = load(DataFormat::Bandai, &dir).unwrap();
    assert_eq!(ds.categories()[ds.clips()[0].category], "run");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluation_seeds_are_bounded() {
    let c = EvalConfig {
        seeds: MAX_SEEDS + 1,
        ..Default::default()
    };
    let err = c.check().unwrap_err().to_string();
    assert!(err.contains("seeds") && err.contains("limit"), "{err}");
    let c = EvalConfig {
        seeds: MAX_SEEDS,
        ..Default::default()
    };
    assert!(c.check().is_ok());
}

#[test]
fn shipped_models_and_data_still_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ds = load(
        DataFormat::Native,
        root.join("data/bandai/bandai-ds2-60f.safetensors"),
    )
    .unwrap();
    assert!(!ds.clips().is_empty());
    let enc = EncoderModel::load(&root.join("models/bandai/encoder"), &Device::Cpu).unwrap();
    assert_eq!(enc.config().joints, ds.joints());
    let text =
        std::fs::read_to_string(root.join("models/bandai/encoder/train_config.json")).unwrap();
    serde_json::from_str::<haad::contrastive::TrainConfig>(&text).unwrap();
    DiffusionModel::load(&root.join("models/bandai/generator"), &Device::Cpu).unwrap();
}

#[test]
fn dataset_stats_ends_quietly_on_a_closed_pipe() {
    // Examples are built before the tests run: target/<profile>/examples/dataset_stats.
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin = examples.join(format!("dataset_stats{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} not built", bin.display());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bandai/bandai-ds2-60f.safetensors");
    let mut child = std::process::Command::new(&bin)
        .args(["--format", "native", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: every write of the program meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
