-- +goose Up
-- A document is evidence or an exhibit of one session; its bytes live in the
-- evidence store, one write-once object per version. Version 1 is the
-- upload; every signature adds a version; nothing is ever replaced.
CREATE TABLE documents (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    uploaded_by   TEXT NOT NULL,
    uploader_id   TEXT,
    label         TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    UNIQUE (session_id, sha256)
);
CREATE INDEX documents_session ON documents (session_id, created_at);

CREATE TABLE document_versions (
    document_id  TEXT NOT NULL REFERENCES documents (id),
    version      INTEGER NOT NULL,
    object_key   TEXT NOT NULL UNIQUE,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    signer       TEXT NOT NULL DEFAULT '',
    signer_role  TEXT NOT NULL DEFAULT '',
    details      TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (document_id, version)
);

-- +goose Down
DROP TABLE document_versions;
DROP TABLE documents;
