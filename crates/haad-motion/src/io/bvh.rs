//! BVH motion capture files: hierarchy parser and forward kinematics.
//!
//! Conventions (those of the BVH format as written by common exporters):
//! - Angles are degrees. A joint's rotation channels, in the order listed, compose as
//!   `R = R_1 * R_2 * R_3` (e.g. `Zrotation Xrotation Yrotation` gives `R = Rz * Rx * Ry`):
//!   intrinsic rotations in the listed order, so the last listed acts first on a vector.
//! - A joint's local translation is its `OFFSET`; each position channel it has replaces the
//!   matching component of the offset (`Xposition` replaces x...).
//! - World placement: `p_j = p_parent + W_parent * t_j` and `W_j = W_parent * R_j`; a root
//!   joint has `p = t`, `W = R`.
//! - `End Site` blocks carry no channels and are not joints; they are parsed and ignored.
//! - `Frame Time` gives the frame rate `1 / frame_time`, rounded to the nearest integer when
//!   within 1e-4 relative of it (exporters write 1/30 s as `0.0333333`).

use std::path::Path;

use ndarray::Array3;

use crate::error::Result;
use crate::io::{io_error, parse_error};
use crate::limits::{
    check, MAX_CHANNELS, MAX_FPS, MAX_FRAMES, MAX_JOINTS, MAX_JOINT_CHANNELS, MAX_VALUES,
};
use crate::motion::Motion;

/// One channel of a BVH joint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Translation along x.
    Xposition,
    /// Translation along y.
    Yposition,
    /// Translation along z.
    Zposition,
    /// Rotation about x (degrees).
    Xrotation,
    /// Rotation about y (degrees).
    Yrotation,
    /// Rotation about z (degrees).
    Zrotation,
}

impl Channel {
    fn parse(token: &str) -> Option<Self> {
        Some(match token.to_ascii_lowercase().as_str() {
            "xposition" => Channel::Xposition,
            "yposition" => Channel::Yposition,
            "zposition" => Channel::Zposition,
            "xrotation" => Channel::Xrotation,
            "yrotation" => Channel::Yrotation,
            "zrotation" => Channel::Zrotation,
            _ => return None,
        })
    }
}

/// One joint of a BVH hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct BvhJoint {
    /// The joint's name.
    pub name: String,
    /// Index of its parent joint (`None` for a `ROOT`).
    pub parent: Option<usize>,
    /// `OFFSET`: the translation from the parent, in the parent's frame.
    pub offset: [f64; 3],
    /// Its channels, in the order their values appear in a frame.
    pub channels: Vec<Channel>,
    /// Index of its first channel value within a frame.
    pub first_channel: usize,
}

/// A parsed BVH file: the joint hierarchy (depth-first, parents before children) and the
/// channel values of every frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Bvh {
    /// Joints in file order (End Sites excluded).
    pub joints: Vec<BvhJoint>,
    /// Seconds per frame (`Frame Time`).
    pub frame_time: f64,
    /// Channel values, `frames x channels`, row-major.
    pub values: Vec<f64>,
    /// Number of frames.
    pub frames: usize,
}

/// Splits text into whitespace tokens with their 1-based line numbers.
struct Tokens<'a> {
    toks: Vec<(usize, &'a str)>,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<(usize, &'a str)> {
        let t = self.toks.get(self.pos).copied();
        self.pos += usize::from(t.is_some());
        t
    }

    fn last_line(&self) -> usize {
        self.toks.last().map_or(0, |t| t.0)
    }
}

struct Parser<'a, 'p> {
    tokens: Tokens<'a>,
    path: &'p Path,
    joints: Vec<BvhJoint>,
    channels: usize,
}

