//! The README's `haad` session, run as written on the embedded data from another folder,
//! plus standard-input streaming, error lines and a closed output pipe.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use haad::deploy::frames::write_csv;
use haad::deploy::{build_recording, RecordingConfig};
use haad::detect::Detector;
use haad::motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad::motion::{preprocess::window, Dataset};

fn haad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haad"))
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bandai/bandai-ds2-60f.safetensors")
}

/// A fresh working folder (the binary must not need the source tree as its folder).
fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_session_fit_score_stream() {
    let dir = workdir("readme");
    let data = data();
    let fit = run_ok(
        haad()
            .current_dir(&dir)
            .args(["fit", "--normal"])
            .arg(&data)
            .args([
                "--category",
                "walk",
                "--take",
                "3",
                "--out",
                "walk-detector",
            ]),
    );
    assert!(fit.contains("3 clips of 22 joints"), "{fit}");
    assert!(fit.contains("from 33 normal scores"), "{fit}");
    let detector = Detector::load(&dir.join("walk-detector")).unwrap();
    let threshold = detector.calibration().unwrap().threshold;

    let score = run_ok(
        haad()
            .current_dir(&dir)
            .args(["score", "--detector", "walk-detector"])
            .arg(&data)
            .args(["--category", "run", "--take", "5", "--json"]),
    );
    let rows: serde_json::Value = serde_json::from_str(&score).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let ds = Dataset::load(&data).unwrap();
    let run = ds.category_index("run").unwrap();
    let runs: Vec<_> = ds.clips().iter().filter(|c| c.category == run).collect();
    for (r, clip) in rows.iter().zip(&runs) {
        let want = detector.score(&clip.motion).unwrap();
        assert_eq!(r["score"].as_f64().unwrap() as f32, want);
        assert_eq!(r["anomalous"].as_bool().unwrap(), want > threshold);
    }

    let stream = run_ok(
        haad()
            .current_dir(&dir)
            .args(["stream", "--detector", "walk-detector", "--build-from"])
            .arg(&data)
            .args([
                "--normal-category",
                "walk",
                "--stride",
                "10",
                "--plot",
                "walk.svg",
            ]),
    );
    let lines: Vec<&str> = stream.lines().collect();
    // The same recording the library builds: one window per 10 frames once 60 have come.
    let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &[]).unwrap();
    let walk = ds.category_index("walk").unwrap();
    let rec = build_recording(&ds, &split, walk, &RecordingConfig::default(), 0).unwrap();
    assert_eq!(lines.len(), (rec.motion.frames() - 60) / 10 + 1, "{stream}");
    assert!(lines.iter().all(|l| l.contains("score")), "{stream}");
    let svg = std::fs::read_to_string(dir.join("walk.svg")).unwrap();
    assert!(svg.contains("threshold") && svg.contains("walk"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `haad ...` lines of the README's session (continuations joined), split into words.
fn readme_commands() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let joined = readme.replace("\\\n", " ");
    joined
        .lines()
        .filter(|l| l.starts_with("haad "))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect()
}

#[test]
fn readme_session_runs_as_written() {
    // A folder holding only a link to the embedded data, as a fresh clone's root would.
    let dir = workdir("verbatim");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        dir.join("data"),
    )
    .unwrap();
    #[cfg(not(unix))]
    return;
    let commands = readme_commands();
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["fit", "score", "stream"]);
    let mut outputs = Vec::new();
    for c in &commands {
        outputs.push(run_ok(haad().current_dir(&dir).args(c)));
    }
    assert!(outputs[0].contains("threshold"), "{}", outputs[0]);
    // A header and one row per clip (5 runs), each with a decision.
    let rows: Vec<&str> = outputs[1].lines().collect();
    assert_eq!(rows.len(), 6, "{}", outputs[1]);
    assert!(rows[1..]
        .iter()
        .all(|r| r.ends_with("normal") || r.ends_with("ANOMALY")));
    assert!(outputs[2].lines().count() > 30, "{}", outputs[2]);
    assert!(dir.join("walk.svg").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdin_stream_matches_detector_scores_and_names_bad_lines() {
    let dir = workdir("stdin");
    let data = data();
    run_ok(
        haad()
            .current_dir(&dir)
            .args(["fit", "--normal"])
            .arg(&data)
            .args([
                "--category",
                "wave-both-hands",
                "--take",
                "3",
                "--encoder",
                "raw-dct",
            ])
            .args(["--no-threshold", "--out", "det"]),
    );
    let detector = Detector::load(&dir.join("det")).unwrap();
    let ds = Dataset::load(&data).unwrap();
    // Two clips one after the other: 61 or more windows.
    let two: Vec<_> = ds.clips()[38..40]
        .iter()
        .map(|c| c.motion.data().view())
        .collect();
    let clip =
        &haad::motion::Motion::new(ndarray::concatenate(ndarray::Axis(0), &two).unwrap(), None)
            .unwrap();
    let mut csv = Vec::new();
    write_csv(clip, &mut csv).unwrap();
    let mut child = haad()
        .current_dir(&dir)
        .args(["stream", "--detector", "det", "--stride", "1", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&csv).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), clip.frames() - 60 + 1);
    for (start, line) in lines.iter().enumerate() {
        let want = detector.score(&window(clip, start, 60).unwrap()).unwrap();
        assert_eq!(line["score"].as_f64().unwrap() as f32, want);
        assert_eq!(line["start"].as_u64().unwrap() as usize, start);
    }

    // A malformed line: one error line naming the input and the line, exit code 1.
    let mut child = haad()
        .current_dir(&dir)
        .args(["stream", "--detector", "det"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1,2,3\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("standard input, line 1") && err.contains("expected 22"),
        "{err}"
    );

    let out = haad()
        .current_dir(&dir)
        .args(["score", "--detector", "det", "missing.npy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("missing.npy") && err.lines().count() == 1,
        "{err}"
    );

    // A reader that leaves after one line ends the stream quietly.
    let mut child = haad()
        .current_dir(&dir)
        .args(["stream", "--detector", "det", "--build-from"])
        .arg(&data)
        .args(["--normal-category", "wave-both-hands", "--stride", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("score"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
