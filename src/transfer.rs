//! Training across datasets and the leave-one-dataset-out experiments (issue #12).
//!
//! A [`Source`] is one dataset (format, path, [`Layout`], unseen categories, a short name).
//! [`load_canonical`] maps it onto the canonical body with a [`NormalizeConfig`] and prefixes
//! its categories with `NAME/`, so that categories of different datasets never merge;
//! [`merge`] joins such datasets into one that the trainer takes as it is.
//!
//! [`Experiment`] runs the leave-one-dataset-out protocol over N sources:
//! - [`Direction::LeaveOut(i)`](Direction::LeaveOut): an encoder trained on every category of
//!   every source but `i`, evaluated on every category of source `i` (never seen);
//! - [`Direction::All`]: an encoder trained on all sources with each source's unseen
//!   categories held out, evaluated on each source's unseen categories.
//!
//! Evaluation is the paper's protocol (K real support clips, support seeds `0..seeds`, mean
//! ROC AUC per normal category, test clips = the target's test parts), on the same canonical
//! clips for the encoder and the raw-DCT baseline. Encoders are trained once into
//! `WORK/<variant>/<direction>/tau<τ>-seed<s>` (an interrupted one resumes) and every
//! evaluation is cached as JSON beside it, so a rerun with more seeds or variants only does
//! the new work.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::Device;
use haad_contrastive::TrainConfig;
use haad_detect::{evaluate, Embedder, EvalConfig, Evaluation};
use haad_motion::dataset::Clip;
use haad_motion::split::Split;
use haad_motion::{load, Canonicalizer, DataFormat, Dataset, Layout, NormalizeConfig};
use serde::{Deserialize, Serialize};

use crate::error::{HaadError, Result};
use crate::pipeline::train_encoder;

/// One dataset of a multi-dataset run.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Short name, the prefix of its categories (`NAME/category`).
    pub name: String,
    /// Its format.
    pub format: DataFormat,
    /// Its folder or file.
    pub path: PathBuf,
    /// Its joint layout.
    pub layout: Layout,
    /// Its categories kept out of training (names without the prefix).
    pub unseen: Vec<String>,
}

impl Source {
    /// The unseen categories with the `NAME/` prefix.
    pub fn prefixed_unseen(&self) -> Vec<String> {
        self.unseen
            .iter()
            .map(|u| format!("{}/{u}", self.name))
            .collect()
    }
}

impl FromStr for Source {
    type Err = HaadError;

    /// `name=N,format=F,layout=L,path=P[,unseen=a+b+c]` (keys in any order; `name` defaults
    /// to the format's name, `layout` to the format's own: `msr` for msr, `bvh` for bvh and
    /// bandai).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| HaadError::InvalidArgument(format!("dataset {s:?}: {m}"));
        let (mut name, mut format, mut layout, mut path, mut unseen) =
            (None, None, None, None, Vec::new());
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
            match k.trim() {
                "name" => name = Some(v.to_string()),
                "format" => format = Some(v.parse::<DataFormat>()?),
                "layout" => layout = Some(v.parse::<Layout>()?),
                "path" => path = Some(PathBuf::from(v)),
                "unseen" => {
                    unseen = v
                        .split('+')
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect()
                }
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?} (name, format, layout, path, unseen)"
                    )))
                }
            }
        }
        let format = format.ok_or_else(|| bad("format is missing".into()))?;
        let layout = match (layout, format) {
            (Some(l), _) => l,
            (None, DataFormat::Msr) => Layout::Msr,
            (None, DataFormat::Bvh | DataFormat::Bandai) => Layout::Bvh,
            (None, DataFormat::HumanAct12) => Layout::Smpl,
            (None, DataFormat::Folder) => {
                let p = path.as_ref().ok_or_else(|| bad("path is missing".into()))?;
                let file = p.join("skeleton.json");
                let named = if file.is_file() {
                    haad_motion::io::folder::SkeletonFile::read(&file)?.layout
                } else {
                    None
                };
                named.ok_or_else(|| {
                    bad(format!(
                        "give layout=NAME or name it in {} (\"layout\": \"kinect-v2\", ...)",
                        file.display()
                    ))
                })?
            }
            (None, f) => return Err(bad(format!("give layout=NAME for format {f}"))),
        };
        Ok(Source {
            name: name.unwrap_or_else(|| format.name().to_string()),
            format,
            path: path.ok_or_else(|| bad("path is missing".into()))?,
            layout,
            unseen,
        })
    }
}

