//! [`Motion`]: one clip of skeleton positions, and [`Skeleton`]: the joints it is made of.

use ndarray::{Array2, Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{MotionError, Result};

/// One motion clip: joint positions of shape `[frames, joints, 3]` (x, y, z), in f32.
///
/// A `Motion` always has at least one frame, at least one joint and exactly 3 coordinates.
/// Values are not required to be finite here: loaders and scorers check that themselves with
/// [`Motion::check_finite`], so that they can name the file at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    data: Array3<f32>,
    fps: Option<f32>,
}

impl Motion {
    /// Wraps an array of shape `[frames, joints, 3]`, with its frame rate when known.
    pub fn new(data: Array3<f32>, fps: Option<f32>) -> Result<Self> {
        let (t, j, c) = data.dim();
        if t == 0 || j == 0 || c != 3 {
            return Err(MotionError::Shape {
                what: "motion".into(),
                expected: "[frames >= 1, joints >= 1, 3]".into(),
                got: format!("{:?}", data.shape()),
            });
        }
        if let Some(f) = fps {
            if !(f.is_finite() && f > 0.0) {
                return Err(MotionError::InvalidArgument(format!(
                    "frame rate must be positive and finite, got {f}"
                )));
            }
        }
        Ok(Self { data, fps })
    }

    /// Builds a motion from a flat row-major buffer of `frames * joints * 3` values.
    pub fn from_flat(values: Vec<f32>, joints: usize, fps: Option<f32>) -> Result<Self> {
        if joints == 0 || !values.len().is_multiple_of(joints * 3) {
            return Err(MotionError::Shape {
                what: "flat motion buffer".into(),
                expected: format!("a multiple of joints * 3 = {} values", joints * 3),
                got: format!("{} values", values.len()),
            });
        }
        let frames = values.len() / (joints * 3);
        let data = Array3::from_shape_vec((frames, joints, 3), values).map_err(|e| {
            MotionError::InvalidArgument(format!("cannot shape motion buffer: {e}"))
        })?;
        Self::new(data, fps)
    }

    /// Number of frames T.
    pub fn frames(&self) -> usize {
        self.data.dim().0
    }

    /// Number of joints J.
    pub fn joints(&self) -> usize {
        self.data.dim().1
    }

    /// Frame rate in frames per second, when known.
    pub fn fps(&self) -> Option<f32> {
        self.fps
    }

    /// The positions, `[frames, joints, 3]`.
    pub fn data(&self) -> &Array3<f32> {
        &self.data
    }

    /// Gives back the positions array.
    pub fn into_data(self) -> Array3<f32> {
        self.data
    }

    /// The pose at frame `t`, `[joints, 3]`.
    ///
    /// # Panics
    /// If `t >= self.frames()`.
    pub fn frame(&self, t: usize) -> ArrayView2<'_, f32> {
        self.data.index_axis(Axis(0), t)
    }

    /// The motion as a `[frames, joints * 3]` matrix (joint-major, then x, y, z).
    pub fn to_matrix(&self) -> Array2<f32> {
        let (t, j, _) = self.data.dim();
        self.data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((t, j * 3))
            .expect("contiguous [T, J, 3] reshapes to [T, 3J]")
    }

    /// Whether every coordinate is exactly zero (a failed recording).
    pub fn is_all_zero(&self) -> bool {
        self.data.iter().all(|&v| v == 0.0)
    }

    /// Returns an error naming the first non-finite value (frame, joint, coordinate).
    pub fn check_finite(&self) -> Result<()> {
        for ((t, j, c), v) in self.data.indexed_iter() {
            if !v.is_finite() {
                return Err(MotionError::InvalidArgument(format!(
                    "non-finite coordinate {v} at frame {t}, joint {j}, axis {c}"
                )));
            }
        }
        Ok(())
    }
}

