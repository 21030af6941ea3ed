-- +goose Up
-- Staff authenticate with bearer tokens stored only as SHA-256 hashes.
-- external_subject is reserved for single sign-on (issuer|subject).
CREATE TABLE staff (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    external_subject TEXT UNIQUE,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    case_number  TEXT NOT NULL DEFAULT '',
    act_type     TEXT NOT NULL DEFAULT '',
    scheduled_at BIGINT,
    public       BOOLEAN NOT NULL DEFAULT FALSE,
    state        TEXT NOT NULL,
    created_by   TEXT NOT NULL REFERENCES staff (id),
    created_at   BIGINT NOT NULL,
    opened_at    BIGINT,
    closed_at    BIGINT
);
CREATE INDEX sessions_created_by ON sessions (created_by);
CREATE INDEX sessions_scheduled ON sessions (scheduled_at);

-- Everyone in a session holds an invitation token for it.
CREATE TABLE participants (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    space       TEXT NOT NULL,
    audio_muted BOOLEAN NOT NULL DEFAULT FALSE,
    video_muted BOOLEAN NOT NULL DEFAULT FALSE,
    interprets  TEXT,
    whisper     BOOLEAN NOT NULL DEFAULT FALSE,
    public_join BOOLEAN NOT NULL DEFAULT FALSE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX participants_session ON participants (session_id);

-- A public link lets anyone join an open hearing as an observer.
CREATE TABLE public_links (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE consultations (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    closed_at  BIGINT
);

-- +goose Down
DROP TABLE consultations;
DROP TABLE public_links;
DROP TABLE participants;
DROP TABLE sessions;
DROP TABLE staff;
