//! The service's own counters, scraped from `/metrics` (Prometheus text format) before and
//! after a phase, so a report can show what the server counted next to what the harness saw.
//!
//! Generic on purpose: any counter whose family name matches one of the configured patterns is
//! reported, so counters added later (cache hits and misses, shed requests) show up without a
//! change here. A series is a counter when its family is declared `# TYPE <name> counter`, or,
//! without a declaration, when its name ends in `_total`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Counter names to report: exact names, `prefix*`, `*suffix`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterFilter {
    patterns: Vec<String>,
}

impl CounterFilter {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self {
            patterns: patterns
                .iter()
                .map(|p| p.as_ref().trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| {
            if p == "*" {
                true
            } else if let Some(prefix) = p.strip_suffix('*') {
                name.starts_with(prefix)
            } else if let Some(suffix) = p.strip_prefix('*') {
                name.ends_with(suffix)
            } else {
                name == p
            }
        })
    }
}

/// The counter series of one scrape, keyed by `(name, labels)`; labels as written between the
/// braces (the exporter writes them in a stable order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters(BTreeMap<(String, String), f64>);

impl Counters {
    /// Parses a scrape, keeping the counter series whose name `filter` matches. Lines that are
    /// not understood are skipped: a report should not fail on an exporter's novelty.
    pub fn parse(text: &str, filter: &CounterFilter) -> Self {
        let mut declared: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    declared.insert(name, kind);
                }
            }
        }
        let mut series = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, labels, value)) = parse_sample(line) else {
                continue;
            };
            let is_counter = match declared.get(name) {
                Some(kind) => *kind == "counter",
                None => name.ends_with("_total"),
            };
            if is_counter && filter.matches(name) {
                series.insert((name.to_owned(), labels.to_owned()), value);
            }
        }
        Self(series)
    }

    pub fn get(&self, name: &str, labels: &str) -> Option<f64> {
        self.0.get(&(name.to_owned(), labels.to_owned())).copied()
    }

    /// How every series changed from `before` to `self`; series that did not move are left out.
    pub fn deltas_since(&self, before: &Counters) -> Vec<CounterDelta> {
        let keys: BTreeSet<&(String, String)> = self.0.keys().chain(before.0.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let after = self.0.get(key).copied().unwrap_or(0.0);
                let was = before.0.get(key).copied().unwrap_or(0.0);
                let delta = after - was;
                (delta != 0.0).then(|| CounterDelta {
                    name: key.0.clone(),
                    labels: key.1.clone(),
                    delta,
                })
            })
            .collect()
    }
}

/// How much one counter series moved during a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterDelta {
    pub name: String,
    /// The series' labels as the exporter wrote them, without braces; empty for none.
    pub labels: String,
    pub delta: f64,
}

/// Sums deltas by counter name, for a compact summary.
pub fn totals_by_name(deltas: &[CounterDelta]) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for d in deltas {
        *totals.entry(d.name.clone()).or_insert(0.0) += d.delta;
    }
    totals
}

/// One histogram family of a scrape (`<name>_bucket`, `_sum`, `_count`), summed over all its
/// series: cumulative counts per upper bound, ascending, `+Inf` last when present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// `(upper bound in the metric's unit, observations at or below it)`.
    pub cumulative: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Buckets {
    /// The histogram `name` in a scrape; empty when the scrape does not have it (as before the
    /// first observation).
    pub fn parse(text: &str, name: &str) -> Self {
        let bucket = format!("{name}_bucket");
        let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((sample, labels, value)) = parse_sample(line) else {
                continue;
            };
            if sample == bucket {
                let Some(le) = label_value(labels, "le") else {
                    continue;
                };
                let bound = match le.as_str() {
                    "+Inf" => f64::INFINITY,
                    b => match b.parse::<f64>() {
                        Ok(b) => b,
                        Err(_) => continue,
                    },
                };
                match out.cumulative.iter_mut().find(|(b, _)| *b == bound) {
                    Some((_, n)) => *n += value,
                    None => out.cumulative.push((bound, value)),
                }
            } else if sample == sum_name {
                out.sum += value;
            } else if sample == count_name {
                out.count += value;
            }
        }
        out.cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// What was observed between `before` and this scrape (bounds missing from `before` count
    /// from zero).
    pub fn since(&self, before: &Buckets) -> Buckets {
        let earlier = |bound: f64| {
            before
                .cumulative
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, n)| *n)
        };
        Buckets {
            cumulative: self
                .cumulative
                .iter()
                .map(|&(bound, n)| (bound, (n - earlier(bound)).max(0.0)))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The `q` quantile (0–1) as Prometheus' `histogram_quantile` estimates it: linear
    /// interpolation inside the bucket where the rank falls, the first bucket starting at 0,
    /// and the highest finite bound when the rank falls in `+Inf`. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.cumulative.last()?.1;
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, n) in &self.cumulative {
            if n >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let within = n - lower.1;
                let fraction = if within > 0.0 {
                    (rank - lower.1) / within
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (bound, n);
        }
        Some(lower.0)
    }
}

/// The value of label `key` in a label set as written between the braces.
fn label_value(labels: &str, key: &str) -> Option<String> {
    let mut rest = labels;
    loop {
        let rest_trimmed = rest.trim_start_matches([',', ' ']);
        let (name, after) = rest_trimmed.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => {
                    value.push(match c {
                        'n' => '\n',
                        other => other,
                    });
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                other => value.push(other),
            }
        }
        let end = end?;
        if name.trim() == key {
            return Some(value);
        }
        rest = &after[end + 1..];
    }
}

