//! `haad`: few-shot action anomaly detection from the command line.
//!
//! ```text
//! haad fit    --normal FILE... [--calibrate FILE... | --false-alarm 0.05] --out DETECTOR
//! haad score  --detector DETECTOR FILE... [--json | --csv]
//! haad stream --detector DETECTOR [--input FILE|-] [--stride N] [--plot scores.svg]
//! ```
//!
//! Errors are one line naming the file and the reason; a closed output pipe ends quietly.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use haad::deploy::clips::{load_clips, NamedClip, Selection};
use haad::deploy::fit::{fit_detector, Threshold};
use haad::deploy::output::{
    format_clip_scores, format_window, window_header, ClipScore, OutputFormat,
};
use haad::deploy::{build_recording, frames, svg, RecordingConfig, Segment};
use haad::detect::{Detector, Embedder, InputSpec, StreamScorer, Window, WindowOutcome};
use haad::motion::augment::Axis3;
use haad::motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad::motion::{Canonicalizer, Dataset, Layout, Motion, NormalizeConfig};
use haad::{HaadError, Result};

#[derive(Parser)]
#[command(
    name = "haad",
    version,
    about = "Few-shot human action anomaly detection: fit a detector on a few normal clips, \
             score clips, score a live stream"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a detector on a few normal clips and set its decision threshold.
    Fit(FitArgs),
    /// Score clips: a score and a decision per clip.
    Score(ScoreArgs),
    /// Score a stream of frames (a file or standard input), one line per window.
    Stream(StreamArgs),
}

#[derive(Args)]
struct Select {
    /// Only clips of this category (folders and .safetensors datasets).
    #[arg(long)]
    category: Option<String>,
    /// Skip this many clips of each multi-clip file (after --category).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Keep at most this many clips of each multi-clip file.
    #[arg(long)]
    take: Option<usize>,
}

impl Select {
    fn selection(&self) -> Selection {
        Selection {
            category: self.category.clone(),
            skip: self.skip,
            take: self.take,
        }
    }
}

#[derive(Args)]
struct FitArgs {
    /// Normal clips (the support set): files in any loadable format or folders.
    #[arg(long, num_args = 1.., required = true)]
    normal: Vec<PathBuf>,
    #[command(flatten)]
    select: Select,
    /// The encoder: a folder saved by EncoderModel::save, or `raw-dct` for the baseline.
    /// Default: the built-in canonical encoder (any supported layout, see --layout).
    #[arg(long)]
    encoder: Option<String>,
    /// Joint layout of the clips, for encoders of the canonical body (the default): msr,
    /// kinect-v1, kinect-v2, smpl, h36m or bvh (joints matched by name; the default).
    #[arg(long)]
    layout: Option<Layout>,
    /// Frame rate of clips that carry none (.npy, .csv), for the canonical body's resampling.
    #[arg(long)]
    fps: Option<f32>,
    /// Root joint for files without a skeleton (.npy, .csv); others use their skeleton's.
    #[arg(long)]
    root: Option<usize>,
    /// Other normal clips to set the threshold with (all clips of --category in them; any of
    /// the --normal clips among them are left out). Without them the threshold comes from
    /// the support clips alone (leave-one-out).
    #[arg(long, num_args = 1..)]
    calibrate: Vec<PathBuf>,
    /// Target false-alarm rate; with n normal scores the smallest reachable rate is
    /// 1/(n+1), so 0.05 needs at least 19.
    #[arg(long, default_value_t = 0.05)]
    false_alarm: f64,
    /// Leave-one-out only: rotated + jittered variants per support clip (3 clips x (1 + 10)
    /// = 33 scores).
    #[arg(long, default_value_t = 10)]
    variants: usize,
    /// Vertical axis of the data, for the variants' rotation.
    #[arg(long, value_enum, default_value_t = Up::Y)]
    up: Up,
    /// Seed of the variants.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not set a threshold (scores only).
    #[arg(long, conflicts_with = "calibrate")]
    no_threshold: bool,
    /// Output folder of the detector.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Up {
    X,
    Y,
    Z,
}

