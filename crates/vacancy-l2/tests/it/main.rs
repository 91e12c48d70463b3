//! Integration tests of the L2 client against real Redis: the shared server on 127.0.0.1:6379
//! and `redis-server` processes of the tests' own (sharded nodes, a Redis Cluster, a node that
//! is killed and restarted). No mocks.

mod helpers;

mod cluster;
mod outage;
mod sharded;
mod standalone;
