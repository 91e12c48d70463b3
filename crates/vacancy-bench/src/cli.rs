//! Command-line options. Every option has a default that makes a complete, repeatable run, so
//! the command a report prints is enough to reproduce it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::scenarios::Scenario;

/// Load benchmarks for vacancy: starts the service in-process on a fresh database (or targets a
/// running one), loads listings, drives HTTP/1.1 keep-alive load per scenario and reports
/// throughput, latency percentiles, errors and the service's own counters.
#[derive(Debug, Clone, Parser)]
#[command(name = "vacancy-bench", version)]
pub struct BenchArgs {
    /// Scenarios, comma-separated: baseline, check, direct-db, batch, calendar, book, contend,
    /// or all. Or one of the two modes that run alone: `freshness` (two replicas on one
    /// database and NATS JetStream: commit on one → applied on the other) and `memory` (L1
    /// filled with --listings calendars, no service or database).
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = parse_scenario_choice)]
    pub scenario: Vec<ScenarioChoice>,

    /// Database of the in-process service (a fresh one per run).
    #[arg(long, value_enum, default_value_t = BackendChoice::Sqlite)]
    pub backend: BackendChoice,

    /// Benchmark a running service instead (`http://host:port`, loopback only). Data is then
    /// loaded through its API.
    #[arg(long, conflicts_with = "backend")]
    pub url: Option<String>,

    /// With --url: the service's database URL, so the contend scenario can audit it for
    /// overbookings.
    #[arg(long, requires = "url", hide_env_values = true)]
    pub audit_database_url: Option<String>,

    /// With --url: an admin bearer token for the service (`vacancy token --role admin --sub bench`
    /// in dev mode).
    #[arg(
        long,
        env = "VACANCY_BENCH_TOKEN",
        requires = "url",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Listings to load for the read and booking scenarios and for freshness [default: 10000];
    /// calendars put in L1 for memory [default: 1000000].
    #[arg(long)]
    pub listings: Option<usize>,

    /// Share of listings that get a few bookings (0-1).
    #[arg(long, default_value_t = 0.5)]
    pub booked_fraction: f64,

    /// One-unit listings the contend scenario fights over.
    #[arg(long, default_value_t = 8)]
    pub contend_listings: usize,

    /// Keep-alive connections driving load.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,

    /// Measured time per phase (e.g. `10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Load before each measured window, thrown away.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Open loop at this fixed rate (requests/s) for every scenario, instead of closed loop.
    /// For freshness: bookings per second through replica A [default: 200].
    #[arg(long)]
    pub rate: Option<f64>,

    /// Do not warm the service's cache before the read scenarios. By default every loaded
    /// listing is read once (batch checks of 1,000) before `check`, `batch` and `calendar`, so
    /// they measure reads from L1; with this flag they start cold and their cache counters show
    /// the hit ratio from a cold start.
    #[arg(long)]
    pub no_prewarm: bool,

    /// Run each scenario as a spike profile instead: open loop at --rate for --duration, then
    /// --spike-factor times that for --spike-duration, then --rate again for --duration.
    #[arg(long, requires = "rate")]
    pub spike: bool,

    /// How many times the steady rate the spike sends.
    #[arg(long, default_value_t = 10.0)]
    pub spike_factor: f64,

    /// How long the spike lasts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub spike_duration: Duration,

    /// After each closed-loop phase, also run open loop at this fraction of the throughput it
    /// reached (e.g. 0.5 for "half of peak").
    #[arg(long, conflicts_with = "rate")]
    pub open_loop_at: Option<f64>,

    /// Longest wait for one response; past it the request counts as a timeout error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Open loop: how long after the window late requests may still be sent.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Most requests one phase may send (warm-up included).
    #[arg(long, default_value_t = 50_000_000)]
    pub max_requests: u64,

    /// Skew of listing popularity in check, direct-db and calendar (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_exponent: f64,

    /// Listings per batch check.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,

    /// Nights per calendar request.
    #[arg(long, default_value_t = 90)]
    pub calendar_days: i64,

    /// Service counters to report deltas of: names, `prefix*` or `*suffix`, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http_requests_total,vacancy_*"
    )]
    pub counters: Vec<String>,

    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Also write the markdown table here (it is always printed to stdout).
    #[arg(long)]
    pub markdown: Option<PathBuf>,

    /// Write the latency percentile plot (SVG) here.
    #[arg(long)]
    pub svg: Option<PathBuf>,

    /// Seeds the data and the request mix.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Worker threads of the load generator's runtime [default: the machine's cores].
    #[arg(long)]
    pub client_threads: Option<usize>,

    /// Worker threads of the in-process service's runtime [default: the machine's cores].
    #[arg(long)]
    pub server_threads: Option<usize>,

    /// Database pool size of the in-process service.
    #[arg(long, default_value_t = 16)]
    pub db_max_connections: u32,

    /// The in-process service's bulkhead for single reads (its default: 512 at once); set it
    /// below --connections to see shedding in a spike.
    #[arg(long)]
    pub max_concurrent_reads: Option<usize>,

    /// Longest a request of the in-process service waits for a bulkhead slot before a 503
    /// (its default: 50 ms).
    #[arg(long, value_parser = parse_duration)]
    pub shed_queue_wait: Option<Duration>,

    /// Scheduling lag from which the in-process service sheds batch checks (reads from
    /// 2×, writes from 4×; 0s: off). Default: off, since closed and open loop runs measure
    /// capacity (a closed loop saturates the CPU on purpose) and freshness measures propagation;
    /// with --spike the service's own default (5 ms).
    #[arg(long, value_parser = parse_duration)]
    pub shed_lag: Option<Duration>,

    /// Listings loaded at once.
    #[arg(long, default_value_t = 16)]
    pub load_concurrency: usize,

    /// Freshness: the NATS server (JetStream enabled) both replicas use; each run makes a
    /// stream and subjects of its own and deletes the stream afterwards.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Freshness: which replica holds the outbox relay lease — `a`, the one written to, whose
    /// commits wake its relay at once, or `b`, which finds A's commits by polling the outbox.
    #[arg(long, value_enum, default_value_t = RelayReplica::A)]
    pub relay_replica: RelayReplica,

    /// Freshness: how often each replica is read again while the harness waits for it to
    /// answer the booked version (`0ms`: back to back), or a tenth of the time waited so far
    /// when that is longer.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Memory: the L1 capacity (MiB); it must hold every calendar, and the report says if
    /// anything was evicted.
    #[arg(long, default_value_t = 4096)]
    pub cache_max_mib: u64,

    /// Keep the in-process service's database after the run (it is deleted by default).
    #[arg(long)]
    pub keep_database: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioChoice {
    All,
    One(Scenario),
    /// The freshness mode (runs alone).
    Freshness,
    /// The memory mode (runs alone).
    Memory,
}

