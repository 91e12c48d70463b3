-- Audit trail: who changed what, when, under which request. Written in the same transaction as
-- the change it records; rows are only ever appended.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    subject     TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    listing_id  TEXT,
    request_id  TEXT
);
CREATE INDEX audit_log_by_listing ON audit_log (listing_id, id);
