//! Tests of the real `vacancy` binary as a process: draining on SIGTERM, and surviving SIGKILL
//! in the middle of a burst of idempotent bookings.

mod crash;
mod shutdown;
mod support;