/// `name{labels} value [timestamp]` or `name value [timestamp]`.
fn parse_sample(line: &str) -> Option<(&str, &str, f64)> {
    let (name, labels, rest) = match line.find(['{', ' ', '\t']) {
        Some(i) if line[i..].starts_with('{') => {
            let close = closing_brace(line, i)?;
            (&line[..i], &line[i + 1..close], &line[close + 1..])
        }
        Some(i) => (&line[..i], "", &line[i..]),
        None => return None,
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    (!name.is_empty()).then_some((name, labels, value))
}

/// The index of the `}` closing the label set opened at `open`, skipping quoted values (which
/// may contain braces and escaped quotes).
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# TYPE http_requests_total counter
http_requests_total{method="GET",route="/healthz",status="200"} 10
http_requests_total{method="GET",route="/v1/listings/{id}/availability",status="200"} 5
# TYPE vacancy_conflicts_total counter
vacancy_conflicts_total 3
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.001"} 10
http_request_duration_seconds_count{method="GET",route="/healthz"} 10
# TYPE vacancy_cache_size gauge
vacancy_cache_size 7
odd_total{note="a \"quoted\" } brace"} 1 1700000000000
"#;

    #[test]
    fn keeps_only_matching_counters() {
        let filter = CounterFilter::new(&["http_requests_total", "vacancy_*", "odd_total"]);
        let c = Counters::parse(SCRAPE, &filter);
        assert_eq!(
            c.get(
                "http_requests_total",
                r#"method="GET",route="/v1/listings/{id}/availability",status="200""#
            ),
            Some(5.0)
        );
        assert_eq!(c.get("vacancy_conflicts_total", ""), Some(3.0));
        assert_eq!(
            c.get("vacancy_cache_size", ""),
            None,
            "gauges are not counters"
        );
        assert_eq!(
            c.get(
                "http_request_duration_seconds_count",
                r#"method="GET",route="/healthz""#
            ),
            None
        );
        assert_eq!(
            c.get("odd_total", r#"note="a \"quoted\" } brace""#),
            Some(1.0)
        );
    }

    #[test]
    fn reports_deltas_of_moved_series_only() {
        let filter = CounterFilter::new(&["*_total"]);
        let before = Counters::parse(SCRAPE, &filter);
        let after_text = SCRAPE
            .replace("vacancy_conflicts_total 3", "vacancy_conflicts_total 8")
            .replace("} 10\nhttp_requests_total", "} 12\nhttp_requests_total")
            + "vacancy_cache_hits_total 4\n";
        let after = Counters::parse(&after_text, &filter);
        let deltas = after.deltas_since(&before);
        let totals = totals_by_name(&deltas);
        assert_eq!(totals.get("vacancy_conflicts_total"), Some(&5.0));
        assert_eq!(totals.get("http_requests_total"), Some(&2.0));
        assert_eq!(totals.get("vacancy_cache_hits_total"), Some(&4.0));
        assert_eq!(deltas.len(), 3);
    }

    const HISTOGRAM: &str = r#"# TYPE lag_seconds histogram
lag_seconds_bucket{replica="a",le="0.001"} 2
lag_seconds_bucket{replica="a",le="0.01"} 8
lag_seconds_bucket{replica="a",le="+Inf"} 10
lag_seconds_sum{replica="a"} 0.5
lag_seconds_count{replica="a"} 10
lag_seconds_bucket{handle="x,le=\"9\"",le="0.001"} 0
lag_seconds_bucket{handle="x,le=\"9\"",le="0.01"} 10
lag_seconds_bucket{handle="x,le=\"9\"",le="+Inf"} 10
lag_seconds_sum{handle="x,le=\"9\""} 0.05
lag_seconds_count{handle="x,le=\"9\""} 10
other_seconds_bucket{le="0.001"} 99
"#;

    #[test]
    fn histograms_sum_their_series_and_interpolate() {
        let h = Buckets::parse(HISTOGRAM, "lag_seconds");
        assert_eq!(
            h.cumulative,
            vec![(0.001, 2.0), (0.01, 18.0), (f64::INFINITY, 20.0)]
        );
        assert_eq!((h.count, h.sum), (20.0, 0.55));
        // Rank 10 of 20 falls in (0.001, 0.01], 8 of its 16 observations in.
        let p50 = h.quantile(0.5).expect("p50");
        assert!((p50 - 0.0055).abs() < 1e-12, "{p50}");
        // Rank 19.8 falls in +Inf: the highest finite bound.
        assert_eq!(h.quantile(0.99), Some(0.01));
        assert_eq!(Buckets::default().quantile(0.5), None);

        let before = Buckets::parse(
            "lag_seconds_bucket{le=\"0.001\"} 2\nlag_seconds_bucket{le=\"+Inf\"} 2\nlag_seconds_count 2\n",
            "lag_seconds",
        );
        let delta = h.since(&before);
        assert_eq!(
            delta.cumulative,
            vec![(0.001, 0.0), (0.01, 18.0), (f64::INFINITY, 18.0)]
        );
        assert_eq!(delta.count, 18.0);
        assert_eq!(delta.quantile(0.0), Some(0.001));
    }

    #[test]
    fn patterns() {
        let f = CounterFilter::new(&["a_total", "b_*", "*_hits_total", " "]);
        assert!(f.matches("a_total"));
        assert!(!f.matches("a_total_x"));
        assert!(f.matches("b_anything"));
        assert!(f.matches("cache_hits_total"));
        assert!(!f.matches("cache_misses_total"));
        assert!(CounterFilter::new(&["*"]).matches("x"));
        assert!(!CounterFilter::new::<&str>(&[]).matches("x"));
    }
}