/// The joints of a skeleton: names, parent of each joint, and the joint used as the root for
/// making clips root-relative.
///
/// Deserialising checks the same rules as [`Skeleton::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SkeletonParts")]
pub struct Skeleton {
    names: Vec<String>,
    parents: Vec<Option<usize>>,
    root: usize,
}

/// The serialised fields of a [`Skeleton`], checked by `Skeleton::new` when deserialising.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkeletonParts {
    names: Vec<String>,
    parents: Vec<Option<usize>>,
    root: usize,
}

impl TryFrom<SkeletonParts> for Skeleton {
    type Error = MotionError;

    fn try_from(p: SkeletonParts) -> Result<Self> {
        Skeleton::new(p.names, p.parents, p.root)
    }
}

impl Skeleton {
    /// Checks that names and parents have one entry per joint, that the parents form a forest
    /// (every parent index is a joint, and following parents from any joint ends at a joint
    /// without parent: no cycles) and that `root` is a joint.
    ///
    /// Joints keep the order they are given in: a parent may come after its child (the MSR
    /// Action3D order does that), so code that needs parents first uses
    /// [`Skeleton::breadth_first`].
    pub fn new(names: Vec<String>, parents: Vec<Option<usize>>, root: usize) -> Result<Self> {
        if names.is_empty() || names.len() != parents.len() {
            return Err(MotionError::Shape {
                what: "skeleton".into(),
                expected: "one name and one parent per joint, at least one joint".into(),
                got: format!("{} names, {} parents", names.len(), parents.len()),
            });
        }
        let j = names.len();
        crate::limits::check("joint count", j, crate::limits::MAX_JOINTS)
            .map_err(MotionError::InvalidArgument)?;
        for (i, p) in parents.iter().enumerate() {
            if let Some(p) = *p {
                if p >= j {
                    return Err(MotionError::InvalidArgument(format!(
                        "joint {i} ({}) has parent {p}, out of range for {j} joints",
                        names[i]
                    )));
                }
            }
        }
        // No cycles: every joint is reached from a tree root through child lists (linear in J;
        // a joint on a cycle, or below one, is never reached).
        let order = breadth_first_order(&parents);
        if order.len() != j {
            let mut seen = vec![false; j];
            for &k in &order {
                seen[k] = true;
            }
            let i = seen.iter().position(|&s| !s).unwrap_or(0);
            return Err(MotionError::InvalidArgument(format!(
                "joint {i} ({}) lies on or below a parent cycle",
                names[i]
            )));
        }
        if root >= names.len() {
            return Err(MotionError::InvalidArgument(format!(
                "root joint {root} out of range for {} joints",
                names.len()
            )));
        }
        Ok(Self {
            names,
            parents,
            root,
        })
    }

    /// Number of joints J.
    pub fn joints(&self) -> usize {
        self.names.len()
    }

    /// Joint names, in joint order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Parent of each joint (`None` for a tree root).
    pub fn parents(&self) -> &[Option<usize>] {
        &self.parents
    }

    /// The joint subtracted when making clips root-relative.
    pub fn root(&self) -> usize {
        self.root
    }

    /// Index of the joint with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The same skeleton with another root joint.
    pub fn with_root(mut self, root: usize) -> Result<Self> {
        if root >= self.names.len() {
            return Err(MotionError::InvalidArgument(format!(
                "root joint {root} out of range for {} joints",
                self.names.len()
            )));
        }
        self.root = root;
        Ok(self)
    }

    /// Joint indices in breadth-first order: the tree roots (joints without parent) in index
    /// order, then their children level by level, each level in index order. Every parent
    /// comes before its children in this order.
    pub fn breadth_first(&self) -> Vec<usize> {
        breadth_first_order(&self.parents)
    }

    /// Bone list (child, parent) for drawing stick figures.
    pub fn bones(&self) -> Vec<(usize, usize)> {
        self.parents
            .iter()
            .enumerate()
            .filter_map(|(c, p)| p.map(|p| (c, p)))
            .collect()
    }
}

