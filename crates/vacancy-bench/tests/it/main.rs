//! Integration tests of the harness, in one binary. None asserts a speed: they check that the
//! harness counts what happened exactly, paces open loop by count, skews its sampling, detects
//! an overbooking, runs every scenario end to end against the real service, sees every booking
//! reach the other replica (freshness) and weighs every cached calendar (memory).

mod counting;
mod end_to_end;
mod freshness;
mod memory;
mod open_loop;
mod overbooking;
mod support;
mod zipf;
