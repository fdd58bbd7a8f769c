//! Train/test splits per category, seen/unseen categories, support sampling and the
//! contrastive minibatch sampler.

use rand::{rngs::StdRng, seq::index::sample, Rng, SeedableRng};

use crate::dataset::Dataset;
use crate::error::{MotionError, Result};

/// The method's share of each category used for training: the first 80 % of its clips.
pub const DEFAULT_TRAIN_FRACTION: f64 = 0.8;

/// Per category, which clips train and which test, and which categories are seen in training.
///
/// Clips of each category are ordered by their source path (a stable order, independent of load
/// order); the first `floor(fraction * n)` are train (at least one, and at most `n - 1` when the
/// category has two clips or more), the rest test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    train: Vec<Vec<usize>>,
    test: Vec<Vec<usize>>,
    seen: Vec<bool>,
}

impl Split {
    /// Splits `dataset`; `unseen` names the categories kept out of training.
    pub fn new(dataset: &Dataset, train_fraction: f64, unseen: &[String]) -> Result<Self> {
        if !(train_fraction > 0.0 && train_fraction < 1.0) {
            return Err(MotionError::InvalidArgument(format!(
                "train fraction must lie in (0, 1), got {train_fraction}"
            )));
        }
        let n_cat = dataset.categories().len();
        let mut seen = vec![true; n_cat];
        for name in unseen {
            seen[dataset.category_index(name)?] = false;
        }
        let mut per_cat: Vec<Vec<usize>> = vec![Vec::new(); n_cat];
        for (i, clip) in dataset.clips().iter().enumerate() {
            per_cat[clip.category].push(i);
        }
        let mut train = Vec::with_capacity(n_cat);
        let mut test = Vec::with_capacity(n_cat);
        for mut idx in per_cat {
            idx.sort_by(|&a, &b| {
                dataset.clips()[a]
                    .source
                    .cmp(&dataset.clips()[b].source)
                    .then(a.cmp(&b))
            });
            let n = idx.len();
            let mut n_train = (train_fraction * n as f64).floor() as usize;
            if n >= 2 {
                n_train = n_train.clamp(1, n - 1);
            } else {
                n_train = n;
            }
            let rest = idx.split_off(n_train);
            train.push(idx);
            test.push(rest);
        }
        Ok(Self { train, test, seen })
    }

    /// Number of categories.
    pub fn categories(&self) -> usize {
        self.seen.len()
    }

    /// Training clips (dataset indices) of category `c`, in path order.
    pub fn train(&self, c: usize) -> &[usize] {
        &self.train[c]
    }

    /// Test clips (dataset indices) of category `c`, in path order.
    pub fn test(&self, c: usize) -> &[usize] {
        &self.test[c]
    }

    /// Whether category `c` takes part in training.
    pub fn is_seen(&self, c: usize) -> bool {
        self.seen[c]
    }

    /// Indices of the seen categories.
    pub fn seen_categories(&self) -> Vec<usize> {
        (0..self.categories()).filter(|&c| self.seen[c]).collect()
    }

    /// Indices of the unseen categories.
    pub fn unseen_categories(&self) -> Vec<usize> {
        (0..self.categories()).filter(|&c| !self.seen[c]).collect()
    }

    /// All test clips, category by category.
    pub fn all_test(&self) -> Vec<usize> {
        self.test.iter().flatten().copied().collect()
    }

    /// All training clips of every category (seen and unseen), category by category: the
    /// clips that training batches and few-shot support sets are drawn from.
    pub fn all_train(&self) -> Vec<usize> {
        self.train.iter().flatten().copied().collect()
    }

    /// Moves the last `ceil(fraction * n)` training clips of every seen category into a
    /// validation list (at least one clip stays for training). Returns the reduced split and the
    /// validation clips per category (empty for unseen categories).
    pub fn hold_out(&self, fraction: f64) -> Result<(Split, Vec<Vec<usize>>)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(MotionError::InvalidArgument(format!(
                "validation fraction must lie in (0, 1), got {fraction}"
            )));
        }
        let mut reduced = self.clone();
        let mut validation = vec![Vec::new(); self.categories()];
        for c in self.seen_categories() {
            let n = reduced.train[c].len();
            let n_val = ((fraction * n as f64).ceil() as usize).min(n.saturating_sub(1));
            validation[c] = reduced.train[c].split_off(n - n_val);
        }
        Ok((reduced, validation))
    }
}

