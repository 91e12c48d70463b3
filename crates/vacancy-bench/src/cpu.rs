//! Where the machine's CPU went during a phase: this process (the load generator, plus the
//! service when it runs in-process), PostgreSQL's processes, and everything else — which on a
//! benchmark machine should be close to zero, and which a reader of the numbers should know
//! about when it is not.
//!
//! Read from Linux's `/proc`; elsewhere there is no sample and the report says nothing.
//! PostgreSQL backends that exit between two samples take their time with them, so the
//! database share is a floor (the harness keeps its connections open, so it is a close one).

use serde::Serialize;

/// Cumulative CPU times, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// Every tick of every core, idle included.
    total: u64,
    /// Ticks of every core spent not idle.
    busy: u64,
    /// Ticks this process spent (user + system).
    this_process: u64,
    /// Ticks spent by the live processes named `postgres`.
    postgres: u64,
}

impl CpuSample {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut sample = Self::parse(&stat, &own)?;
        sample.postgres = postgres_ticks();
        Some(sample)
    }

    fn parse(stat: &str, own: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some(Self {
            total,
            busy: total.saturating_sub(idle),
            this_process: process_ticks(own)?.1,
            postgres: 0,
        })
    }
}

/// `(command name, user + system ticks)` of one `/proc/<pid>/stat` line.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    // The command name is in parentheses and may contain spaces; the fields after it are fixed.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    // After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// Ticks spent so far by every live process named `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            process_ticks(&stat)
                .filter(|(name, _)| *name == "postgres")
                .map(|(_, ticks)| ticks)
        })
        .sum()
}

/// CPU used between two samples, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUsage {
    /// This process: load generator, and the service when in-process.
    pub this_process_cores: f64,
    /// PostgreSQL's processes.
    pub postgres_cores: f64,
    /// Every other process: anything else running on the machine.
    pub other_cores: f64,
}

impl CpuUsage {
    pub fn between(before: &CpuSample, after: &CpuSample, cores: usize) -> Option<Self> {
        let total = after.total.checked_sub(before.total)?;
        if total == 0 {
            return None;
        }
        let busy = after.busy.saturating_sub(before.busy);
        let mine = after
            .this_process
            .saturating_sub(before.this_process)
            .min(busy);
        let postgres = after
            .postgres
            .saturating_sub(before.postgres)
            .min(busy - mine);
        let scale = cores as f64 / total as f64;
        Some(Self {
            this_process_cores: mine as f64 * scale,
            postgres_cores: postgres as f64 * scale,
            other_cores: (busy - mine - postgres) as f64 * scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_busy_time_between_this_process_postgres_and_the_rest() {
        let stat =
            |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3\n");
        let own = |ticks: u64| {
            format!("42 (vacancy bench) S 1 42 42 0 -1 4194304 100 0 0 0 {ticks} 0 0 0 20 0")
        };
        let mut a = CpuSample::parse(&stat(1000, 5000), &own(100)).expect("sample");
        a.postgres = 10;
        // 200 ticks passed on 2 cores: 150 busy, of which 50 were ours and 40 PostgreSQL's.
        let mut b = CpuSample::parse(&stat(1150, 5050), &own(150)).expect("sample");
        b.postgres = 50;
        let usage = CpuUsage::between(&a, &b, 2).expect("usage");
        assert!((usage.this_process_cores - 0.5).abs() < 1e-9, "{usage:?}");
        assert!((usage.postgres_cores - 0.4).abs() < 1e-9, "{usage:?}");
        assert!((usage.other_cores - 0.6).abs() < 1e-9, "{usage:?}");
        assert!(CpuSample::parse("nonsense", &own(1)).is_none());
        assert_eq!(
            process_ticks("7 (postgres) S 1 7 7 0 -1 0 0 0 0 0 30 12 0"),
            Some(("postgres", 42))
        );
    }

    #[test]
    fn reads_this_machine() {
        if cfg!(target_os = "linux") {
            assert!(CpuSample::now().is_some());
        }
    }
}