impl<'a> Parser<'a, '_> {
    fn next(&mut self, what: &str) -> Result<(usize, &'a str)> {
        self.tokens.next().ok_or_else(|| {
            parse_error(
                self.path,
                self.tokens.last_line(),
                format!("unexpected end of file, expected {what}"),
            )
        })
    }

    fn expect(&mut self, word: &str, context: &str) -> Result<usize> {
        let (line, tok) = self.next(&format!("`{word}` {context}"))?;
        if tok != word {
            return Err(parse_error(
                self.path,
                line,
                format!("expected `{word}` {context}, found `{tok}`"),
            ));
        }
        Ok(line)
    }

    fn number(&mut self, what: &str) -> Result<f64> {
        let (line, tok) = self.next(what)?;
        tok.parse::<f64>()
            .map_err(|_| parse_error(self.path, line, format!("{what}: not a number: `{tok}`")))
    }

    fn offset(&mut self, context: &str) -> Result<[f64; 3]> {
        self.expect("OFFSET", context)?;
        let mut o = [0.0; 3];
        for (k, v) in o.iter_mut().enumerate() {
            *v = self.number(&format!("OFFSET component {}", k + 1))?;
        }
        Ok(o)
    }

    /// Parses `name { OFFSET .. CHANNELS ..` after `ROOT` / `JOINT` and adds the joint;
    /// returns its index, name and the line of its `{`.
    fn joint_header(&mut self, parent: Option<usize>) -> Result<(usize, &'a str, usize)> {
        let (line, name) = self.next("a joint name")?;
        if self.joints.len() >= MAX_JOINTS {
            return Err(parse_error(
                self.path,
                line,
                format!("more than {MAX_JOINTS} joints (haad_motion::limits::MAX_JOINTS)"),
            ));
        }
        let context = format!("in joint {name}");
        let open = self.expect("{", &format!("opening joint {name}"))?;
        let offset = self.offset(&context)?;
        let (line, tok) = self.next(&format!("CHANNELS {context}"))?;
        if tok != "CHANNELS" {
            return Err(parse_error(
                self.path,
                line,
                format!("expected `CHANNELS` {context}, found `{tok}`"),
            ));
        }
        let (line, count) = self.next("a channel count")?;
        let count: usize = count.parse().map_err(|_| {
            parse_error(
                self.path,
                line,
                format!("channel count is not a number: `{count}`"),
            )
        })?;
        check("channel count", count, MAX_JOINT_CHANNELS)
            .map_err(|m| parse_error(self.path, line, format!("{m} {context}")))?;
        let total = self.channels + count;
        check("total channel count", total, MAX_CHANNELS)
            .map_err(|m| parse_error(self.path, line, format!("{m} {context}")))?;
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count {
            let (line, tok) = self.next("a channel name")?;
            channels.push(Channel::parse(tok).ok_or_else(|| {
                parse_error(
                    self.path,
                    line,
                    format!("unknown channel `{tok}` {context}"),
                )
            })?);
        }
        let index = self.joints.len();
        self.joints.push(BvhJoint {
            name: name.to_string(),
            parent,
            offset,
            first_channel: self.channels,
            channels,
        });
        self.channels = total;
        Ok((index, name, open))
    }

    /// Parses a whole `ROOT` tree after the `ROOT` keyword, without recursion: the open joints
    /// are kept on an explicit stack, so nesting depth costs heap, not call stack.
    fn root(&mut self) -> Result<()> {
        let mut open = vec![self.joint_header(None)?];
        while let Some(&(index, name, open_line)) = open.last() {
            let (line, tok) = self.next(&format!(
                "`}}` closing joint {name} (opened at line {open_line})"
            ))?;
            match tok {
                "}" => {
                    open.pop();
                }
                "JOINT" => {
                    let child = self.joint_header(Some(index))?;
                    open.push(child);
                }
                "End" => {
                    self.expect("Site", "after `End`")?;
                    self.expect("{", "opening End Site")?;
                    self.offset("in End Site")?;
                    self.expect("}", "closing End Site")?;
                }
                other => {
                    return Err(parse_error(
                        self.path,
                        line,
                        format!(
                            "expected `JOINT`, `End Site` or `}}` closing joint {name} \
                             (opened at line {open_line}), found `{other}`"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Parses BVH text; `path` is only used to name the file in errors.
pub fn parse_bvh(text: &str, path: &Path) -> Result<Bvh> {
    // The hierarchy and the MOTION header are tokenised; frame lines are read line by line.
    let lines: Vec<&str> = text.lines().collect();
    let motion_line = lines
        .iter()
        .position(|l| l.trim() == "MOTION")
        .ok_or_else(|| parse_error(path, 0, "no `MOTION` section"))?;
    let toks = lines[..motion_line]
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.split_ascii_whitespace().map(move |t| (i + 1, t)))
        .collect();
    let mut p = Parser {
        tokens: Tokens { toks, pos: 0 },
        path,
        joints: Vec::new(),
        channels: 0,
    };
    p.expect("HIERARCHY", "at the start of the file")?;
    while let Some((line, tok)) = p.tokens.next() {
        if tok != "ROOT" {
            return Err(parse_error(
                path,
                line,
                format!("expected `ROOT` or `MOTION`, found `{tok}`"),
            ));
        }
        p.root()?;
    }
    if p.joints.is_empty() {
        return Err(parse_error(
            path,
            motion_line + 1,
            "no joint before `MOTION`",
        ));
    }
    let (joints, channels) = (p.joints, p.channels);

    // MOTION header: "Frames: N" and "Frame Time: t".
    let header = |i: usize, key: &str| -> Result<&str> {
        let line = lines
            .get(i)
            .ok_or_else(|| parse_error(path, i, format!("missing `{key}` line")))?;
        line.trim()
            .strip_prefix(key)
            .map(str::trim)
            .ok_or_else(|| parse_error(path, i + 1, format!("expected `{key}`, found {line:?}")))
    };
    let n = header(motion_line + 1, "Frames:")?;
    let frames: usize = n.parse().map_err(|_| {
        parse_error(
            path,
            motion_line + 2,
            format!("frame count: not a number: {n:?}"),
        )
    })?;
    let ft = header(motion_line + 2, "Frame Time:")?;
    let frame_time: f64 = ft.parse().map_err(|_| {
        parse_error(
            path,
            motion_line + 3,
            format!("frame time: not a number: {ft:?}"),
        )
    })?;
    check("frame count", frames, MAX_FRAMES).map_err(|m| parse_error(path, motion_line + 2, m))?;
    if !(frame_time.is_finite() && frame_time >= 1.0 / MAX_FPS) {
        return Err(parse_error(
            path,
            motion_line + 3,
            format!(
                "frame time must be at least 1 / {MAX_FPS} s (haad_motion::limits::MAX_FPS), \
                 got {frame_time}"
            ),
        ));
    }

    // Never more frames than the file has lines left: the announced count is not trusted.
    let present = frames.min(lines.len().saturating_sub(motion_line + 3));
    let mut values = Vec::with_capacity(present.saturating_mul(channels));
    let mut found = 0;
    for (i, line) in lines.iter().enumerate().skip(motion_line + 3) {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if found == frames {
            return Err(parse_error(
                path,
                line_no,
                format!("more frame lines than the {frames} frames announced by `Frames:`"),
            ));
        }
        let before = values.len();
        for tok in line.split_ascii_whitespace() {
            values.push(
                tok.parse::<f64>()
                    .map_err(|_| parse_error(path, line_no, format!("not a number: `{tok}`")))?,
            );
        }
        let got = values.len() - before;
        if got != channels {
            return Err(parse_error(
                path,
                line_no,
                format!("frame {found} has {got} values, the hierarchy has {channels} channels"),
            ));
        }
        found += 1;
    }
    if found != frames {
        return Err(parse_error(
            path,
            lines.len(),
            format!("truncated file: `Frames:` announces {frames} frames, found {found}"),
        ));
    }
    // Forward kinematics writes frames x joints x 3 positions: bound them too (joints
    // without channels cost no bytes in a frame line).
    let positions = frames.saturating_mul(joints.len() * 3);
    check("frames x joints x 3 =", positions, MAX_VALUES)
        .map_err(|m| parse_error(path, motion_line + 2, m))?;
    Ok(Bvh {
        joints,
        frame_time,
        values,
        frames,
    })
}

/// Reads and parses a BVH file.
pub fn read_bvh(path: &Path) -> Result<Bvh> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    parse_bvh(&text, path)
}

type Mat3 = [[f64; 3]; 3];

// Written out (no iterator chains) so that unoptimised test builds stay fast.
fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let [a0, a1, a2] = a;
    let [b0, b1, b2] = b;
    let row = |r: &[f64; 3]| {
        [
            r[0] * b0[0] + r[1] * b1[0] + r[2] * b2[0],
            r[0] * b0[1] + r[1] * b1[1] + r[2] * b2[1],
            r[0] * b0[2] + r[1] * b1[2] + r[2] * b2[2],
        ]
    };
    [row(a0), row(a1), row(a2)]
}

fn mat_vec(a: &Mat3, v: &[f64; 3]) -> [f64; 3] {
    [
        a[0][0] * v[0] + a[0][1] * v[1] + a[0][2] * v[2],
        a[1][0] * v[0] + a[1][1] * v[1] + a[1][2] * v[2],
        a[2][0] * v[0] + a[2][1] * v[1] + a[2][2] * v[2],
    ]
}

/// Rotation by `degrees` about axis 0 (x), 1 (y) or 2 (z).
fn axis_rotation(axis: usize, degrees: f64) -> Mat3 {
    let (s, c) = degrees.to_radians().sin_cos();
    match axis {
        0 => [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]],
        1 => [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]],
        _ => [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl Bvh {
    /// Joint names, in file order.
    pub fn names(&self) -> Vec<String> {
        self.joints.iter().map(|j| j.name.clone()).collect()
    }

    /// Parent of each joint, in file order.
    pub fn parents(&self) -> Vec<Option<usize>> {
        self.joints.iter().map(|j| j.parent).collect()
    }

    /// Frame rate from `Frame Time` (see the module doc for the rounding).
    pub fn fps(&self) -> f32 {
        let fps = 1.0 / self.frame_time;
        let round = fps.round();
        if round > 0.0 && ((fps - round) / round).abs() < 1e-4 {
            round as f32
        } else {
            fps as f32
        }
    }

    /// Total channels per frame.
    pub fn channels(&self) -> usize {
        self.joints.iter().map(|j| j.channels.len()).sum()
    }

    /// Local translation of every joint at `frame` (offset with position channels applied).
    pub fn local_translations(&self, frame: usize) -> Vec<[f64; 3]> {
        let row = &self.values[frame * self.channels()..];
        self.joints
            .iter()
            .map(|j| {
                let mut t = j.offset;
                for (k, ch) in j.channels.iter().enumerate() {
                    let v = row[j.first_channel + k];
                    match ch {
                        Channel::Xposition => t[0] = v,
                        Channel::Yposition => t[1] = v,
                        Channel::Zposition => t[2] = v,
                        _ => {}
                    }
                }
                t
            })
            .collect()
    }

    /// World positions of every joint in every frame by forward kinematics (in f64, stored as
    /// f32), `[frames, joints, 3]`, with the file's frame rate. `None` when the file has no
    /// frames.
    pub fn positions(&self) -> Result<Option<Motion>> {
        if self.frames == 0 {
            return Ok(None);
        }
        let n = self.joints.len();
        let c = self.channels();
        let mut out = Vec::with_capacity(self.frames * n * 3);
        let mut world_pos = vec![[0.0f64; 3]; n];
        let mut world_rot = vec![IDENTITY; n];
        for f in 0..self.frames {
            let row = &self.values[f * c..(f + 1) * c];
            for (j, joint) in self.joints.iter().enumerate() {
                let mut t = joint.offset;
                let mut local = IDENTITY;
                for (k, ch) in joint.channels.iter().enumerate() {
                    let v = row[joint.first_channel + k];
                    match ch {
                        Channel::Xposition => t[0] = v,
                        Channel::Yposition => t[1] = v,
                        Channel::Zposition => t[2] = v,
                        Channel::Xrotation => local = mat_mul(&local, &axis_rotation(0, v)),
                        Channel::Yrotation => local = mat_mul(&local, &axis_rotation(1, v)),
                        Channel::Zrotation => local = mat_mul(&local, &axis_rotation(2, v)),
                    }
                }
                match joint.parent {
                    Some(p) => {
                        let d = mat_vec(&world_rot[p], &t);
                        let q = world_pos[p];
                        world_pos[j] = [q[0] + d[0], q[1] + d[1], q[2] + d[2]];
                        world_rot[j] = mat_mul(&world_rot[p], &local);
                    }
                    None => {
                        world_pos[j] = t;
                        world_rot[j] = local;
                    }
                }
                let p = world_pos[j];
                out.extend_from_slice(&[p[0] as f32, p[1] as f32, p[2] as f32]);
            }
        }
        let out =
            Array3::from_shape_vec((self.frames, n, 3), out).expect("frames * joints * 3 values");
        Motion::new(out, Some(self.fps())).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three joints: Hips (6 channels) -> Knee (3 rotations, Z X Y) -> Foot (position channels
    /// replacing its offset, then rotations in X Y Z order), with an End Site.
    const THREE: &str = "HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 0 -2 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Foot
    {
      OFFSET 1 0 0
      CHANNELS 4 Yposition Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.04
1 2 3 0 0 0   0 0 0   0 0 0 0
0 0 0 90 0 0  90 90 0 0 0 0 0
0 0 0 0 0 0   0 0 0   5 0 0 0
";

    fn close(a: &[f32], b: [f64; 3]) {
        for k in 0..3 {
            assert!((a[k] as f64 - b[k]).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn forward_kinematics_matches_hand_computation() {
        let bvh = parse_bvh(THREE, Path::new("three.bvh")).unwrap();
        assert_eq!(bvh.names(), vec!["Hips", "Knee", "Foot"]);
        assert_eq!(bvh.parents(), vec![None, Some(0), Some(1)]);
        assert_eq!(bvh.fps(), 25.0);
        let m = bvh.positions().unwrap().unwrap();
        let p = |f: usize, j: usize| m.data().slice(ndarray::s![f, j, ..]).to_vec();
        // Frame 0: no rotation; Foot's Yposition channel (0) replaces its offset's y (0).
        close(&p(0, 0), [1.0, 2.0, 3.0]);
        close(&p(0, 1), [1.0, 0.0, 3.0]);
        close(&p(0, 2), [2.0, 0.0, 3.0]);
        // Frame 1: Hips Rz(90) maps (x, y, z) to (-y, x, z): Knee = Rz90 (0, -2, 0) = (2, 0, 0).
        // Knee's "Zrotation Xrotation Yrotation" = (90, 90, 0) gives R = Rz90 * Rx90, so
        // Foot = Knee + Rz90 * Rz90 * Rx90 * (1, 0, 0) = (2, 0, 0) + (-1, 0, 0).
        // (The reversed order Rx90 * Rz90 would put Foot at (2, 0, 1).)
        close(&p(1, 1), [2.0, 0.0, 0.0]);
        close(&p(1, 2), [1.0, 0.0, 0.0]);
        // Frame 2: Foot's Yposition = 5 replaces the offset's y: Foot = Knee + (1, 5, 0).
        close(&p(2, 1), [0.0, -2.0, 0.0]);
        close(&p(2, 2), [1.0, 3.0, 0.0]);
    }

    #[test]
    fn rotation_order_follows_the_channel_list() {
        // One joint rotated X then Z (listed "Xrotation Zrotation"): R = Rx90 * Rz90.
        // Child offset (1, 0, 0): Rz90 -> (0, 1, 0), then Rx90 -> (0, 0, 1).
        let text = "HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 2 Xrotation Zrotation\n \
                    JOINT B\n {\n  OFFSET 1 0 0\n  CHANNELS 0\n }\n}\nMOTION\nFrames: 1\n\
                    Frame Time: 0.0333333\n90 90\n";
        let bvh = parse_bvh(text, Path::new("order.bvh")).unwrap();
        assert_eq!(bvh.fps(), 30.0);
        let m = bvh.positions().unwrap().unwrap();
        close(
            &m.data().slice(ndarray::s![0, 1, ..]).to_vec(),
            [0.0, 0.0, 1.0],
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = THREE.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Qrotation");
        let err = parse_bvh(&bad, Path::new("q.bvh")).unwrap_err().to_string();
        assert!(
            err.starts_with("q.bvh:9:") && err.contains("Qrotation"),
            "{err}"
        );
        let short = THREE.replace("0 0 0 0 0 0   0 0 0   5 0 0 0\n", "");
        let err = parse_bvh(&short, Path::new("s.bvh"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("announces 3 frames, found 2"), "{err}");
        let wide = THREE.replace("5 0 0 0", "5 0 0 0 7");
        let err = parse_bvh(&wide, Path::new("w.bvh"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("w.bvh:26:") && err.contains("14 values"),
            "{err}"
        );
    }
}
