//! The memory mode on small counts: every listing lands in L1 and is weighed, and a capacity
//! too small for them is reported, not hidden.

use clap::Parser;
use vacancy_bench::cli::BenchArgs;
use vacancy_bench::memory::run;

fn args(listings: &str, mib: &str) -> BenchArgs {
    BenchArgs::try_parse_from([
        "vacancy-bench",
        "--scenario",
        "memory",
        "--listings",
        listings,
        "--cache-max-mib",
        mib,
    ])
    .expect("arguments")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_is_cached_and_weighed() {
    let report = run(&args("2000", "64"), "test".into()).await.expect("run");
    assert_eq!(report.listings, 2000);
    assert_eq!(report.entries, 2000);
    assert_eq!(report.not_cached, 0);
    assert_eq!(report.horizon_nights, 550);
    let mix = &report.mix;
    assert_eq!(
        mix.one_unit + mix.two_to_five_units + mix.ten_or_more_units,
        2000
    );
    assert!(mix.one_unit > mix.two_to_five_units && mix.two_to_five_units > 0);
    assert!(mix.ten_or_more_units > 0 && mix.bookings > 0 && mix.blocks > 0);
    // A one-unit calendar over 550 nights is 72 bytes of bits, a many-unit one 1,100 bytes of
    // counts: the average entry lies between, plus the listing and the cache's key.
    assert!(
        (200.0..5_000.0).contains(&report.weighed_bytes_per_listing),
        "{report:?}"
    );
    if cfg!(target_os = "linux") {
        assert!(report.rss_after_mib.is_some() && report.peak_rss_mib.is_some());
    }
    assert!(report.to_markdown().contains("| 2000 | 0 |"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_too_small_is_reported() {
    // 20,000 listings weigh several MiB: one MiB cannot hold them.
    let report = run(&args("20000", "1"), "test".into()).await.expect("run");
    assert!(report.not_cached > 0, "{report:?}");
    assert_eq!(report.entries + report.not_cached, 20_000);
    assert!(report.to_markdown().contains("are not in L1"));
}
