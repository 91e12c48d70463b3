//! Where the machine's CPU went during a phase: this process (the load generator, plus the
//! service when it runs in-process) versus every other process (the database, and anything
//! else running, which a reader of the numbers should know about).
//!
//! Read from Linux's `/proc/stat` and `/proc/self/stat`; elsewhere there is no sample and the
//! report says nothing.

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
}

impl CpuSample {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&stat, &own)
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
        // The command name may contain spaces; the fields after it are fixed.
        let after_name = &own[own.rfind(')')? + 1..];
        let mut own_fields = after_name.split_whitespace();
        // After the name: state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime(14) stime(15).
        let utime: u64 = own_fields.nth(11)?.parse().ok()?;
        let stime: u64 = own_fields.next()?.parse().ok()?;
        Some(Self {
            total,
            busy: total.saturating_sub(idle),
            this_process: utime + stime,
        })
    }
}

/// CPU used between two samples, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUsage {
    /// This process: load generator, and the service when in-process.
    pub this_process_cores: f64,
    /// Every other process: the database, and anything else running on the machine.
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
        let scale = cores as f64 / total as f64;
        Some(Self {
            this_process_cores: mine as f64 * scale,
            other_cores: (busy - mine) as f64 * scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_busy_time_between_this_process_and_the_rest() {
        let stat =
            |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3\n");
        let own = |ticks: u64| {
            format!("42 (vacancy bench) S 1 42 42 0 -1 4194304 100 0 0 0 {ticks} 0 0 0 20 0")
        };
        let a = CpuSample::parse(&stat(1000, 5000), &own(100)).expect("sample");
        // 200 ticks passed on 2 cores: 150 busy, of which 50 were ours.
        let b = CpuSample::parse(&stat(1150, 5050), &own(150)).expect("sample");
        let usage = CpuUsage::between(&a, &b, 2).expect("usage");
        assert!((usage.this_process_cores - 0.5).abs() < 1e-9, "{usage:?}");
        assert!((usage.other_cores - 1.0).abs() < 1e-9, "{usage:?}");
        assert!(CpuSample::parse("nonsense", &own(1)).is_none());
    }

    #[test]
    fn reads_this_machine() {
        if cfg!(target_os = "linux") {
            assert!(CpuSample::now().is_some());
        }
    }
}