#[derive(Args)]
struct Output {
    /// Write JSON (score: one array; stream: one object per line).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Write CSV with a header line.
    #[arg(long)]
    csv: bool,
}

impl Output {
    fn format(&self) -> OutputFormat {
        match (self.json, self.csv) {
            (true, _) => OutputFormat::Json,
            (_, true) => OutputFormat::Csv,
            _ => OutputFormat::Table,
        }
    }
}

#[derive(Args)]
struct ScoreArgs {
    /// The detector folder written by `haad fit`.
    #[arg(long)]
    detector: PathBuf,
    /// Clips to score: files in any loadable format or folders.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    select: Select,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct StreamArgs {
    /// The detector folder written by `haad fit`.
    #[arg(long)]
    detector: PathBuf,
    /// Frames, one a line (CSV `x,y,z` per joint or a JSON array of [x, y, z]); `-` is
    /// standard input. Any other loadable file (.bvh, .npy, ...) is read whole and streamed.
    #[arg(long, default_value = "-", conflicts_with = "build_from")]
    input: String,
    /// Instead of --input: build an evaluation recording from the test clips of this dataset
    /// (8 clips, each of --normal-category with probability 3/4).
    #[arg(long, requires = "normal_category")]
    build_from: Option<PathBuf>,
    /// The normal category of the built recording.
    #[arg(long)]
    normal_category: Option<String>,
    /// Seed of the built recording.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames between window starts.
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Draw the scores over time with the threshold (and the built recording's clips) as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    output: Output,
}

#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fit(a) => fit(a),
        Command::Score(a) => score(a),
        Command::Stream(a) => stream(a),
    };
    match result {
        Ok(()) => {}
        Err(e) if is_broken_pipe(&e) => {}
        Err(e) => {
            eprintln!("haad: {e}");
            std::process::exit(1);
        }
    }
}

