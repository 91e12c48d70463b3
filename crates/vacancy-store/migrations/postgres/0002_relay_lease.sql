-- Leases for singleton background work: only the holder of the `outbox-relay` lease publishes
-- the outbox, so events leave in commit order however many replicas run.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
