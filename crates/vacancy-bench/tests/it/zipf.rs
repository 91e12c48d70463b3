//! The Zipf sampler is skewed toward low ranks and stays in range.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use vacancy_bench::zipf::Zipf;

#[test]
fn rank_one_is_drawn_far_more_than_rank_one_hundred() {
    let zipf = Zipf::new(1000, 1.0).expect("valid");
    let mut rng = SmallRng::seed_from_u64(11);
    let mut counts = vec![0u64; 1001];
    for _ in 0..200_000 {
        let rank = zipf.sample_rank(&mut rng);
        assert!((1..=1000).contains(&rank), "rank {rank} out of range");
        counts[rank] += 1;
    }
    // P(rank 1) = 1 / H(1000) ≈ 13.4 %; P(rank 100) is a hundredth of that.
    assert!(
        counts[1] > 10 * counts[100],
        "{} vs {}",
        counts[1],
        counts[100]
    );
    let share = counts[1] as f64 / 200_000.0;
    assert!((0.12..0.15).contains(&share), "rank 1 share {share}");
    assert!(counts[1] > counts[2] && counts[2] > counts[10]);
    assert_eq!(counts[0], 0);
}

#[test]
fn same_seed_same_draws() {
    let zipf = Zipf::new(50, 1.2).expect("valid");
    let draw = |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..100)
            .map(|_| zipf.sample_index(&mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(5), draw(5));
    assert!(draw(5).iter().all(|&i| i < 50));
}