fn is_broken_pipe(e: &HaadError) -> bool {
    matches!(e, HaadError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn stdout_err(source: std::io::Error) -> HaadError {
    HaadError::Io {
        path: PathBuf::from("standard output"),
        source,
    }
}

/// The embedder, with the normalisation of the canonical body when it was trained on it.
fn embedder(arg: Option<&str>) -> Result<(Embedder, Option<NormalizeConfig>)> {
    match arg {
        None => Ok((
            Embedder::encoder(haad::defaults::default_encoder(&Device::Cpu)?),
            Some(haad::defaults::default_normalization()?),
        )),
        Some("raw-dct") => Ok((Embedder::raw_dct(), None)),
        Some(dir) => Ok((
            Embedder::encoder(haad::gcn::EncoderModel::load(Path::new(dir), &Device::Cpu)?),
            haad::transfer::encoder_normalization(Path::new(dir))?,
        )),
    }
}

/// Checks every clip against `input`, naming the clip's file on failure.
fn check_clips(clips: &[NamedClip], input: &InputSpec) -> Result<Vec<Motion>> {
    clips
        .iter()
        .map(|c| {
            input
                .check_clip(&c.motion)
                .map(|_| c.motion.clone())
                .map_err(|e| HaadError::InvalidArgument(format!("{}: {e}", c.name)))
        })
        .collect()
}

fn fit(a: FitArgs) -> Result<()> {
    let (clips, skeleton) = load_clips(&a.normal, &a.select.selection())?;
    let (embedder, normalize) = embedder(a.encoder.as_deref())?;
    let joints = clips[0].motion.joints();
    let canonical = match normalize {
        None => None,
        Some(cfg) => {
            // The encoder works on the canonical body: map the clips' layout onto it (a
            // skeleton with joint names is matched by name when no layout is given).
            let layout = a.layout.unwrap_or(Layout::Bvh);
            let names: Vec<String> = (0..joints).map(|j| format!("j{j}")).collect();
            let fallback = haad::motion::Skeleton::new(names, vec![None; joints], 0)?;
            let sk = skeleton.as_ref().unwrap_or(&fallback);
            // Frames streamed later carry no rate: keep the clips' own as the source's.
            let fps = a.fps.or(clips[0].motion.fps());
            Some(Canonicalizer::new(layout, sk, fps, cfg).map_err(|e| {
                HaadError::InvalidArgument(format!(
                    "{}: {e} (give --layout: msr, kinect-v1, kinect-v2, smpl, h36m, bvh)",
                    clips[0].name
                ))
            })?)
        }
    };
    let embedded = canonical
        .as_ref()
        .map_or(joints, |_| haad::motion::canonical::CANONICAL_JOINTS.len());
    if let Some(j) = haad::detect::Embedding::joints(&embedder) {
        if j != embedded {
            return Err(HaadError::InvalidArgument(format!(
                "{}: clips of {joints} joints, the encoder takes {j} (give --encoder for \
                 another skeleton)",
                clips[0].name
            )));
        }
    }
    let root = a.root.or(skeleton.as_ref().map(|s| s.root())).unwrap_or(0);
    let input = match canonical {
        Some(c) => InputSpec::canonical(c),
        None => InputSpec {
            joints,
            root,
            min_frames: 1,
            canonical: None,
        },
    };
    let root = input.root;
    input.check()?;
    let motions = check_clips(&clips, &input)?;
    let threshold = if !a.calibrate.is_empty() {
        let select = Selection {
            category: a.select.category.clone(),
            ..Selection::default()
        };
        let (cal, _) = load_clips(&a.calibrate, &select)?;
        Threshold::NormalClips(check_clips(&cal, &input)?)
    } else if a.no_threshold {
        Threshold::None
    } else {
        let up = match a.up {
            Up::X => Axis3::X,
            Up::Y => Axis3::Y,
            Up::Z => Axis3::Z,
        };
        Threshold::LeaveOneOut {
            variants: a.variants,
            up,
            seed: a.seed,
        }
    };
    let (detector, dropped) = fit_detector(embedder, input, &motions, threshold, a.false_alarm)?;
    if dropped > 0 {
        eprintln!("haad: left {dropped} support clip(s) out of the calibration clips");
    }
    detector.save(&a.out)?;
    let mut out = std::io::stdout().lock();
    let mut say = |s: String| writeln!(out, "{s}").map_err(stdout_err);
    say(format!(
        "fitted a detector ({}) on {} clips of {joints} joints (root {root}) into {}",
        detector.embedder().name(),
        motions.len(),
        a.out.display()
    ))?;
    match detector.calibration() {
        Some(c) => say(format!(
            "threshold {:.4} for {:.1} % false alarms from {} normal scores ({:?})",
            c.threshold,
            100.0 * c.target_false_alarm,
            c.scores,
            c.source
        ))?,
        None => say("no threshold: scores only".into())?,
    }
    Ok(())
}

fn decision(d: &Detector, score: f32) -> Option<bool> {
    d.calibration().map(|c| c.is_anomalous(score))
}

fn score(a: ScoreArgs) -> Result<()> {
    let detector = Detector::load(&a.detector)?;
    let (clips, _) = load_clips(&a.files, &a.select.selection())?;
    let rows: Vec<ClipScore> = clips
        .iter()
        .map(|c| {
            let scored = detector.score(&c.motion);
            ClipScore {
                clip: c.name.clone(),
                category: c.category.clone(),
                frames: c.motion.frames(),
                score: scored.as_ref().ok().copied(),
                anomalous: scored.as_ref().ok().and_then(|&s| decision(&detector, s)),
                error: scored.err().map(|e| e.to_string()),
            }
        })
        .collect();
    let text = format_clip_scores(&rows, a.output.format());
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(stdout_err)?;
    out.flush().map_err(stdout_err)
}

/// Writes one window line and flushes, so a reader sees it at once.
fn window_line(out: &mut impl Write, d: &Detector, w: &Window, format: OutputFormat) -> Result<()> {
    let anomalous = w.outcome.score().and_then(|s| decision(d, s));
    writeln!(out, "{}", format_window(w, anomalous, format)).map_err(stdout_err)?;
    out.flush().map_err(stdout_err)
}

fn stream(a: StreamArgs) -> Result<()> {
    let detector = Detector::load(&a.detector)?;
    let joints = detector.input().joints;
    let format = a.output.format();
    let mut scorer = StreamScorer::new(&detector, a.stride, None)?;
    let mut out = std::io::stdout().lock();
    if let Some(header) = window_header(format) {
        writeln!(out, "{header}").map_err(stdout_err)?;
    }
    let mut points: Vec<(usize, Option<f32>)> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut emit = |w: Window, out: &mut std::io::StdoutLock<'_>| -> Result<()> {
        points.push((w.end - 1, w.outcome.score()));
        window_line(out, &detector, &w, format)
    };
    let title;
    if let Some(path) = &a.build_from {
        let ds = Dataset::load(path)?;
        let name = a.normal_category.as_deref().unwrap_or_default();
        let c = ds.category_index(name)?;
        let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &[])?;
        let rec = build_recording(&ds, &split, c, &RecordingConfig::default(), a.seed)?;
        segments = rec.segments.clone();
        title = format!(
            "{}: recording of test clips, normal = {name}",
            path.display()
        );
        stream_motion(&mut scorer, &rec.motion, &mut out, &mut emit)?;
    } else if a.input == "-" || is_frame_file(&a.input) {
        title = a.input.clone();
        let reader: Box<dyn BufRead> = if a.input == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(&a.input).map_err(|source| HaadError::Io {
                path: PathBuf::from(&a.input),
                source,
            })?;
            Box::new(std::io::BufReader::new(file))
        };
        let source = if a.input == "-" {
            "standard input"
        } else {
            &a.input
        };
        frames::read_frames(reader, source, Some(joints), |line, values| {
            let w = scorer
                .push_values(values)
                .map_err(|e| HaadError::InvalidArgument(format!("{source}, line {line}: {e}")))?;
            match w {
                Some(w) => emit(w, &mut out),
                None => Ok(()),
            }
        })?;
    } else {
        title = a.input.clone();
        let (clips, _) = load_clips(&[PathBuf::from(&a.input)], &Selection::default())?;
        for c in &clips {
            stream_motion(&mut scorer, &c.motion, &mut out, &mut emit)?;
        }
    }
    let seen = scorer.frames_seen();
    let t = scorer.window_frames();
    if seen < t {
        let w = Window {
            start: 0,
            end: seen,
            outcome: WindowOutcome::Unscored(haad::detect::Unscored::TooShort {
                frames: seen,
                needed: t,
            }),
        };
        window_line(&mut out, &detector, &w, format)?;
    }
    if let Some(path) = &a.plot {
        let threshold = detector.calibration().map(|c| c.threshold);
        let text = svg::score_plot(&title, &points, seen, threshold, &segments);
        svg::write_score_plot(path, &text)?;
    }
    Ok(())
}

fn is_frame_file(path: &str) -> bool {
    let p = Path::new(path);
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("csv" | "jsonl" | "json")
    )
}

fn stream_motion<'o>(
    scorer: &mut StreamScorer<'_>,
    motion: &Motion,
    out: &mut std::io::StdoutLock<'o>,
    emit: &mut impl FnMut(Window, &mut std::io::StdoutLock<'o>) -> Result<()>,
) -> Result<()> {
    for frame in motion.data().outer_iter() {
        if let Some(w) = scorer.push(frame)? {
            emit(w, out)?;
        }
    }
    Ok(())
}
