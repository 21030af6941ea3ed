-- +goose Up
-- Signing identities: each official signs with a key of their own, either
-- on a PKCS#11 token (module, token, key; the PIN sealed here only when the
-- operator chose to store it) or issued by Chamber's CA (the PKCS#8 key
-- sealed with AES-256-GCM under the key-encryption key, never in clear).
-- A staff member has at most one current identity; enrolling again
-- supersedes it, and the old one stays for the history of what it signed.
CREATE TABLE signing_identities (
    id            TEXT PRIMARY KEY,
    staff_id      TEXT NOT NULL REFERENCES staff (id),
    kind          TEXT NOT NULL,
    certificate   TEXT NOT NULL,
    cert_sha256   TEXT NOT NULL,
    serial        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    not_after     BIGINT NOT NULL,
    module        TEXT NOT NULL DEFAULT '',
    token_label   TEXT NOT NULL DEFAULT '',
    slot          INTEGER,
    key_label     TEXT NOT NULL DEFAULT '',
    key_id        TEXT NOT NULL DEFAULT '',
    pin_sealed    TEXT NOT NULL DEFAULT '',
    key_sealed    TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    superseded_at BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX signing_identities_staff ON signing_identities (staff_id);
CREATE UNIQUE INDEX signing_identities_current ON signing_identities (staff_id) WHERE superseded_at IS NULL AND revoked_at IS NULL;

-- +goose Down
DROP INDEX signing_identities_current;
DROP INDEX signing_identities_staff;
DROP TABLE signing_identities;
