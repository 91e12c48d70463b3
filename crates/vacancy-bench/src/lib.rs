//! vacancy-bench: the benchmark harness of vacancy.
//!
//! It starts the service in-process on a fresh database (SQLite or PostgreSQL) the same way
//! `vacancy serve` does, or targets a running one on loopback; loads listings; drives HTTP/1.1
//! keep-alive load per scenario in closed loop (maximum throughput) or open loop (fixed
//! arrival rate, latency from each request's intended send time); and reports throughput,
//! latency percentiles, errors by status, the service's own counter deltas, and for the
//! contention scenario an audit for overbookings. Results go to JSON, markdown and an SVG plot.
//!
//! Codemap:
//! - [`cli`]: options; [`run`]: one whole run; [`report`] and [`svg`]: the outputs;
//! - [`engine`]: the load engine (paces, slots, tallies) over [`http`] connections;
//! - [`scenarios`]: what each scenario sends; [`zipf`]: the popularity skew;
//! - [`dataset`]: the data and how it is loaded; [`service`]: the in-process service;
//! - [`prometheus`]: counters and histograms scraped from `/metrics`; [`cpu`]: where the CPU
//!   went; [`audit`]: the overbooking check; [`spike`]: the spike profile (`--spike`);
//! - two modes that run alone: [`freshness`] (`--scenario freshness`: commit on one replica →
//!   applied on the other, two in-process replicas on NATS JetStream) and [`memory`]
//!   (`--scenario memory`: L1 holding many listings' calendars, no service).
//!
//! The harness never changes the service: it is a client of the HTTP API, and touches the
//! database only through `vacancy_store` (loading, auditing, taking the relay lease for the
//! replica freshness names) and to drop its own throwaway database. The memory mode uses the
//! read path directly, as the service does. No test or report asserts a speed.

pub mod audit;
pub mod cli;
pub mod cpu;
pub mod dataset;
pub mod engine;
pub mod freshness;
pub mod http;
pub mod memory;
pub mod prometheus;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod service;
pub mod spike;
pub mod svg;
pub mod zipf;