/// Loads `source`, maps it onto the canonical body with `normalize` and prefixes its
/// categories with `NAME/`. Unknown unseen categories are an error listing the known ones.
pub fn load_canonical(source: &Source, normalize: &NormalizeConfig) -> Result<Dataset> {
    let raw = load(source.format, &source.path)?;
    for u in &source.unseen {
        raw.category_index(u)?;
    }
    let canon = Canonicalizer::new(source.layout, raw.skeleton(), None, normalize.clone())?;
    let ds = canon.apply_dataset(&raw)?;
    let categories = ds
        .categories()
        .iter()
        .map(|c| format!("{}/{c}", source.name))
        .collect();
    Ok(Dataset::new(
        ds.skeleton().clone(),
        categories,
        ds.clips().to_vec(),
        ds.skipped().to_vec(),
    )?)
}

/// One dataset of the clips of all of `datasets` (which must share a skeleton and have
/// distinct category names), categories in order.
pub fn merge(datasets: &[Dataset]) -> Result<Dataset> {
    let first = datasets
        .first()
        .ok_or_else(|| HaadError::InvalidArgument("merge needs at least one dataset".into()))?;
    let (mut categories, mut clips, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for d in datasets {
        if d.skeleton() != first.skeleton() {
            return Err(HaadError::InvalidArgument(
                "merged datasets must share one skeleton (map them to the canonical body first)"
                    .into(),
            ));
        }
        let offset = categories.len();
        categories.extend(d.categories().iter().cloned());
        clips.extend(d.clips().iter().map(|c| Clip {
            category: c.category + offset,
            ..c.clone()
        }));
        skipped.extend(d.skipped().iter().cloned());
    }
    Ok(Dataset::new(
        first.skeleton().clone(),
        categories,
        clips,
        skipped,
    )?)
}

/// Which encoder of the protocol (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Trained on every source but this one, evaluated on all of its categories.
    LeaveOut(usize),
    /// Trained on all sources without their unseen categories, evaluated on those.
    All,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::LeaveOut(i) => write!(f, "leave-out-{i}"),
            Direction::All => f.write_str("all"),
        }
    }
}

/// The training recipe of one encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Temperature tau.
    pub temperature: f64,
    /// Epochs.
    pub epochs: usize,
}

/// One evaluation: an embedder on one target source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Normalisation variant's name.
    pub variant: String,
    /// The encoder's direction.
    pub direction: Direction,
    /// The target source's name.
    pub target: String,
    /// `encoder` or `raw_dct`.
    pub method: String,
    /// Temperature (encoder only).
    pub temperature: Option<f64>,
    /// Training seed (encoder only).
    pub train_seed: Option<u64>,
    /// The AUC reported: all categories (leave-out) or the unseen ones (all).
    pub auc: f64,
    /// The full evaluation.
    pub evaluation: Evaluation,
}

/// The leave-one-dataset-out experiment over some sources.
pub struct Experiment {
    sources: Vec<Source>,
    work: PathBuf,
    eval: EvalConfig,
    device: Device,
    progress: bool,
}

impl Experiment {
    /// An experiment over `sources` (at least two for leave-out directions) writing to `work`.
    pub fn new(sources: Vec<Source>, work: &Path, eval: EvalConfig, progress: bool) -> Self {
        Self {
            sources,
            work: work.to_path_buf(),
            eval,
            device: Device::Cpu,
            progress,
        }
    }

    /// The sources.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Every source loaded and canonicalised with `normalize`.
    pub fn load(&self, normalize: &NormalizeConfig) -> Result<Vec<Dataset>> {
        self.sources
            .iter()
            .map(|s| load_canonical(s, normalize))
            .collect()
    }