fn parse_scenario_choice(s: &str) -> Result<ScenarioChoice, String> {
    let s = s.trim();
    match s {
        "all" => return Ok(ScenarioChoice::All),
        "freshness" => return Ok(ScenarioChoice::Freshness),
        "memory" => return Ok(ScenarioChoice::Memory),
        _ => {}
    }
    Scenario::parse(s).map(ScenarioChoice::One).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!(
            "unknown scenario {s:?}; expected all, freshness, memory or one of {}",
            names.join(", ")
        )
    })
}

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// HTTP load, scenario by scenario.
    Load(Vec<Scenario>),
    /// Freshness lag across two replicas.
    Freshness,
    /// L1 memory for many listings.
    Memory,
}

/// Which freshness replica relays the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayReplica {
    A,
    B,
}

impl RelayReplica {
    pub fn name(self) -> &'static str {
        match self {
            RelayReplica::A => "a",
            RelayReplica::B => "b",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
}

impl BackendChoice {
    pub fn backend(self) -> vacancy_store::Backend {
        match self {
            BackendChoice::Sqlite => vacancy_store::Backend::Sqlite,
            BackendChoice::Postgres => vacancy_store::Backend::Postgres,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Sqlite => "sqlite",
            BackendChoice::Postgres => "postgres",
        }
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl BenchArgs {
    /// The in-process service's lag-shedding threshold: as asked, else the service's default
    /// for spikes and off (zero) for everything else (see `--shed-lag`).
    pub fn service_shed_lag(&self) -> Option<Duration> {
        self.shed_lag.or((!self.spike).then_some(Duration::ZERO))
    }

    /// Worker threads of the load generator's runtime.
    pub fn client_threads(&self) -> usize {
        self.client_threads.unwrap_or_else(cores).max(1)
    }

    /// Worker threads of the in-process service's runtime.
    pub fn server_threads(&self) -> usize {
        self.server_threads.unwrap_or_else(cores).max(1)
    }

    /// What this run does; an error when a mode that runs alone is combined with others.
    pub fn mode(&self) -> anyhow::Result<Mode> {
        let alone = |choice: ScenarioChoice, name: &str| -> anyhow::Result<bool> {
            if !self.scenario.contains(&choice) {
                return Ok(false);
            }
            anyhow::ensure!(
                self.scenario.iter().all(|c| *c == choice),
                "--scenario {name} runs alone; it cannot be combined with other scenarios"
            );
            Ok(true)
        };
        if alone(ScenarioChoice::Freshness, "freshness")? {
            anyhow::ensure!(
                self.url.is_none(),
                "--scenario freshness starts its own two replicas; --url is not supported"
            );
            return Ok(Mode::Freshness);
        }
        if alone(ScenarioChoice::Memory, "memory")? {
            return Ok(Mode::Memory);
        }
        Ok(Mode::Load(self.scenarios()))
    }

    /// Listings of this run: as asked, or the mode's default.
    pub fn listings(&self) -> usize {
        let default = match self.mode() {
            Ok(Mode::Memory) => 1_000_000,
            _ => 10_000,
        };
        self.listings.unwrap_or(default)
    }

    /// The scenarios to run, each once, in the canonical order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut chosen: Vec<Scenario> = if self.scenario.contains(&ScenarioChoice::All) {
            Scenario::ALL.to_vec()
        } else {
            self.scenario
                .iter()
                .filter_map(|c| match c {
                    ScenarioChoice::One(s) => Some(*s),
                    _ => None,
                })
                .collect()
        };
        chosen.sort_by_key(|s| Scenario::ALL.iter().position(|x| x == s));
        chosen.dedup();
        chosen
    }

