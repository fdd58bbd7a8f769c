//! Scoring long recordings and live streams with a [`Detector`]: a sliding window of the
//! detector's T frames (60 by default) moved `stride` frames at a time.
//!
//! [`StreamScorer`] takes frames one at a time (or a slice of a recording) into a ring buffer of
//! T frames allocated once, and returns a [`Window`] every `stride` frames once T frames have
//! arrived. A window holding a frame a tracker lost (any NaN or infinite coordinate) is not
//! scored: its [`WindowOutcome`] says which frame. [`score_recording`] runs a whole recording
//! through it and also gives each frame a score, the [`FrameAggregation`] (max or mean) of the
//! scored windows covering it; a recording shorter than a window gives one unscored window
//! whose reason says so.
//!
//! Window `w` covers frames `[start, start + T)`, `start = w * stride`, and its score is exactly
//! `detector.score` of those frames as a clip.

use haad_motion::Motion;
use ndarray::{Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::embed::Embedding;
use crate::error::{DetectError, Result};

/// Why a window has no score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unscored {
    /// The window holds `lost` frames with a non-finite coordinate; `frame` is the first
    /// (index in the whole stream).
    LostFrames {
        /// First lost frame in the window (stream index).
        frame: usize,
        /// Lost frames in the window.
        lost: usize,
    },
    /// The recording ended before a full window: it has `frames` frames, a window needs
    /// `needed`.
    TooShort {
        /// Frames of the recording.
        frames: usize,
        /// Frames of one window (the detector's T).
        needed: usize,
    },
}

impl std::fmt::Display for Unscored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unscored::LostFrames { frame, lost } => write!(
                f,
                "{lost} lost frame(s) (non-finite coordinates), the first at frame {frame}"
            ),
            Unscored::TooShort { frames, needed } => write!(
                f,
                "the recording has {frames} frames, a window needs {needed}"
            ),
        }
    }
}

/// What a window gave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowOutcome {
    /// The detector's anomaly score.
    Score(f32),
    /// No score, and why.
    Unscored(Unscored),
}

impl WindowOutcome {
    /// The score, if the window has one.
    pub fn score(&self) -> Option<f32> {
        match self {
            WindowOutcome::Score(s) => Some(*s),
            WindowOutcome::Unscored(_) => None,
        }
    }
}

/// One window of a stream: frames `[start, end)` and what it gave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// First frame (stream index).
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Score or reason.
    pub outcome: WindowOutcome,
}

/// A sliding-window scorer over a detector, fed frame by frame.
///
/// Memory is constant: a ring buffer of T frames and one T-frame scratch clip, both allocated
/// in [`StreamScorer::new`]; pushing a frame copies it in place and never allocates (scoring a
/// window allocates the detector's working arrays, which are freed again).
#[derive(Debug, Clone)]
pub struct StreamScorer<'a> {
    detector: &'a Detector,
    stride: usize,
    window: usize,
    joints: usize,
    /// `[T, J, 3]`; frame `t` of the stream lives at row `t % T`.
    ring: Array3<f32>,
    /// Whether row `i` of the ring holds a lost frame.
    lost: Vec<bool>,
    /// Lost frames among the last `min(seen, T)` frames.
    lost_in_window: usize,
    /// Frames pushed so far.
    seen: usize,
    fps: Option<f32>,
}

impl<'a> StreamScorer<'a> {
    /// A scorer emitting a window every `stride` frames (`stride >= 1`); frames arrive at `fps`
    /// frames per second when known (passed on to the clips it scores).
    pub fn new(detector: &'a Detector, stride: usize, fps: Option<f32>) -> Result<Self> {
        if stride == 0 {
            return Err(DetectError::InvalidArgument(
                "stride must be at least 1 frame".into(),
            ));
        }
        let window = source_window(detector, fps)?;
        let joints = detector.input().joints;
        Ok(Self {
            detector,
            stride,
            window,
            joints,
            ring: Array3::zeros((window, joints, 3)),
            lost: vec![false; window],
            lost_in_window: 0,
            seen: 0,
            fps,
        })
    }