    /// The training set and (target index, held-out category names) of `direction`.
    fn plan(
        &self,
        data: &[Dataset],
        direction: Direction,
    ) -> Result<(Dataset, Vec<String>, Vec<usize>)> {
        match direction {
            Direction::LeaveOut(i) => {
                if i >= data.len() || data.len() < 2 {
                    return Err(HaadError::InvalidArgument(format!(
                        "leave-out {i} needs at least two sources and i < {}",
                        data.len()
                    )));
                }
                let rest: Vec<Dataset> = data
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, d)| d.clone())
                    .collect();
                Ok((merge(&rest)?, Vec::new(), vec![i]))
            }
            Direction::All => {
                let unseen = self
                    .sources
                    .iter()
                    .flat_map(Source::prefixed_unseen)
                    .collect();
                Ok((merge(data)?, unseen, (0..data.len()).collect()))
            }
        }
    }

    fn split_of(&self, data: &Dataset, target: usize, direction: Direction) -> Result<Split> {
        let unseen = match direction {
            Direction::LeaveOut(_) => Vec::new(),
            Direction::All => self.sources[target].prefixed_unseen(),
        };
        Ok(Split::new(
            data,
            TrainConfig::default().train_fraction,
            &unseen,
        )?)
    }

    fn reported(e: &Evaluation, direction: Direction) -> f64 {
        match direction {
            Direction::LeaveOut(_) => e.mean_auc,
            Direction::All => e.unseen_mean_auc.unwrap_or(e.mean_auc),
        }
    }

    fn cached(
        &self,
        path: &Path,
        compute: impl FnOnce() -> Result<Evaluation>,
    ) -> Result<Evaluation> {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(e) = serde_json::from_str(&text) {
                return Ok(e);
            }
        }
        let e = compute()?;
        write_json(path, &e)?;
        Ok(e)
    }

    /// The raw-DCT baseline of `direction` on the canonical clips of variant `variant`.
    pub fn baseline(
        &self,
        variant: &str,
        data: &[Dataset],
        direction: Direction,
    ) -> Result<Vec<Cell>> {
        let (_, _, targets) = self.plan(data, direction)?;
        let cfg = self.eval.check()?;
        let mut out = Vec::new();
        for t in targets {
            let name = &self.sources[t].name;
            let path = self
                .work
                .join(variant)
                .join("raw_dct")
                .join(format!("{direction}-{name}.json"));
            let e = self.cached(&path, || {
                let split = self.split_of(&data[t], t, direction)?;
                Ok(evaluate(
                    &data[t],
                    &split,
                    &Embedder::raw_dct(),
                    &cfg,
                    None,
                    None,
                )?)
            })?;
            out.push(Cell {
                variant: variant.into(),
                direction,
                target: name.clone(),
                method: "raw_dct".into(),
                temperature: None,
                train_seed: None,
                auc: Self::reported(&e, direction),
                evaluation: e,
            });
        }
        Ok(out)
    }

    /// Trains (or loads) the encoder of `direction` with `recipe` and `seed` on the canonical
    /// clips of variant `variant`, and evaluates it on its targets.
    pub fn encoder(
        &self,
        variant: &str,
        data: &[Dataset],
        direction: Direction,
        recipe: &Recipe,
        seed: u64,
    ) -> Result<Vec<Cell>> {
        let (train_set, unseen, targets) = self.plan(data, direction)?;
        let dir = self
            .work
            .join(variant)
            .join(direction.to_string())
            .join(format!("tau{}-seed{seed}", recipe.temperature));
        let cfg = TrainConfig {
            epochs: recipe.epochs,
            temperature: recipe.temperature,
            seed,
            unseen,
            ..TrainConfig::default()
        }
        .check()?;
        let mut model = None;
        let eval = self.eval.check()?;
        let mut out = Vec::new();
        for t in targets {
            let name = &self.sources[t].name;
            let e = self.cached(&dir.join(format!("eval-{name}.json")), || {
                if model.is_none() {
                    model = Some(Embedder::encoder(train_encoder(
                        &cfg,
                        &train_set,
                        None,
                        &dir,
                        self.progress,
                        &self.device,
                    )?));
                }
                let split = self.split_of(&data[t], t, direction)?;
                let m = model.as_ref().expect("trained above");
                Ok(evaluate(&data[t], &split, m, &eval, None, None)?)
            })?;
            out.push(Cell {
                variant: variant.into(),
                direction,
                target: name.clone(),
                method: "encoder".into(),
                temperature: Some(recipe.temperature),
                train_seed: Some(seed),
                auc: Self::reported(&e, direction),
                evaluation: e,
            });
        }
        Ok(out)
    }
}

/// Writes `value` as pretty JSON to `path` whole or not at all (a temporary file renamed into
/// place), creating the folder.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let io = |source| HaadError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let json = serde_json::to_string_pretty(value).map_err(|source| HaadError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// The normalisation variants of the ablation (closed set): all steps, or all but one, or
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Every step ([`NormalizeConfig::default`]).
    Full,
    /// Without the common frame rate.
    NoFps,
    /// Without the vertical axis step.
    NoVertical,
    /// Without body-size scaling (units converted to metres only).
    NoScale,
    /// Without the heading rotation.
    NoHeading,
    /// Joint mapping and units only.
    None,
}

impl Variant {
    /// Every variant, in the order of the enum.
    pub const ALL: [Variant; 6] = [
        Variant::Full,
        Variant::NoFps,
        Variant::NoVertical,
        Variant::NoScale,
        Variant::NoHeading,
        Variant::None,
    ];