/// Draws `k` distinct clips of `pool` (e.g. one category's training clips) with `seed`.
///
/// The result keeps the order in which clips were drawn.
pub fn sample_support(pool: &[usize], k: usize, seed: u64) -> Result<Vec<usize>> {
    if k == 0 || k > pool.len() {
        return Err(MotionError::InvalidArgument(format!(
            "cannot draw {k} support clips from {} candidates",
            pool.len()
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(sample(&mut rng, pool.len(), k)
        .into_iter()
        .map(|i| pool[i])
        .collect())
}

/// Draws the method's minibatches: `per_category` distinct clips of every category, seeded.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    pools: Vec<(usize, Vec<usize>)>,
    per_category: usize,
    rng: StdRng,
}

impl BatchSampler {
    /// `pools` holds, for every training category, its index and its training clips; every pool
    /// must have at least `per_category` clips.
    pub fn new(pools: Vec<(usize, Vec<usize>)>, per_category: usize, seed: u64) -> Result<Self> {
        if pools.is_empty() || per_category == 0 {
            return Err(MotionError::InvalidArgument(
                "a batch needs at least one category and one clip per category".into(),
            ));
        }
        for (c, pool) in &pools {
            if pool.len() < per_category {
                return Err(MotionError::InvalidArgument(format!(
                    "category {c} has {} training clips, fewer than the {per_category} a batch takes",
                    pool.len()
                )));
            }
        }
        Ok(Self {
            pools,
            per_category,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The sampler for the seen categories of `split` (the method's two clips per category).
    pub fn for_split(split: &Split, per_category: usize, seed: u64) -> Result<Self> {
        let pools = split
            .seen_categories()
            .into_iter()
            .map(|c| (c, split.train(c).to_vec()))
            .collect();
        Self::new(pools, per_category, seed)
    }

    /// Clips per batch.
    pub fn batch_size(&self) -> usize {
        self.pools.len() * self.per_category
    }

    /// The next batch as `(clip index, category)` pairs, category by category.
    pub fn next_batch(&mut self) -> Vec<(usize, usize)> {
        let mut batch = Vec::with_capacity(self.batch_size());
        for (c, pool) in &self.pools {
            for i in sample(&mut self.rng, pool.len(), self.per_category) {
                batch.push((pool[i], *c));
            }
        }
        batch
    }

    /// A random `u64` from the sampler's stream (for seeding per-batch work such as augmenters).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Clip;
    use crate::motion::{Motion, Skeleton};
    use ndarray::Array3;

    /// Category c gets `sizes[c]` clips, loaded in reverse path order.
    fn dataset(sizes: &[usize]) -> Dataset {
        let skel = Skeleton::new(vec!["r".into()], vec![None], 0).unwrap();
        let cats = (0..sizes.len()).map(|c| format!("c{c}")).collect();
        let mut clips = Vec::new();
        for (c, &n) in sizes.iter().enumerate() {
            for i in (0..n).rev() {
                clips.push(Clip {
                    motion: Motion::new(Array3::zeros((2, 1, 3)), None).unwrap(),
                    category: c,
                    source: format!("c{c}/clip{i:02}").into(),
                });
            }
        }
        Dataset::new(skel, cats, clips, vec![]).unwrap()
    }

    #[test]
    fn split_takes_first_eighty_percent_in_path_order() {
        let ds = dataset(&[10, 27, 1]);
        let s = Split::new(&ds, 0.8, &["c1".to_string()]).unwrap();
        assert_eq!(s.train(0).len(), 8);
        assert_eq!(s.test(0).len(), 2);
        assert_eq!(s.train(1).len(), 21);
        assert_eq!(s.train(2).len(), 1);
        assert!(s.test(2).is_empty());
        let names: Vec<_> = s
            .train(0)
            .iter()
            .map(|&i| ds.clips()[i].source.clone())
            .collect();
        assert_eq!(names.first().unwrap().to_str(), Some("c0/clip00"));
        assert_eq!(names.last().unwrap().to_str(), Some("c0/clip07"));
        assert_eq!(s.seen_categories(), vec![0, 2]);
        assert_eq!(s.unseen_categories(), vec![1]);
        assert_eq!(s.all_test().len(), 2 + 6);
        let train = s.all_train();
        assert_eq!(train.len(), 8 + 21 + 1);
        assert_eq!(&train[..8], s.train(0));
        assert!(train.iter().all(|i| !s.all_test().contains(i)));
        assert!(Split::new(&ds, 0.8, &["nope".to_string()]).is_err());
        assert!(Split::new(&ds, 1.0, &[]).is_err());
    }

    #[test]
    fn hold_out_moves_last_train_clips() {
        let ds = dataset(&[10, 5]);
        let s = Split::new(&ds, 0.8, &["c1".to_string()]).unwrap();
        let (r, val) = s.hold_out(0.25).unwrap();
        assert_eq!(r.train(0).len(), 6);
        assert_eq!(val[0], s.train(0)[6..].to_vec());
        assert!(val[1].is_empty());
        assert_eq!(r.train(1), s.train(1));
        assert!(s.hold_out(0.0).is_err());
    }

    #[test]
    fn support_is_seeded_and_distinct() {
        let pool: Vec<usize> = (100..120).collect();
        let a = sample_support(&pool, 3, 9).unwrap();
        assert_eq!(a, sample_support(&pool, 3, 9).unwrap());
        assert_ne!(a, sample_support(&pool, 3, 10).unwrap());
        let mut d = a.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);
        assert!(a.iter().all(|x| pool.contains(x)));
        assert!(sample_support(&pool, 21, 0).is_err());
        assert!(sample_support(&pool, 0, 0).is_err());
    }

    #[test]
    fn batches_hold_two_distinct_clips_per_category() {
        let ds = dataset(&[10, 5, 6]);
        let s = Split::new(&ds, 0.8, &[]).unwrap();
        let mut b = BatchSampler::for_split(&s, 2, 1).unwrap();
        let mut b2 = BatchSampler::for_split(&s, 2, 1).unwrap();
        assert_eq!(b.batch_size(), 6);
        for _ in 0..20 {
            let batch = b.next_batch();
            assert_eq!(batch, b2.next_batch());
            for c in 0..3 {
                let clips: Vec<_> = batch.iter().filter(|p| p.1 == c).map(|p| p.0).collect();
                assert_eq!(clips.len(), 2);
                assert_ne!(clips[0], clips[1]);
                assert!(clips.iter().all(|i| s.train(c).contains(i)));
            }
        }
        assert!(BatchSampler::new(vec![(0, vec![1])], 2, 0).is_err());
    }
}