    /// Frames per window, in the stream's own frames: the detector's T, or, when the detector
    /// resamples its clips to a common rate (a canonical input), the frames that cover T frames
    /// at that rate.
    pub fn window_frames(&self) -> usize {
        self.window
    }

    /// Frames between window starts.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Frames pushed so far.
    pub fn frames_seen(&self) -> usize {
        self.seen
    }

    /// The size of the scorer's buffers (the ring's `T * J * 3` values plus its `T` lost-frame
    /// flags): fixed for the scorer's lifetime.
    pub fn buffer_len(&self) -> usize {
        self.ring.len() + self.lost.capacity()
    }

    /// Adds one frame `[J, 3]`; returns the window that ends with it when one is due (every
    /// `stride` frames once T frames have arrived). A frame with a non-finite coordinate is
    /// kept as lost: windows holding it are [`Unscored::LostFrames`]. A frame of the wrong
    /// shape is an error and is not added.
    pub fn push(&mut self, frame: ArrayView2<'_, f32>) -> Result<Option<Window>> {
        if frame.dim() != (self.joints, 3) {
            return Err(DetectError::Shape {
                what: format!("frame {}", self.seen),
                expected: format!("[{}, 3] (the detector's joints)", self.joints),
                got: format!("{:?}", frame.shape()),
            });
        }
        let row = self.seen % self.window;
        if self.seen >= self.window && self.lost[row] {
            self.lost_in_window -= 1;
        }
        let is_lost = frame.iter().any(|v| !v.is_finite());
        self.lost[row] = is_lost;
        if is_lost {
            self.lost_in_window += 1;
        }
        self.ring.index_axis_mut(Axis(0), row).assign(&frame);
        self.seen += 1;
        if self.seen < self.window || !(self.seen - self.window).is_multiple_of(self.stride) {
            return Ok(None);
        }
        Ok(Some(self.current()?))
    }

    /// Adds a frame given as `J * 3` values (`x, y, z` of joint 0, then joint 1, ...).
    pub fn push_values(&mut self, values: &[f32]) -> Result<Option<Window>> {
        if values.len() != self.joints * 3 {
            return Err(DetectError::Shape {
                what: format!("frame {}", self.seen),
                expected: format!("{} values ({} joints x 3)", self.joints * 3, self.joints),
                got: format!("{} values", values.len()),
            });
        }
        let view =
            ArrayView2::from_shape((self.joints, 3), values).expect("the length was checked above");
        self.push(view)
    }

    /// Adds every frame of `motion` in order, calling `each` with every window that falls due.
    pub fn push_motion(&mut self, motion: &Motion, mut each: impl FnMut(Window)) -> Result<()> {
        for frame in motion.data().outer_iter() {
            if let Some(w) = self.push(frame)? {
                each(w);
            }
        }
        Ok(())
    }

    /// The window of the last T frames (needs at least T frames pushed).
    fn current(&self) -> Result<Window> {
        let end = self.seen;
        let start = end - self.window;
        let outcome = if self.lost_in_window > 0 {
            let first = (start..end)
                .find(|t| self.lost[t % self.window])
                .expect("lost_in_window counts lost rows of the window");
            WindowOutcome::Unscored(Unscored::LostFrames {
                frame: first,
                lost: self.lost_in_window,
            })
        } else {
            WindowOutcome::Score(self.detector.score(&self.clip(start)?)?)
        };
        Ok(Window {
            start,
            end,
            outcome,
        })
    }

    /// Frames `[start, start + T)` from the ring, in time order.
    fn clip(&self, start: usize) -> Result<Motion> {
        let mut data = Array3::zeros((self.window, self.joints, 3));
        for (i, mut dst) in data.outer_iter_mut().enumerate() {
            dst.assign(&self.ring.index_axis(Axis(0), (start + i) % self.window));
        }
        Ok(Motion::new(data, self.fps)?)
    }
}

