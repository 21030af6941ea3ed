-- +goose Up
-- The journal is one append-only, hash-chained log of everything that
-- happened. journal_head holds the newest entry so that appenders serialise
-- on one row (an UPDATE row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite).
CREATE TABLE journal (
    seq               BIGINT PRIMARY KEY,
    at                BIGINT NOT NULL,
    session_id        TEXT,
    actor             TEXT NOT NULL,
    action            TEXT NOT NULL,
    details           TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    session_prev_hash TEXT NOT NULL,
    hash              TEXT NOT NULL UNIQUE
);
CREATE INDEX journal_session ON journal (session_id, seq);

CREATE TABLE journal_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO journal_head (id, seq, hash) VALUES (1, 0, '');

-- One head per session lets a session's entries form their own chain, which
-- an evidence bundle can carry and verify offline.
CREATE TABLE journal_session_head (
    session_id TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL
);

-- RFC 3161 timestamp tokens over the head hash at a given sequence number:
-- rewriting the whole journal table cannot reproduce them.
CREATE TABLE journal_anchors (
    seq   BIGINT PRIMARY KEY,
    hash  TEXT NOT NULL,
    at    BIGINT NOT NULL,
    token TEXT NOT NULL
);

-- +goose Down
DROP TABLE journal_anchors;
DROP TABLE journal_session_head;
DROP TABLE journal_head;
DROP TABLE journal;
