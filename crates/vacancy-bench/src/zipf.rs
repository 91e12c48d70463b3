//! Zipf-skewed choice of listings: rank `k` of `n` is drawn with probability proportional to
//! `1 / k^s`, so a few listings get most of the traffic, as on a real marketplace.
//!
//! A table of cumulative weights and a binary search: exact for any exponent, O(log n) per
//! draw and O(n) memory, which suits the listing counts a benchmark uses.

use rand::Rng;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZipfError {
    #[error("a Zipf distribution needs at least one rank")]
    Empty,
    #[error("the Zipf exponent must be a finite number >= 0, got {0}")]
    BadExponent(f64),
}

/// A Zipf distribution over ranks `1..=n`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cumulative[i]` = sum of the weights of ranks `1..=i + 1`.
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Result<Self, ZipfError> {
        if n == 0 {
            return Err(ZipfError::Empty);
        }
        if !exponent.is_finite() || exponent < 0.0 {
            return Err(ZipfError::BadExponent(exponent));
        }
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        Ok(Self { cumulative })
    }

    /// How many ranks there are.
    pub fn ranks(&self) -> usize {
        self.cumulative.len()
    }

    /// A rank in `1..=n`; rank 1 is the most likely.
    pub fn sample_rank<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.random::<f64>() * total;
        let index = self.cumulative.partition_point(|&c| c <= u);
        index.min(self.cumulative.len() - 1) + 1
    }

    /// A zero-based index in `0..n`, for indexing a slice ordered by popularity.
    pub fn sample_index<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        self.sample_rank(rng) - 1
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn refuses_empty_and_bad_exponents() {
        assert_eq!(Zipf::new(0, 1.0).err(), Some(ZipfError::Empty));
        assert!(matches!(
            Zipf::new(10, -0.5),
            Err(ZipfError::BadExponent(_))
        ));
        assert!(matches!(
            Zipf::new(10, f64::NAN),
            Err(ZipfError::BadExponent(_))
        ));
    }

    #[test]
    fn one_rank_is_always_drawn() {
        let zipf = Zipf::new(1, 1.0).expect("valid");
        let mut rng = SmallRng::seed_from_u64(1);
        assert!((0..1000).all(|_| zipf.sample_rank(&mut rng) == 1));
    }

    #[test]
    fn exponent_zero_is_uniform() {
        let zipf = Zipf::new(4, 0.0).expect("valid");
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[zipf.sample_index(&mut rng)] += 1;
        }
        // Each rank expects 10,000 draws; 5 standard deviations is about 430.
        assert!(
            counts.iter().all(|&c| (9_500..=10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
