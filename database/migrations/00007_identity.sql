-- +goose Up
-- Staff sign in to the console with browser sessions (OpenID Connect, or the
-- development sign-in) and automate with scoped API tokens; the staff bearer
-- tokens of 00002 are retired. Every secret is stored only as its SHA-256.
UPDATE staff SET token_hash = 'retired:' || id;

-- API tokens: scoped (space-separated), expiring, revocable, for automation.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    staff_id     TEXT NOT NULL REFERENCES staff (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_staff ON api_tokens (staff_id);
CREATE INDEX api_tokens_revoked ON api_tokens (revoked_at);

-- Browser sessions of the console: the cookie's hash, an absolute and an
-- idle limit, and for OpenID sign-ins the ID token (the logout hint) and the
-- sealed refresh token that lets Chamber ask the provider whether the
-- account is still enabled.
CREATE TABLE browser_sessions (
    id            TEXT PRIMARY KEY,
    staff_id      TEXT NOT NULL REFERENCES staff (id),
    token_hash    TEXT NOT NULL UNIQUE,
    method        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    checked_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    end_reason    TEXT NOT NULL DEFAULT '',
    id_token      TEXT NOT NULL DEFAULT '',
    refresh_token TEXT NOT NULL DEFAULT ''
);
CREATE INDEX browser_sessions_staff ON browser_sessions (staff_id);
CREATE INDEX browser_sessions_ended ON browser_sessions (ended_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_seen ON browser_sessions (last_seen_at);

-- An OpenID sign-in under way: state (stored as its hash, and bound to the
-- browser by a cookie), nonce and PKCE verifier; used once, within minutes.
CREATE TABLE sign_in_attempts (
    state_hash TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    return_to  TEXT NOT NULL,
    bootstrap  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sign_in_attempts_expires ON sign_in_attempts (expires_at);

-- Join tickets let a staff member's signalling connection join as
-- themselves: one session, and never longer than the browser session or
-- API token (credential) that minted it.
CREATE TABLE join_tickets (
    token_hash     TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    participant_id TEXT NOT NULL REFERENCES participants (id),
    staff_id       TEXT NOT NULL REFERENCES staff (id),
    credential     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX join_tickets_credential ON join_tickets (credential, session_id);

-- A staff member assigned to a session (or entering one they created) takes
-- part as one participant, whatever the number of tabs and devices; such a
-- participant holds no invitation token.
ALTER TABLE participants ADD COLUMN staff_id TEXT;
CREATE UNIQUE INDEX participants_staff ON participants (session_id, staff_id) WHERE staff_id IS NOT NULL AND revoked_at IS NULL;
CREATE INDEX participants_by_staff ON participants (staff_id) WHERE staff_id IS NOT NULL;

-- +goose Down
DROP INDEX participants_by_staff;
DROP INDEX participants_staff;
ALTER TABLE participants DROP COLUMN staff_id;
DROP TABLE join_tickets;
DROP TABLE sign_in_attempts;
DROP TABLE browser_sessions;
DROP TABLE api_tokens;