    /// The name on command lines and in folder names.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Full => "full",
            Variant::NoFps => "no-fps",
            Variant::NoVertical => "no-vertical",
            Variant::NoScale => "no-scale",
            Variant::NoHeading => "no-heading",
            Variant::None => "none",
        }
    }

    /// Its normalisation.
    pub fn config(self) -> NormalizeConfig {
        let full = NormalizeConfig::default();
        match self {
            Variant::Full => full,
            Variant::NoFps => NormalizeConfig { fps: None, ..full },
            Variant::NoVertical => NormalizeConfig {
                vertical: false,
                ..full
            },
            Variant::NoScale => NormalizeConfig {
                body_size: None,
                ..full
            },
            Variant::NoHeading => NormalizeConfig {
                heading: false,
                ..full
            },
            Variant::None => NormalizeConfig::none(),
        }
    }
}

impl FromStr for Variant {
    type Err = HaadError;

    fn from_str(s: &str) -> Result<Self> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                HaadError::InvalidArgument(format!(
                    "unknown normalisation variant {s:?}; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// A Markdown table of `cells`: one row per (variant, direction, target) with the raw-DCT
/// AUC and, per temperature, the encoder's mean +- std over training seeds (n seeds) and its
/// margin over the baseline.
pub fn format_table(sources: &[Source], cells: &[Cell]) -> String {
    let mut taus: Vec<f64> = cells.iter().filter_map(|c| c.temperature).collect();
    taus.sort_by(|a, b| b.total_cmp(a));
    taus.dedup();
    let mut out = String::from("| normalisation | trained on | evaluated on | raw DCT |");
    for t in &taus {
        out.push_str(&format!(" encoder tau={t} | margin tau={t} |"));
    }
    out.push_str("\n|---|---|---|---|");
    out.push_str(&"---|---|".repeat(taus.len()));
    out.push('\n');
    let mut keys: Vec<(String, Direction, String)> = Vec::new();
    for c in cells {
        let k = (c.variant.clone(), c.direction, c.target.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (variant, direction, target) in keys {
        let of = |method: &str, tau: Option<f64>| -> Vec<f64> {
            cells
                .iter()
                .filter(|c| {
                    c.variant == variant
                        && c.direction == direction
                        && c.target == target
                        && c.method == method
                        && c.temperature == tau
                })
                .map(|c| c.auc)
                .collect()
        };
        let (trained, evaluated) = match direction {
            Direction::LeaveOut(i) => {
                let rest: Vec<&str> = sources
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s.name.as_str())
                    .collect();
                (rest.join(" + "), format!("{target}, all categories"))
            }
            Direction::All => (
                "all (unseen held out)".to_string(),
                format!("{target}, unseen categories"),
            ),
        };
        let base = of("raw_dct", None);
        let b = base.first().copied().unwrap_or(f64::NAN);
        out.push_str(&format!("| {variant} | {trained} | {evaluated} | {b:.3} |"));
        for t in &taus {
            let v = of("encoder", Some(*t));
            if v.is_empty() {
                out.push_str(" - | - |");
            } else {
                let (m, s) = mean_std(&v);
                out.push_str(&format!(
                    " {m:.3} +- {s:.3} (n={}) | {:+.3} |",
                    v.len(),
                    m - b
                ));
            }
        }
        out.push('\n');
    }
    out
}

/// The file beside a trained encoder that records the normalisation its training clips had
/// (a [`NormalizeConfig`] as JSON): a detector must give its clips the same.
pub const NORMALIZE_FILE: &str = "normalize.json";

/// Every source canonicalised with `normalize` and merged into one dataset (categories
/// `NAME/category`), with the prefixed unseen categories of all of them.
pub fn load_sources(
    sources: &[Source],
    normalize: &NormalizeConfig,
) -> Result<(Dataset, Vec<String>)> {
    let data = sources
        .iter()
        .map(|s| load_canonical(s, normalize))
        .collect::<Result<Vec<_>>>()?;
    let unseen = sources.iter().flat_map(Source::prefixed_unseen).collect();
    Ok((merge(&data)?, unseen))
}

/// The normalisation recorded beside an encoder in `dir` ([`NORMALIZE_FILE`]), or `None` when
/// the encoder was trained on clips in their own joints.
pub fn encoder_normalization(dir: &Path) -> Result<Option<NormalizeConfig>> {
    let path = dir.join(NORMALIZE_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| HaadError::Io {
        path: path.clone(),
        source,
    })?;
    let cfg: NormalizeConfig =
        serde_json::from_str(&text).map_err(|source| HaadError::Json { path, source })?;
    cfg.check()?;
    Ok(Some(cfg))
}

/// The input of a detector that uses the encoder in `dir` on raw clips of `layout` with
/// `skeleton`: mapped onto the canonical body with the encoder's recorded normalisation
/// ([`NORMALIZE_FILE`]), or the clips' own joints when the encoder has none.
pub fn input_for_encoder(
    dir: &Path,
    layout: Layout,
    skeleton: &haad_motion::Skeleton,
    source_fps: Option<f32>,
) -> Result<haad_detect::InputSpec> {
    Ok(match encoder_normalization(dir)? {
        Some(cfg) => haad_detect::InputSpec::canonical(Canonicalizer::new(
            layout, skeleton, source_fps, cfg,
        )?),
        None => haad_detect::InputSpec::for_skeleton(skeleton),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::canonical::canonical_skeleton;
    use haad_motion::Motion;
    use ndarray::Array3;

    fn tiny(categories: &[&str], clips_each: usize) -> Dataset {
        let mut clips = Vec::new();
        for c in 0..categories.len() {
            for i in 0..clips_each {
                let m = Motion::new(Array3::from_elem((4, 15, 3), (c * 10 + i) as f32), None);
                clips.push(Clip {
                    motion: m.unwrap(),
                    category: c,
                    source: PathBuf::from(format!("{c}-{i}")),
                });
            }
        }
        let names = categories.iter().map(|s| s.to_string()).collect();
        Dataset::new(canonical_skeleton(), names, clips, Vec::new()).unwrap()
    }

    #[test]
    fn sources_parse_with_defaults_and_name_bad_keys() {
        let s: Source = "format=msr,path=/d,unseen=a+b".parse().unwrap();
        assert_eq!(
            (s.name.as_str(), s.layout, s.unseen.len()),
            ("msr", Layout::Msr, 2)
        );
        assert_eq!(s.prefixed_unseen(), vec!["msr/a", "msr/b"]);
        let b: Source = "name=x,format=bandai,path=/b".parse().unwrap();
        assert_eq!((b.name.as_str(), b.layout), ("x", Layout::Bvh));
        let k: Source = "format=native,layout=kinect-v2,path=/n".parse().unwrap();
        assert_eq!(k.layout, Layout::KinectV2);
        for (bad, word) in [
            ("format=native,path=/n", "layout"),
            ("format=msr", "path"),
            ("format=msr,path=/d,colour=red", "colour"),
            ("path=/d", "format"),
            ("format=msr,layout=openpose,path=/d", "openpose"),
        ] {
            let e = bad.parse::<Source>().unwrap_err().to_string();
            assert!(e.contains(word), "{bad}: {e}");
        }
    }

    #[test]
    fn folder_sources_take_the_layout_from_skeleton_json() {
        let dir = std::env::temp_dir().join(format!("haad-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = format!("format=folder,path={}", dir.display());
        let e = spec.parse::<Source>().unwrap_err().to_string();
        assert!(e.contains("skeleton.json"), "{e}");
        std::fs::write(
            dir.join("skeleton.json"),
            r#"{"names": ["a", "b"], "parents": [null, 0], "layout": "smpl"}"#,
        )
        .unwrap();
        assert_eq!(spec.parse::<Source>().unwrap().layout, Layout::Smpl);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn merge_keeps_categories_and_clips_apart() {
        let a = tiny(&["msr/wave", "msr/kick"], 2);
        let b = tiny(&["bandai/wave"], 3);
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.categories(), ["msr/wave", "msr/kick", "bandai/wave"]);
        assert_eq!(m.counts(), vec![2, 2, 3]);
        assert_eq!(m.clips()[4].motion, b.clips()[0].motion);
        // The same category name twice is refused (the prefix keeps datasets apart).
        assert!(merge(&[a.clone(), a]).is_err());
        assert!(merge(&[]).is_err());
    }

    #[test]
    fn variants_round_trip_and_switch_one_step_each() {
        let full = NormalizeConfig::default();
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
            let c = v.config();
            let changed = [
                c.fps != full.fps,
                c.vertical != full.vertical,
                c.body_size != full.body_size,
                c.heading != full.heading,
            ]
            .iter()
            .filter(|&&x| x)
            .count();
            let want = match v {
                Variant::Full => 0,
                Variant::None => 4,
                _ => 1,
            };
            assert_eq!(changed, want, "{v:?}");
        }
        assert!("no-hands".parse::<Variant>().is_err());
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
    }
}
