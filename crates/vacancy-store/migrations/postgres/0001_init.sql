-- vacancy schema, PostgreSQL flavour. Nights are day numbers (days since 1970-01-01) and
-- instants are milliseconds since the Unix epoch, so the same SQL runs on SQLite too.

CREATE TABLE listings (
    id                   TEXT PRIMARY KEY,
    host_id              TEXT    NOT NULL,
    time_zone            TEXT    NOT NULL,
    units                INTEGER NOT NULL CHECK (units >= 1),
    min_nights           INTEGER NOT NULL,
    max_nights           INTEGER NOT NULL,
    advance_notice_hours INTEGER NOT NULL,
    booking_window_days  INTEGER NOT NULL,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);
CREATE INDEX listings_host ON listings (host_id);

-- The ledger the invariant lives in: one row per listing and night that anything ever claimed.
-- `used` counts units held by bookings, holds not yet released and blocks; `capacity` is the
-- listing's unit count. The database itself refuses `used > capacity`.
CREATE TABLE night_usage (
    listing_id TEXT    NOT NULL REFERENCES listings (id),
    night      INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    capacity   INTEGER NOT NULL,
    PRIMARY KEY (listing_id, night),
    CONSTRAINT night_usage_within_units CHECK (used >= 0 AND used <= capacity)
);

-- Holds, bookings and blocks. Only `active` rows occupy nights.
CREATE TABLE claims (
    id         TEXT PRIMARY KEY,
    listing_id TEXT    NOT NULL REFERENCES listings (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('hold', 'booking', 'block')),
    state      TEXT    NOT NULL CHECK (state IN ('active', 'released', 'expired', 'confirmed', 'cancelled', 'removed')),
    check_in   INTEGER NOT NULL,
    check_out  INTEGER NOT NULL CHECK (check_out > check_in),
    units      INTEGER NOT NULL CHECK (units >= 1),
    guest_id   TEXT,
    expires_at BIGINT,
    hold_id    TEXT,
    note       TEXT,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX claims_active_by_listing ON claims (listing_id, check_in) WHERE state = 'active';
CREATE INDEX claims_active_holds_by_expiry ON claims (expires_at) WHERE state = 'active' AND kind = 'hold';
CREATE UNIQUE INDEX claims_one_booking_per_hold ON claims (hold_id) WHERE hold_id IS NOT NULL;

-- Events written in the same transaction as the change they announce; a relay publishes them.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    listing_id   TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Responses to creating writes, replayed for a repeated Idempotency-Key.
CREATE TABLE idempotency_keys (
    client       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('in_flight', 'done')),
    status       INTEGER,
    body         TEXT,
    created_at   BIGINT  NOT NULL,
    locked_until BIGINT  NOT NULL,
    PRIMARY KEY (client, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