/// Breadth-first order of a parent table (see [`Skeleton::breadth_first`]), in time linear in
/// the joint count. Joints on or below a parent cycle are not in it.
fn breadth_first_order(parents: &[Option<usize>]) -> Vec<usize> {
    let j = parents.len();
    // Children of each joint in index order, as one flat list (counting sort by parent).
    let mut start = vec![0usize; j + 1];
    for p in parents.iter().flatten() {
        start[p + 1] += 1;
    }
    for k in 0..j {
        start[k + 1] += start[k];
    }
    let mut fill = start.clone();
    let mut children = vec![0usize; start[j]];
    for (c, p) in parents.iter().enumerate() {
        if let Some(p) = *p {
            children[fill[p]] = c;
            fill[p] += 1;
        }
    }
    let mut order: Vec<usize> = (0..j).filter(|&i| parents[i].is_none()).collect();
    let mut next = 0;
    while next < order.len() {
        let p = order[next];
        order.extend_from_slice(&children[start[p]..start[p + 1]]);
        next += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes() {
        assert!(Motion::new(Array3::zeros((0, 2, 3)), None).is_err());
        assert!(Motion::new(Array3::zeros((2, 0, 3)), None).is_err());
        assert!(Motion::new(Array3::zeros((2, 2, 2)), None).is_err());
        assert!(Motion::new(Array3::zeros((2, 2, 3)), Some(0.0)).is_err());
        assert!(Motion::from_flat(vec![0.0; 7], 2, None).is_err());
        let m = Motion::from_flat((0..12).map(|v| v as f32).collect(), 2, Some(30.0)).unwrap();
        assert_eq!((m.frames(), m.joints()), (2, 2));
        assert_eq!(m.data()[[1, 0, 2]], 8.0);
        assert_eq!(m.to_matrix()[[1, 5]], 11.0);
    }

    #[test]
    fn finds_non_finite() {
        let mut a = Array3::zeros((3, 2, 3));
        a[[2, 1, 0]] = f32::NAN;
        let err = Motion::new(a, None).unwrap().check_finite().unwrap_err();
        assert!(
            err.to_string().contains("frame 2, joint 1, axis 0"),
            "{err}"
        );
    }

    #[test]
    fn skeleton_checks_forest_and_root() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Skeleton::new(n(&["a", "b"]), vec![None, Some(0)], 0).is_ok());
        // A parent may come after its child ...
        let late = Skeleton::new(n(&["a", "b", "c"]), vec![Some(1), None, Some(0)], 1).unwrap();
        assert_eq!(late.breadth_first(), vec![1, 0, 2]);
        // ... but parents must exist and must not form a cycle.
        assert!(Skeleton::new(n(&["a", "b"]), vec![Some(2), None], 0).is_err());
        assert!(Skeleton::new(n(&["a", "b"]), vec![Some(1), Some(0)], 0).is_err());
        assert!(Skeleton::new(n(&["a"]), vec![Some(0)], 0).is_err());
        assert!(Skeleton::new(n(&["a", "b", "c"]), vec![None, Some(2), Some(1)], 0).is_err());
        assert!(Skeleton::new(n(&["a", "b"]), vec![None, Some(0)], 2).is_err());
        assert!(Skeleton::new(n(&["a"]), vec![None, None], 0).is_err());
        let s = Skeleton::new(n(&["a", "b", "c"]), vec![None, Some(0), Some(1)], 0).unwrap();
        assert_eq!(s.bones(), vec![(1, 0), (2, 1)]);
        assert_eq!(s.index_of("c"), Some(2));
        // Serde round trip, and deserialising checks the rules.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Skeleton>(&json).unwrap(), s);
        let cyclic = r#"{"names": ["a", "b"], "parents": [1, 0], "root": 0}"#;
        let err = serde_json::from_str::<Skeleton>(cyclic)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
    }
}
