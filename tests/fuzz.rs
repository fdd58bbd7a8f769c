//! Fuzz harness: seeded mutations of real files of every format, fed to the public loaders
//! in-process (see `docs/reliability.md`).
//!
//! A case is a failure when the loader panics (caught with `catch_unwind`; a loaded dataset
//! whose clips do not prepare into finite DCT coefficients, or a loaded encoder or detector
//! that gives a non-finite embedding or score for a probe clip, counts as one), asks for one
//! allocation above [`ALLOC_LIMIT`] (a counting global allocator refuses it; the process then
//! aborts after naming the case), or runs longer than [`HANG_LIMIT`] (a watchdog thread names
//! the case and aborts). An error is a correct answer to a broken file.
//!
//! `cargo test --test fuzz` runs a few hundred cases per format; the ignored test runs as many
//! as `HAAD_FUZZ_CASES` (per format, default 10,000) from `HAAD_FUZZ_SEED` (default 1):
//! `HAAD_FUZZ_CASES=10000 cargo test --release --test fuzz -- --ignored --nocapture`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use candle_core::Device;
use haad::detect::{Detector, Embedder, InputSpec, Scoring};
use haad::diffusion::DiffusionModel;
use haad::gcn::EncoderModel;
use haad::motion::{load, DataFormat, Dataset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Largest single allocation a case may ask for.
const ALLOC_LIMIT: usize = 512 << 20;
/// Longest a case may run.
const HANG_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The guard: a counting allocator and a watchdog, both naming the running case.

struct Guard;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static CASE_FORMAT: AtomicUsize = AtomicUsize::new(usize::MAX);
static CASE_INDEX: AtomicU64 = AtomicU64::new(0);
static CASE_SEED: AtomicU64 = AtomicU64::new(0);
/// Milliseconds since [`epoch`] at which the running case started; 0 when none runs.
static CASE_START_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Writes the running case to stderr without allocating.
fn name_case(what: &str, amount: u64) {
    let f = CASE_FORMAT.load(Ordering::SeqCst);
    let name = FORMATS.get(f).map_or("?", |f| f.name);
    let _ = writeln!(
        std::io::stderr().lock(),
        "FUZZ FAILURE: {what} ({amount}) in format {name}, case {}, seed {}",
        CASE_INDEX.load(Ordering::SeqCst),
        CASE_SEED.load(Ordering::SeqCst)
    );
}

fn admit(size: usize) -> bool {
    if !ARMED.load(Ordering::Relaxed) {
        return true;
    }
    LARGEST.fetch_max(size, Ordering::Relaxed);
    if size > ALLOC_LIMIT {
        ARMED.store(false, Ordering::SeqCst);
        name_case("allocation above the limit, bytes", size as u64);
        return false;
    }
    true
}

// SAFETY: forwards to the system allocator; only refuses (returns null) oversized requests.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if admit(layout.size()) {
            System.alloc(layout)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if admit(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if admit(new_size) {
            System.realloc(ptr, layout, new_size)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

fn start_watchdog() {
    static WATCHDOG: Once = Once::new();
    WATCHDOG.call_once(|| {
        epoch();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(200));
            let start = CASE_START_MS.load(Ordering::SeqCst);
            let now = epoch().elapsed().as_millis() as u64;
            if start != 0 && now.saturating_sub(start) > HANG_LIMIT.as_millis() as u64 {
                name_case("case running longer than the limit, ms", now - start);
                std::process::abort();
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Formats: a seed folder, the file of it that is mutated, and the loader.

/// A format under test.
struct Format {
    name: &'static str,
    /// Builds the seed folder in `dir`; returns the files to mutate (one is chosen per case).
    seed: fn(&Seeds, &Path) -> Vec<PathBuf>,
    /// Loads the folder, returning whether it loaded (an error is a correct outcome).
    load: fn(&Path) -> bool,
}

const FORMATS: &[Format] = &[
    Format {
        name: "msr",
        seed: seed_msr,
        load: |d| dataset(load(DataFormat::Msr, d)),
    },
    Format {
        name: "bvh",
        seed: seed_bvh,
        load: |d| dataset(load(DataFormat::Bvh, d.join("clip.bvh"))),
    },
    Format {
        name: "bandai_labels",
        seed: seed_bandai,
        load: |d| dataset(load(DataFormat::Bandai, d)),
    },
    Format {
        name: "npy",
        seed: seed_npy,
        load: |d| dataset(load(DataFormat::Folder, d)),
    },
    Format {
        name: "skeleton_json",
        seed: seed_skeleton_json,
        load: |d| dataset(load(DataFormat::Folder, d)),
    },
    Format {
        name: "native",
        seed: seed_native,
        load: |d| dataset(load(DataFormat::Native, d.join("data.safetensors"))),
    },
    Format {
        name: "frames",
        seed: seed_frames,
        load: |d| {
            let file = std::fs::File::open(d.join("clip.csv")).expect("the case file");
            haad::deploy::frames::read_recording(std::io::BufReader::new(file), "clip.csv").is_ok()
        },
    },
    Format {
        name: "encoder",
        seed: seed_encoder,
        load: |d| {
            EncoderModel::load(d, &Device::Cpu)
                .map(|m| {
                    let clip = probe(m.config().frames, m.config().joints);
                    if let Ok(e) = m.embed(&[clip]) {
                        assert!(e.iter().all(|v| v.is_finite()), "non-finite embedding");
                    }
                })
                .is_ok()
        },
    },
    Format {
        name: "generator",
        seed: seed_generator,
        load: |d| DiffusionModel::load(d, &Device::Cpu).is_ok(),
    },
    Format {
        name: "detector",
        seed: seed_detector,
        load: |d| {
            Detector::load(d)
                .map(|det| {
                    if let Ok(score) = det.score(&probe(75, det.input().joints)) {
                        assert!(score.is_finite(), "non-finite score {score}");
                    }
                })
                .is_ok()
        },
    },
];

/// Whether a dataset loaded; a loaded one must prepare into finite DCT coefficients (the
/// method's input) for every clip, or the case fails.
fn dataset(result: haad::motion::Result<Dataset>) -> bool {
    let Ok(ds) = result else { return false };
    let basis = haad::motion::dct::DctBasis::new(60, 10).expect("a valid basis");
    for clip in ds.clips() {
        let prepared = haad::motion::preprocess::prepare(&clip.motion, 60, ds.skeleton().root())
            .expect("a loaded clip prepares");
        let coeffs = basis.forward(&prepared).expect("60 frames");
        assert!(
            coeffs.iter().all(|v| v.is_finite()),
            "non-finite DCT of {}",
            clip.source.display()
        );
    }
    true
}

/// A smooth clip of `frames x joints` (a wave), to use what a model file loaded into: a loaded
/// model must give finite embeddings and scores, or an error.
fn probe(frames: usize, joints: usize) -> haad::motion::Motion {
    let a = ndarray::Array3::from_shape_fn((frames.max(1), joints.max(1), 3), |(t, j, c)| {
        (t as f32 * 0.1 + j as f32).sin() * 10.0 + c as f32
    });
    haad::motion::Motion::new(a, Some(30.0)).expect("a valid shape")
}

/// Real inputs: from `../shared/data` when present, else from the repository's `data/` and
/// `models/` folders alone.
struct Seeds {
    repo: PathBuf,
    shared: Option<PathBuf>,
    /// A few clips of the embedded Bandai dataset.
    dataset: Dataset,
}

impl Seeds {
    fn new() -> Self {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let shared = repo.join("../shared/data");
        let shared = shared.is_dir().then_some(shared);
        let full = load(
            DataFormat::Native,
            repo.join("data/bandai/bandai-ds2-60f.safetensors"),
        )
        .expect("the embedded dataset loads");
        let clips = full.clips()[..3].to_vec();
        let dataset = Dataset::new(
            full.skeleton().clone(),
            full.categories().to_vec(),
            clips,
            vec![],
        )
        .expect("a subset of a valid dataset");
        Seeds {
            repo,
            shared,
            dataset,
        }
    }
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn seed_msr(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let real = s
        .shared
        .as_ref()
        .map(|d| d.join("msr_action3d/MSRAction3DSkeletonReal3D/a18_s03_e02_skeleton3D.txt"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    // Without the shared data: MSR rows (x y z confidence) from the first 20 joints of an
    // embedded clip, 5 frames.
    let text = real.unwrap_or_else(|| {
        let m = &s.dataset.clips()[0].motion;
        let mut t = String::new();
        for f in 0..5usize {
            for j in 0..20usize {
                let d = m.data();
                let (x, y, z) = (d[[f, j, 0]], d[[f, j, 1]], d[[f, j, 2]]);
                t.push_str(&format!("{x} {y} {z} 1\n"));
            }
        }
        t
    });
    vec![write(&dir.join("a18_s03_e02_skeleton3D.txt"), text)]
}

/// A real Bandai BVH cut to its first 4 frames, or one written from the embedded skeleton.
fn bvh_text(s: &Seeds) -> String {
    let real = s
        .shared
        .as_ref()
        .map(|d| d.join("bandai_namco_ds2_subset/data/dataset-2_raise-up-left-hand_active_002.bvh"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(text) = real {
        let mut out = String::new();
        let mut frames_left = None;
        for line in text.lines() {
            if line.trim_start().starts_with("Frames:") {
                out.push_str("Frames: 4\n");
                continue;
            }
            match frames_left {
                Some(0) => break,
                Some(n) => frames_left = Some(n - 1),
                None if line.trim_start().starts_with("Frame Time:") => frames_left = Some(4),
                None => {}
            }
            out.push_str(line);
            out.push('\n');
        }
        return out;
    }
    // The embedded skeleton as a BVH hierarchy (6 channels per joint, zero rotations).
    let sk = s.dataset.skeleton();
    let mut out = String::from("HIERARCHY\n");
    fn joint(out: &mut String, sk: &haad::motion::Skeleton, j: usize, depth: usize) {
        let kw = if depth == 0 { "ROOT" } else { "JOINT" };
        let pad = "  ".repeat(depth);
        out.push_str(&format!(
            "{pad}{kw} {}\n{pad}{{\n{pad}  OFFSET 0 1 0\n{pad}  CHANNELS 6 Xposition \
             Yposition Zposition Zrotation Xrotation Yrotation\n",
            sk.names()[j]
        ));
        for c in (0..sk.joints()).filter(|&c| sk.parents()[c] == Some(j)) {
            joint(out, sk, c, depth + 1);
        }
        out.push_str(&format!("{pad}}}\n"));
    }
    for r in (0..sk.joints()).filter(|&j| sk.parents()[j].is_none()) {
        joint(&mut out, sk, r, 0);
    }
    out.push_str("MOTION\nFrames: 4\nFrame Time: 0.0333333\n");
    for f in 0..4 {
        let row: Vec<String> = (0..sk.joints() * 6)
            .map(|c| format!("{}", (f * 7 + c) % 11))
            .collect();
        out.push_str(&row.join(" "));
        out.push('\n');
    }
    out
}

fn seed_bvh(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    vec![write(&dir.join("clip.bvh"), bvh_text(s))]
}

fn seed_bandai(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let cfg = |name: &str| {
        s.shared.as_ref().and_then(|d| {
            std::fs::read_to_string(d.join("bandai_namco_ds2_subset/cfg").join(name)).ok()
        })
    };
    let contents = cfg("content_label.txt").unwrap_or_else(|| s.dataset.categories().join("\n"));
    let styles = cfg("style_label.txt").unwrap_or_else(|| "normal\nactive\n".into());
    write(&dir.join("data/clip.bvh"), bvh_text(s));
    vec![
        write(&dir.join("cfg/content_label.txt"), contents),
        write(&dir.join("cfg/style_label.txt"), styles),
        write(&dir.join("data/clip.json"), r#"{"content": 7, "style": 0}"#),
    ]
}

/// A version-1 `.npy` file of f32 values of shape `[t, j, 3]`.
fn npy_bytes(values: &[f32], t: usize, j: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({t}, {j}, 3), }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn seed_npy(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let m = &s.dataset.clips()[0].motion;
    let t = 6;
    let values: Vec<f32> = m
        .data()
        .slice(ndarray::s![..t, .., ..])
        .iter()
        .copied()
        .collect();
    let m2 = &s.dataset.clips()[1].motion;
    let values2: Vec<f32> = m2
        .data()
        .slice(ndarray::s![..t, .., ..])
        .iter()
        .copied()
        .collect();
    write(&dir.join("b/other.npy"), npy_bytes(&values2, t, m.joints()));
    vec![write(
        &dir.join("a/clip.npy"),
        npy_bytes(&values, t, m.joints()),
    )]
}

fn seed_skeleton_json(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    seed_npy(s, dir);
    let json = serde_json::to_string_pretty(s.dataset.skeleton()).unwrap();
    vec![write(&dir.join("skeleton.json"), json)]
}

/// The `haad stream` frame-line format: CSV lines of a real clip (6 frames) and the same
/// frames as JSON lines.
fn seed_frames(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let m = &s.dataset.clips()[0].motion;
    let mut text = Vec::new();
    for t in 0..6 {
        let frame = m.frame(t);
        let csv: Vec<String> = frame.iter().map(|v| v.to_string()).collect();
        text.extend_from_slice(csv.join(",").as_bytes());
        text.push(b'\n');
        let json: Vec<String> = frame
            .outer_iter()
            .map(|p| format!("[{}, {}, {}]", p[0], p[1], p[2]))
            .collect();
        text.extend_from_slice(format!("[{}]\n", json.join(", ")).as_bytes());
    }
    vec![write(&dir.join("clip.csv"), text)]
}

fn seed_native(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let path = dir.join("data.safetensors");
    s.dataset.save(&path).unwrap();
    vec![path]
}

fn copy_dir(from: &Path, to: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(to).unwrap();
    let mut out = Vec::new();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if p.extension()
            .is_some_and(|e| e == "json" || e == "safetensors")
            && name != "train_config.json"
        {
            out.push(write(&to.join(name), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn seed_encoder(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    copy_dir(&s.repo.join("models/bandai/encoder"), dir)
}

fn seed_generator(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    copy_dir(&s.repo.join("models/bandai/generator"), dir)
}

fn seed_detector(s: &Seeds, dir: &Path) -> Vec<PathBuf> {
    let model = EncoderModel::load(&s.repo.join("models/bandai/encoder"), &Device::Cpu).unwrap();
    let clips: Vec<_> = s.dataset.clips().iter().map(|c| c.motion.clone()).collect();
    Detector::fit(
        Embedder::encoder(model),
        InputSpec::for_skeleton(s.dataset.skeleton()),
        Scoring::MeanDistance,
        &clips,
        None,
    )
    .unwrap()
    .save(dir)
    .unwrap();
    vec![
        dir.join("detector.json"),
        dir.join("support.safetensors"),
        dir.join("encoder/encoder.json"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "99999999999",
    "1000000",
    "-1",
    "-99999999999",
    "0",
    "-0",
    "1e308",
    "-1e308",
    "1e-300",
    "3e38",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1.5",
    "65536",
];

/// Replaces `bytes[a..b]` by `new` (memcpy-based: the test crate is not optimised).
fn splice(bytes: &mut Vec<u8>, a: usize, b: usize, new: &[u8]) {
    let mut out = Vec::with_capacity(bytes.len() - (b - a) + new.len());
    out.extend_from_slice(&bytes[..a]);
    out.extend_from_slice(new);
    out.extend_from_slice(&bytes[b..]);
    *bytes = out;
}

/// Text mutations look at a window of at most this many bytes of a large (binary) file.
const WINDOW: usize = 1 << 16;

/// A random window `[a, b)` of `bytes` (the whole of a small file).
fn window(rng: &mut StdRng, len: usize) -> (usize, usize) {
    if len <= WINDOW {
        (0, len)
    } else {
        let a = rng.random_range(0..=len - WINDOW);
        (a, a + WINDOW)
    }
}

/// Byte ranges of the number-like tokens of `bytes` (a digit among `0-9 . e E + -`).
fn number_tokens(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_num = |b: u8| b.is_ascii_digit() || b"+-.eE".contains(&b);
        if is_num(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_num(bytes[i]) {
                i += 1;
            }
            if bytes[start..i].iter().any(u8::is_ascii_digit) {
                out.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

fn replace_number(rng: &mut StdRng, bytes: &mut Vec<u8>) -> &'static str {
    let (w, e) = window(rng, bytes.len());
    let toks = number_tokens(&bytes[w..e]);
    if toks.is_empty() {
        return "no number";
    }
    let (a, b) = toks[rng.random_range(0..toks.len())];
    let n = NUMBERS[rng.random_range(0..NUMBERS.len())];
    splice(bytes, w + a, w + b, n.as_bytes());
    "number"
}

/// Line starts of `bytes`.
fn lines(bytes: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i < bytes.len())
        .collect()
}

fn line_at(bytes: &[u8], starts: &[usize], k: usize) -> (usize, usize) {
    let a = starts[k];
    let b = starts.get(k + 1).copied().unwrap_or(bytes.len());
    (a, b)
}

/// Deep nesting suited to the file: BVH joints, JSON brackets, or braces.
fn nest(rng: &mut StdRng, bytes: &mut Vec<u8>) -> &'static str {
    let depth = [50, 1_000, 20_000][rng.random_range(0..3)];
    let at = rng.random_range(0..=bytes.len());
    let text = String::from_utf8_lossy(bytes);
    let (open, close): (&str, &str) = if text.contains("JOINT") {
        ("JOINT n\n{\nOFFSET 0 0 0\nCHANNELS 0\n", "}\n")
    } else if text.contains('{') || text.contains('[') {
        ("[", "]")
    } else {
        ("{", "}")
    };
    let mut insert = open.repeat(depth);
    if rng.random_bool(0.5) {
        insert.push_str(&close.repeat(depth));
    }
    splice(bytes, at, at, insert.as_bytes());
    "nesting"
}

/// For safetensors and npy files: mutate a number of the header only, keeping its length
/// field consistent, so that the check behind the header parser is reached.
fn header_number(rng: &mut StdRng, bytes: &mut Vec<u8>) -> &'static str {
    if bytes.starts_with(b"\x93NUMPY") && bytes.len() >= 10 {
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        if 10 + len <= bytes.len() {
            let mut header = bytes[10..10 + len].to_vec();
            replace_number(rng, &mut header);
            let mut out = bytes[..8].to_vec();
            out.extend_from_slice(&(header.len().min(u16::MAX as usize) as u16).to_le_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(&bytes[10 + len..]);
            *bytes = out;
            return "npy header number";
        }
    }
    if bytes.len() >= 8 {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        if len <= bytes.len() - 8 {
            let mut header = bytes[8..8 + len].to_vec();
            replace_number(rng, &mut header);
            // safetensors pads the header with spaces to a multiple of 8.
            while !header.len().is_multiple_of(8) {
                header.push(b' ');
            }
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&header);
            out.extend_from_slice(&bytes[8 + len..]);
            *bytes = out;
            return "safetensors header number";
        }
    }
    replace_number(rng, bytes)
}

/// One seeded mutation; returns its kind.
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) -> &'static str {
    if bytes.is_empty() {
        bytes.push(rng.random());
        return "insert";
    }
    match rng.random_range(0..10) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            "bit flips"
        }
        1 => {
            let at = rng.random_range(0..bytes.len());
            bytes.truncate(at);
            "truncation"
        }
        2 | 3 => replace_number(rng, bytes),
        4 => header_number(rng, bytes),
        5 => {
            let (w, e) = window(rng, bytes.len());
            let starts = lines(&bytes[w..e]);
            let (a, b) = line_at(&bytes[w..e], &starts, rng.random_range(0..starts.len()));
            let line = bytes[w + a..w + b].to_vec();
            let times = [1, 2, 100][rng.random_range(0..3)];
            splice(bytes, w + b, w + b, &line.repeat(times));
            "duplicated line"
        }
        6 => {
            let (w, e) = window(rng, bytes.len());
            let starts = lines(&bytes[w..e]);
            let (a, b) = line_at(&bytes[w..e], &starts, rng.random_range(0..starts.len()));
            splice(bytes, w + a, w + b, &[]);
            "deleted line"
        }
        7 => nest(rng, bytes),
        8 => {
            let at = rng.random_range(0..=bytes.len());
            let n = rng.random_range(1..64);
            let garbage: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            splice(bytes, at, at, &garbage);
            "garbage"
        }
        _ => {
            let a = rng.random_range(0..bytes.len());
            let b = (a + rng.random_range(1..32)).min(bytes.len());
            let fill: u8 = [0u8, 0xff, b'9', b' '][rng.random_range(0..4)];
            bytes[a..b].fill(fill);
            "overwrite"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// What happened to the cases of one format.
#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    loaded: u64,
    errors: u64,
    panics: Vec<String>,
    largest_alloc: usize,
    slowest: Duration,
    total: Duration,
    wall: Duration,
    mutations: BTreeMap<&'static str, u64>,
}

/// Where case files are written: every case rewrites a file of up to 4 MB twice, so a RAM
/// file system (`/dev/shm`) is used where there is one and `TMPDIR` does not say otherwise.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Runs `cases` cases of every format from `seed`; returns the tallies by format.
fn run(cases: u64, seed: u64) -> Vec<(&'static str, Tally)> {
    start_watchdog();
    let seeds = Seeds::new();
    let root = scratch().join(format!("haad-fuzz-{}-{seed}", std::process::id()));
    let mut out = Vec::new();
    // `HAAD_FUZZ_FORMATS=bvh,npy` runs only those (to resume a long run format by format).
    let only: Option<Vec<String>> = std::env::var("HAAD_FUZZ_FORMATS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    for (fi, format) in FORMATS.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == format.name))
        {
            continue;
        }
        let wall = Instant::now();
        let dir = root.join(format.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let targets = (format.seed)(&seeds, &dir);
        let originals: Vec<Vec<u8>> = targets.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert!(
            (format.load)(&dir),
            "{}: the seed itself must load",
            format.name
        );
        let mut tally = Tally::default();
        let mut rng = StdRng::seed_from_u64(seed ^ (fi as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for case in 0..cases {
            let t = rng.random_range(0..targets.len());
            let mut bytes = originals[t].clone();
            let n = [1, 1, 1, 2, 3][rng.random_range(0..5)];
            for _ in 0..n {
                let kind = mutate(&mut rng, &mut bytes);
                *tally.mutations.entry(kind).or_default() += 1;
            }
            std::fs::write(&targets[t], &bytes).unwrap();
            CASE_FORMAT.store(fi, Ordering::SeqCst);
            CASE_INDEX.store(case, Ordering::SeqCst);
            CASE_SEED.store(seed, Ordering::SeqCst);
            LARGEST.store(0, Ordering::SeqCst);
            let started = Instant::now();
            CASE_START_MS.store(epoch().elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
            ARMED.store(true, Ordering::SeqCst);
            let result = catch_unwind(AssertUnwindSafe(|| (format.load)(&dir)));
            ARMED.store(false, Ordering::SeqCst);
            CASE_START_MS.store(0, Ordering::SeqCst);
            tally.slowest = tally.slowest.max(started.elapsed());
            tally.total += started.elapsed();
            tally.largest_alloc = tally.largest_alloc.max(LARGEST.load(Ordering::SeqCst));
            tally.cases += 1;
            match result {
                Ok(true) => tally.loaded += 1,
                Ok(false) => tally.errors += 1,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    tally
                        .panics
                        .push(format!("case {case} (seed {seed}, file {t}): {msg}"));
                }
            }
            std::fs::write(&targets[t], &originals[t]).unwrap();
            if (case + 1) % 1000 == 0 {
                eprintln!(
                    "fuzz {}: {} / {cases} cases, {} panics, {:.0} s",
                    format.name,
                    case + 1,
                    tally.panics.len(),
                    wall.elapsed().as_secs_f64()
                );
            }
        }
        tally.wall = wall.elapsed();
        eprintln!("fuzz done: {}", summary(format.name, &tally));
        out.push((format.name, tally));
    }
    let _ = std::fs::remove_dir_all(&root);
    out
}

/// One format's counts as JSON.
fn summary(name: &str, t: &Tally) -> serde_json::Value {
    serde_json::json!({
        "format": name, "cases": t.cases, "loaded": t.loaded, "errors": t.errors,
        "panics": t.panics.len(), "largest_allocation_bytes": t.largest_alloc,
        "slowest_case_seconds": t.slowest.as_secs_f64(),
        "total_seconds": t.total.as_secs_f64(), "wall_seconds": t.wall.as_secs_f64(),
        "mutations": t.mutations,
    })
}

/// Prints the table and JSON of a run and fails on any panic.
fn report(tallies: &[(&'static str, Tally)]) {
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>7} {:>12} {:>10} {:>9} {:>8}",
        "format",
        "cases",
        "loaded",
        "errors",
        "panics",
        "largest MiB",
        "slowest s",
        "total s",
        "wall s"
    );
    let mut json = Vec::new();
    for (name, t) in tallies {
        println!(
            "{:<14} {:>8} {:>8} {:>8} {:>7} {:>12.1} {:>10.3} {:>9.1} {:>8.1}",
            name,
            t.cases,
            t.loaded,
            t.errors,
            t.panics.len(),
            t.largest_alloc as f64 / (1 << 20) as f64,
            t.slowest.as_secs_f64(),
            t.total.as_secs_f64(),
            t.wall.as_secs_f64()
        );
        json.push(summary(name, t));
    }
    println!("{}", serde_json::Value::Array(json));
    let panics: Vec<String> = tallies
        .iter()
        .flat_map(|(n, t)| t.panics.iter().map(move |p| format!("{n}: {p}")))
        .collect();
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
}

#[test]
fn seeds_load_without_the_shared_data() {
    // What the harness falls back on where `../shared/data` is missing: the repository's own
    // data/ and models/ folders. Every seed must load unmutated.
    let mut seeds = Seeds::new();
    seeds.shared = None;
    let root = std::env::temp_dir().join(format!("haad-fuzz-seeds-{}", std::process::id()));
    for format in FORMATS {
        let dir = root.join(format.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (format.seed)(&seeds, &dir);
        assert!(
            (format.load)(&dir),
            "{}: fallback seed does not load",
            format.name
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn mutated_files_give_errors_not_panics() {
    report(&run(300, 1));
}

#[test]
#[ignore = "long run: HAAD_FUZZ_CASES per format (default 10,000), HAAD_FUZZ_SEED"]
fn long_fuzz() {
    let var = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    report(&run(
        var("HAAD_FUZZ_CASES", 10_000),
        var("HAAD_FUZZ_SEED", 1),
    ));
}