    /// Checks the options that clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.connections >= 1, "--connections must be at least 1");
        let mode = self.mode()?;
        anyhow::ensure!(
            matches!(mode, Mode::Load(_)) || self.svg.is_none(),
            "--svg is only for the load scenarios (freshness and memory have no latency plot)"
        );
        anyhow::ensure!(self.listings() >= 1, "--listings must be at least 1");
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be positive");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.booked_fraction),
            "--booked-fraction must be between 0 and 1"
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number"
            );
        }
        if let Some(f) = self.open_loop_at {
            anyhow::ensure!(
                f.is_finite() && f > 0.0,
                "--open-loop-at must be a positive fraction"
            );
        }
        anyhow::ensure!(
            self.client_threads != Some(0) && self.server_threads != Some(0),
            "--client-threads and --server-threads must be at least 1"
        );
        Ok(())
    }
}

/// `250ms`, `10s`, `2m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 500ms, 10s, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("not a valid duration: {s:?}"))
}

/// The invocation as one shell line: arguments quoted where the shell would split or expand
/// them.
pub fn shell_line<I: IntoIterator<Item = String>>(args: I) -> String {
    args.into_iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only spikes shed by lag unless asked: peak and freshness runs must not see a 503
    /// because the machine is busy.
    #[test]
    fn lag_shedding_is_off_except_in_spikes_unless_asked() {
        let args = |extra: &[&str]| {
            let mut all = vec!["vacancy-bench"];
            all.extend_from_slice(extra);
            BenchArgs::try_parse_from(all).expect("arguments")
        };
        assert_eq!(args(&[]).service_shed_lag(), Some(Duration::ZERO));
        let freshness = args(&["--scenario", "freshness"]);
        assert_eq!(freshness.service_shed_lag(), Some(Duration::ZERO));
        assert_eq!(args(&["--spike", "--rate", "10"]).service_shed_lag(), None);
        let asked = args(&["--shed-lag", "3ms"]).service_shed_lag();
        assert_eq!(asked, Some(Duration::from_millis(3)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn scenario_lists() {
        let args =
            BenchArgs::try_parse_from(["vacancy-bench", "--scenario", "contend,check,check"])
                .expect("parse");
        assert_eq!(args.scenarios(), vec![Scenario::Check, Scenario::Contend]);
        let all = BenchArgs::try_parse_from(["vacancy-bench"]).expect("parse");
        assert_eq!(all.scenarios(), Scenario::ALL.to_vec());
        assert!(BenchArgs::try_parse_from(["vacancy-bench", "--scenario", "nope"]).is_err());
        assert_eq!(
            all.mode().expect("mode"),
            Mode::Load(Scenario::ALL.to_vec())
        );
        assert_eq!(all.listings(), 10_000);
        assert!(
            BenchArgs::try_parse_from([
                "vacancy-bench",
                "--url",
                "http://127.0.0.1:1",
                "--backend",
                "postgres"
            ])
            .is_err()
        );
    }

    #[test]
    fn freshness_and_memory_run_alone() {
        let parse = |args: &[&str]| {
            BenchArgs::try_parse_from(std::iter::once("vacancy-bench").chain(args.iter().copied()))
                .expect("parse")
        };
        let memory = parse(&["--scenario", "memory"]);
        assert_eq!(memory.mode().expect("mode"), Mode::Memory);
        assert_eq!(memory.listings(), 1_000_000);
        assert_eq!(
            parse(&["--scenario", "memory", "--listings", "5"]).listings(),
            5
        );
        let freshness = parse(&["--scenario", "freshness"]);
        assert_eq!(freshness.mode().expect("mode"), Mode::Freshness);
        assert_eq!(freshness.listings(), 10_000);
        assert_eq!(freshness.relay_replica, RelayReplica::A);
        assert!(
            parse(&["--scenario", "freshness,check"])
                .validate()
                .is_err()
        );
        assert!(parse(&["--scenario", "memory,all"]).validate().is_err());
        assert!(
            parse(&["--scenario", "freshness", "--url", "http://127.0.0.1:1"])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn shell_quoting() {
        let line =
            shell_line(["vacancy-bench", "--counters", "vacancy_*", "it's"].map(String::from));
        assert_eq!(line, r"vacancy-bench --counters 'vacancy_*' 'it'\''s'");
    }
}
