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
    /// or all.
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

    /// Listings to load for the read and booking scenarios.
    #[arg(long, default_value_t = 10_000)]
    pub listings: usize,

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
    #[arg(long)]
    pub rate: Option<f64>,

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

    /// Listings loaded at once.
    #[arg(long, default_value_t = 16)]
    pub load_concurrency: usize,

    /// Keep the in-process service's database after the run (it is deleted by default).
    #[arg(long)]
    pub keep_database: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioChoice {
    All,
    One(Scenario),
}

fn parse_scenario_choice(s: &str) -> Result<ScenarioChoice, String> {
    let s = s.trim();
    if s == "all" {
        return Ok(ScenarioChoice::All);
    }
    Scenario::parse(s).map(ScenarioChoice::One).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!(
            "unknown scenario {s:?}; expected all or one of {}",
            names.join(", ")
        )
    })
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
    /// Worker threads of the load generator's runtime.
    pub fn client_threads(&self) -> usize {
        self.client_threads.unwrap_or_else(cores).max(1)
    }

    /// Worker threads of the in-process service's runtime.
    pub fn server_threads(&self) -> usize {
        self.server_threads.unwrap_or_else(cores).max(1)
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
                    ScenarioChoice::All => None,
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
        anyhow::ensure!(self.listings >= 1, "--listings must be at least 1");
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
    fn shell_quoting() {
        let line =
            shell_line(["vacancy-bench", "--counters", "vacancy_*", "it's"].map(String::from));
        assert_eq!(line, r"vacancy-bench --counters 'vacancy_*' 'it'\''s'");
    }
}