/// Stream frames per window. A detector whose input resamples clips to a common rate (a
/// canonical input with `normalize.fps`) sees T frames at that rate, so a stream at another
/// rate (`fps`, else the input's `source_fps`) needs `ceil((T - 1) * source / target) + 1` of
/// its own frames to cover them: a 15 fps stream fills a 60-frame, 30 fps window with 31
/// frames, and each window scores the newest 2 s rather than 4 s of which the detector keeps
/// the oldest half. Without resampling, or without a known rate, a window is T frames.
fn source_window(detector: &Detector, fps: Option<f32>) -> Result<usize> {
    let frames = detector.embedder().frames();
    let rates = detector
        .input()
        .canonical
        .as_ref()
        .and_then(|c| Some((c.normalize.fps?, fps.or(c.source_fps)?)));
    let Some((target, source)) = rates else {
        return Ok(frames);
    };
    if !(source.is_finite() && source > 0.0 && target.is_finite() && target > 0.0) {
        return Err(DetectError::InvalidArgument(format!(
            "frame rates must be positive: the stream's is {source} fps, the detector's {target} fps"
        )));
    }
    let needed =
        (frames.saturating_sub(1) as f64 * f64::from(source) / f64::from(target)).ceil() + 1.0;
    if needed > haad_motion::limits::MAX_CLIP_FRAMES as f64 {
        return Err(DetectError::InvalidArgument(format!(
            "a stream at {source} fps needs {needed} frames to cover the detector's {frames} \
             frames at {target} fps: more than the limit of {} (haad_motion::limits)",
            haad_motion::limits::MAX_CLIP_FRAMES
        )));
    }
    Ok(needed as usize)
}

/// How a frame's score comes from the windows covering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FrameAggregation {
    /// The highest score of the scored windows covering the frame.
    Max,
    /// The mean score of the scored windows covering the frame (the default: better
    /// frame-level AUCs on MSR Action3D and Bandai, docs/results.md).
    #[default]
    Mean,
}

/// Scores of a whole recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingScores {
    /// Every window, in order.
    pub windows: Vec<Window>,
    /// Per frame: the aggregated score of the scored windows covering it, or `None` if none
    /// does (lost frames nearby, or a recording shorter than a window).
    pub frames: Vec<Option<f32>>,
}

