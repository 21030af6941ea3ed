-- +goose Up
-- The notarial act of a notarisation session: its lifecycle and, once
-- sealed, its number. A row appears when the act first changes state.
CREATE TABLE acts (
    session_id     TEXT PRIMARY KEY REFERENCES sessions (id),
    state          TEXT NOT NULL,
    document_id    TEXT,
    number         TEXT UNIQUE,
    sealed_at      BIGINT,
    sealed_by      TEXT,
    legal_hold     BOOLEAN NOT NULL DEFAULT FALSE
);

-- Notarial numbers are YYYY/NNNNNN, sequential per year: the counter is
-- advanced inside the sealing transaction, so a failed seal leaves no gap
-- and concurrent seals never share a number.
CREATE TABLE act_numbers (
    year INTEGER PRIMARY KEY,
    last BIGINT NOT NULL
);

-- Which principal signed which version of the act's document.
CREATE TABLE act_signatures (
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    participant_id TEXT NOT NULL,
    role           TEXT NOT NULL,
    document_id    TEXT NOT NULL,
    version        INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    serial         TEXT NOT NULL,
    signed_at      BIGINT NOT NULL,
    PRIMARY KEY (session_id, participant_id, document_id)
);

CREATE TABLE identity_checks (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions (id),
    participant_id  TEXT NOT NULL REFERENCES participants (id),
    officer_id      TEXT NOT NULL,
    officer_name    TEXT NOT NULL,
    embassy         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    document        TEXT NOT NULL,
    face_key        TEXT NOT NULL DEFAULT '',
    face_sha256     TEXT NOT NULL DEFAULT '',
    document_key    TEXT NOT NULL DEFAULT '',
    document_sha256 TEXT NOT NULL DEFAULT '',
    address         TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT
);
CREATE INDEX identity_checks_session ON identity_checks (session_id, created_at);

CREATE TABLE recordings (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions (id),
    started_by      TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    stopped_at      BIGINT,
    manifest_key    TEXT NOT NULL DEFAULT '',
    manifest_sha256 TEXT NOT NULL DEFAULT '',
    files           INTEGER NOT NULL DEFAULT 0,
    recovered       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX recordings_session ON recordings (session_id, started_at);

-- The notary's register. Entries are only ever inserted: a correction is a
-- new entry naming the one it corrects. Each entry is also journalled.
CREATE TABLE register_entries (
    id          TEXT PRIMARY KEY,
    number      TEXT NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    recorded_at BIGINT NOT NULL,
    corrects    TEXT REFERENCES register_entries (id),
    entry       TEXT NOT NULL
);
CREATE INDEX register_entries_time ON register_entries (recorded_at);

-- +goose Down
DROP TABLE register_entries;
DROP TABLE recordings;
DROP TABLE identity_checks;
DROP TABLE act_signatures;
DROP TABLE act_numbers;
DROP TABLE acts;