/// Scores `recording` with windows every `stride` frames and aggregates them per frame.
///
/// The windows are those [`StreamScorer`] gives, plus, when the last one does not end at the
/// recording's last frame, one more window of the last T frames, so every frame of a recording
/// of at least T frames is covered. A recording shorter than T frames gives one
/// [`Unscored::TooShort`] window and no frame scores; a wrong joint count is an error.
pub fn score_recording(
    detector: &Detector,
    recording: &Motion,
    stride: usize,
    aggregation: FrameAggregation,
) -> Result<RecordingScores> {
    let n = recording.frames();
    let joints = detector.input().joints;
    if recording.joints() != joints {
        return Err(DetectError::WrongJoints {
            expected: joints,
            got: recording.joints(),
        });
    }
    let mut scorer = StreamScorer::new(detector, stride, recording.fps())?;
    let t = scorer.window_frames();
    if n < t {
        return Ok(RecordingScores {
            windows: vec![Window {
                start: 0,
                end: n,
                outcome: WindowOutcome::Unscored(Unscored::TooShort {
                    frames: n,
                    needed: t,
                }),
            }],
            frames: vec![None; n],
        });
    }
    let mut windows = Vec::with_capacity((n - t) / stride + 2);
    scorer.push_motion(recording, |w| windows.push(w))?;
    if windows.last().is_some_and(|w| w.end != n) {
        windows.push(scorer.current()?);
    }
    let mut acc = vec![(0.0f64, 0usize); n];
    for w in &windows {
        if let Some(s) = w.outcome.score() {
            for a in &mut acc[w.start..w.end] {
                match aggregation {
                    FrameAggregation::Max => {
                        a.0 = if a.1 == 0 {
                            s as f64
                        } else {
                            a.0.max(s as f64)
                        }
                    }
                    FrameAggregation::Mean => a.0 += s as f64,
                }
                a.1 += 1;
            }
        }
    }
    let frames = acc
        .into_iter()
        .map(|(v, c)| match (c, aggregation) {
            (0, _) => None,
            (_, FrameAggregation::Max) => Some(v as f32),
            (_, FrameAggregation::Mean) => Some((v / c as f64) as f32),
        })
        .collect();
    Ok(RecordingScores { windows, frames })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{Embedder, RawDctConfig};
    use crate::input::InputSpec;
    use crate::scoring::Scoring;
    use haad_motion::preprocess::window;

    fn clip(freq: f32, frames: usize, offset: f32) -> Motion {
        let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, c)| {
            (t as f32 * freq).sin() * (j + 1) as f32 * 0.1 + c as f32 + offset + 0.01 * t as f32
        });
        Motion::new(a, Some(30.0)).unwrap()
    }

    /// A raw-DCT detector with a short window (T = 12) so tests stay fast.
    fn detector() -> Detector {
        let embedder = Embedder::RawDct(
            RawDctConfig {
                frames: 12,
                coefficients: 4,
            }
            .check()
            .unwrap(),
        );
        let input = InputSpec {
            joints: 3,
            root: 0,
            min_frames: 1,
            canonical: None,
        };
        let normal = [clip(0.1, 20, 0.0), clip(0.12, 15, 1.0), clip(0.09, 30, 2.0)];
        Detector::fit(embedder, input, Scoring::MeanDistance, &normal, None).unwrap()
    }

    #[test]
    fn window_scores_equal_detector_scores_of_the_same_frames() {
        let d = detector();
        let rec = clip(0.3, 47, 0.5);
        for stride in [1, 4, 12, 50] {
            let mut s = StreamScorer::new(&d, stride, rec.fps()).unwrap();
            let mut got = Vec::new();
            s.push_motion(&rec, |w| got.push(w)).unwrap();
            let starts: Vec<usize> = (0..=47 - 12).step_by(stride).collect();
            assert_eq!(got.len(), starts.len(), "stride {stride}");
            for (w, &start) in got.iter().zip(&starts) {
                assert_eq!((w.start, w.end), (start, start + 12));
                let want = d.score(&window(&rec, start, 12).unwrap()).unwrap();
                assert_eq!(w.outcome, WindowOutcome::Score(want), "stride {stride}");
            }
        }
        // Slices and single values give the same windows.
        let mut a = StreamScorer::new(&d, 3, None).unwrap();
        let mut b = StreamScorer::new(&d, 3, None).unwrap();
        let mut wa = Vec::new();
        a.push_motion(&rec, |w| wa.push(w)).unwrap();
        let wb: Vec<Window> = rec
            .data()
            .outer_iter()
            .filter_map(|f| {
                b.push_values(f.as_standard_layout().as_slice().unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(wa, wb);
    }

    /// A raw-DCT detector (T = 12) on Kinect v2 clips mapped onto the canonical body and
    /// resampled to 30 fps.
    fn canonical_detector(source_fps: Option<f32>) -> (Detector, impl Fn(usize, f32) -> Motion) {
        let layout = haad_motion::Layout::KinectV2;
        let names = layout.joint_names().unwrap().iter().map(|s| s.to_string());
        let parents = layout.parents().unwrap().to_vec();
        let sk = haad_motion::Skeleton::new(names.collect(), parents, 0).unwrap();
        let mut normalize = haad_motion::NormalizeConfig::none();
        normalize.fps = Some(30.0);
        let canon = haad_motion::Canonicalizer::new(layout, &sk, source_fps, normalize).unwrap();
        let clip = |frames: usize, freq: f32| {
            let a = Array3::from_shape_fn((frames, 25, 3), |(t, j, c)| {
                (t as f32 * freq + j as f32).sin() * 0.1 + c as f32 + j as f32 * 0.05
            });
            Motion::new(a, Some(15.0)).unwrap()
        };
        let embedder = Embedder::RawDct(
            RawDctConfig {
                frames: 12,
                coefficients: 4,
            }
            .check()
            .unwrap(),
        );
        let normal = [clip(10, 0.3), clip(12, 0.35), clip(9, 0.25)];
        let input = InputSpec::canonical(canon);
        let d = Detector::fit(embedder, input, Scoring::MeanDistance, &normal, None).unwrap();
        (d, clip)
    }

    #[test]
    fn resampling_detectors_take_windows_in_the_streams_own_frames() {
        let (d, clip) = canonical_detector(None);
        // 12 frames at 30 fps span 11/30 s: a 15 fps stream covers that with 7 frames.
        assert_eq!(
            StreamScorer::new(&d, 1, Some(15.0))
                .unwrap()
                .window_frames(),
            7
        );
        assert_eq!(
            StreamScorer::new(&d, 1, Some(30.0))
                .unwrap()
                .window_frames(),
            12
        );
        assert_eq!(
            StreamScorer::new(&d, 1, Some(60.0))
                .unwrap()
                .window_frames(),
            23
        );
        // No known rate: T frames.
        assert_eq!(StreamScorer::new(&d, 1, None).unwrap().window_frames(), 12);
        // The input's source_fps stands in for a stream without one.
        let (d15, _) = canonical_detector(Some(15.0));
        assert_eq!(StreamScorer::new(&d15, 1, None).unwrap().window_frames(), 7);
        // A rate that would need a window past the limits is refused, not allocated.
        assert!(matches!(
            StreamScorer::new(&d, 1, Some(1.0e6)),
            Err(DetectError::InvalidArgument(_))
        ));
        assert!(StreamScorer::new(&d, 1, Some(f32::NAN)).is_err());
        // Each window's score is the detector's score of the same stream frames.
        let rec = clip(20, 0.4);
        let mut s = StreamScorer::new(&d, 2, rec.fps()).unwrap();
        let mut got = Vec::new();
        s.push_motion(&rec, |w| got.push(w)).unwrap();
        assert_eq!(got.len(), (20 - 7) / 2 + 1);
        for w in &got {
            assert_eq!(w.end - w.start, 7);
            let want = d.score(&window(&rec, w.start, 7).unwrap()).unwrap();
            assert_eq!(w.outcome, WindowOutcome::Score(want));
        }
    }

    #[test]
    fn lost_frames_give_reasons_not_scores() {
        let d = detector();
        let mut data = clip(0.3, 40, 0.0).into_data();
        data[[20, 1, 2]] = f32::NAN;
        data[[22, 0, 0]] = f32::INFINITY;
        let rec = Motion::new(data, None).unwrap();
        let mut s = StreamScorer::new(&d, 1, None).unwrap();
        let mut got = Vec::new();
        s.push_motion(&rec, |w| got.push(w)).unwrap();
        for w in &got {
            let covers = |f: usize| w.start <= f && f < w.end;
            match w.outcome {
                WindowOutcome::Score(_) => assert!(!covers(20) && !covers(22)),
                WindowOutcome::Unscored(Unscored::LostFrames { frame, lost }) => {
                    let want_first = if covers(20) { 20 } else { 22 };
                    assert_eq!(frame, want_first, "{w:?}");
                    assert_eq!(lost, covers(20) as usize + covers(22) as usize);
                }
                other => panic!("{other:?}"),
            }
        }
        // Windows after the lost frames are scored again.
        assert!(got.last().unwrap().outcome.score().is_some());
        // Per-frame scores: frames covered only by unscored windows get none.
        let r = score_recording(&d, &rec, 1, FrameAggregation::Max).unwrap();
        assert_eq!(r.frames.len(), 40);
        assert!(r.frames[20].is_none() && r.frames[22].is_none());
        assert!(r.frames[0].is_some() && r.frames[39].is_some());
        // A wrong frame shape is an error and is not added.
        let n = s.frames_seen();
        assert!(s.push_values(&[0.0; 8]).is_err());
        assert!(s.push(ndarray::Array2::zeros((4, 3)).view()).is_err());
        assert_eq!(s.frames_seen(), n);
        assert!(StreamScorer::new(&d, 0, None).is_err());
    }

    #[test]
    fn short_recordings_and_wrong_joints() {
        let d = detector();
        let r = score_recording(&d, &clip(0.3, 11, 0.0), 1, FrameAggregation::Mean).unwrap();
        assert_eq!(
            r.windows,
            vec![Window {
                start: 0,
                end: 11,
                outcome: WindowOutcome::Unscored(Unscored::TooShort {
                    frames: 11,
                    needed: 12
                })
            }]
        );
        assert_eq!(r.frames, vec![None; 11]);
        let four = Motion::new(Array3::zeros((30, 4, 3)), None).unwrap();
        assert!(matches!(
            score_recording(&d, &four, 1, FrameAggregation::Max),
            Err(DetectError::WrongJoints { .. })
        ));
    }

    #[test]
    fn frame_scores_aggregate_the_covering_windows() {
        let d = detector();
        let rec = clip(0.2, 30, 0.0);
        for stride in [1, 5, 7] {
            let max = score_recording(&d, &rec, stride, FrameAggregation::Max).unwrap();
            let mean = score_recording(&d, &rec, stride, FrameAggregation::Mean).unwrap();
            // A tail window ends at the last frame.
            assert_eq!(max.windows.last().unwrap().end, 30);
            for f in 0..30 {
                let covering: Vec<f64> = max
                    .windows
                    .iter()
                    .filter(|w| w.start <= f && f < w.end)
                    .map(|w| w.outcome.score().unwrap() as f64)
                    .collect();
                assert!(!covering.is_empty());
                let want_max = covering.iter().cloned().fold(f64::MIN, f64::max);
                let want_mean = covering.iter().sum::<f64>() / covering.len() as f64;
                assert_eq!(max.frames[f].unwrap(), want_max as f32);
                assert!((mean.frames[f].unwrap() as f64 - want_mean).abs() < 1e-5);
            }
        }
        // The tail window is the detector's score of the last T frames.
        let r = score_recording(&d, &rec, 7, FrameAggregation::Max).unwrap();
        let last = r.windows.last().unwrap();
        assert_eq!((last.start, last.end), (18, 30));
        assert_eq!(
            last.outcome.score().unwrap(),
            d.score(&window(&rec, 18, 12).unwrap()).unwrap()
        );
    }

    #[test]
    fn memory_stays_flat_over_100k_frames() {
        let d = detector();
        let mut s = StreamScorer::new(&d, 97, None).unwrap();
        let before = (s.buffer_len(), s.ring.as_ptr(), s.lost.as_ptr());
        let src = clip(0.05, 500, 0.0);
        let mut windows = 0;
        for i in 0..100_000 {
            let f = src.frame(i % 500);
            if s.push(f).unwrap().is_some() {
                windows += 1;
            }
        }
        assert_eq!(windows, (100_000 - 12) / 97 + 1);
        // The same buffers, never grown or moved.
        assert_eq!((s.buffer_len(), s.ring.as_ptr(), s.lost.as_ptr()), before);
        assert_eq!(s.frames_seen(), 100_000);
    }
}
