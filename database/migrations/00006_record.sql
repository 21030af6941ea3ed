-- +goose Up
-- The evidence catalog: the objects of the evidence store that are part of
-- the record. A row is written in the same transaction as the state that
-- names the object (a document version, an identity still, a stopped
-- recording, a sealed act's archived journal) and the journal entry that
-- lists it; an object without a row is not evidence, whatever the store
-- holds. Retention is applied after the commit: retained turns true once
-- the store has it (or when no retention is asked for), and a periodic
-- pass applies what a crash or an outage left undone.
CREATE TABLE evidence_objects (
    object_key   TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    recorded_at  BIGINT NOT NULL,
    retain_until BIGINT,
    retained     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX evidence_objects_session ON evidence_objects (session_id, object_key);
CREATE INDEX evidence_objects_unretained ON evidence_objects (recorded_at) WHERE NOT retained;

-- Objects found in the store that no record names: failed writes. Each is
-- journalled once (orphan.found) and kept out of every view.
CREATE TABLE evidence_orphans (
    object_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    stored_at  BIGINT NOT NULL,
    found_at   BIGINT NOT NULL
);

-- Storage is de-duplicated, visibility is not: the same bytes uploaded by
-- two people are two documents (each with its own name, uploader and
-- visibility) that may share one stored object. One uploader's identical
-- uploads are one document. SQLite cannot drop a table constraint, so both
-- tables are rebuilt (the same statements run on PostgreSQL).
CREATE TABLE documents_new (
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
    UNIQUE (session_id, uploaded_by, sha256)
);
INSERT INTO documents_new (id, session_id, name, content_type, sha256, uploaded_by, uploader_id, label, status, created_at)
    SELECT id, session_id, name, content_type, sha256, uploaded_by, uploader_id, label, status, created_at FROM documents;

CREATE TABLE document_versions_new (
    document_id  TEXT NOT NULL REFERENCES documents_new (id),
    version      INTEGER NOT NULL,
    object_key   TEXT NOT NULL,
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
INSERT INTO document_versions_new SELECT document_id, version, object_key, size, sha256, kind, created_by, created_at,
    signer, signer_role, details FROM document_versions;
DROP TABLE document_versions;
DROP TABLE documents;
ALTER TABLE documents_new RENAME TO documents;
ALTER TABLE document_versions_new RENAME TO document_versions;
CREATE INDEX documents_session ON documents (session_id, created_at);
CREATE INDEX documents_session_sha256 ON documents (session_id, sha256);
CREATE INDEX document_versions_object ON document_versions (object_key);

-- A sealed act's journal is archived after the seal commits; the flag is
-- the archive's outbox: false until the archive and its journal entry are
-- committed, retried until then. Acts archived before this migration are
-- marked from their journal.
ALTER TABLE acts ADD COLUMN journal_archived BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE acts SET journal_archived = TRUE
    WHERE session_id IN (SELECT session_id FROM journal WHERE action = 'act.journal_archived');

-- Journal entries that could not be written when they happened (the
-- database was down) wait in a local outbox; this table makes their
-- delivery exactly-once: the entry and its outbox id commit together.
CREATE TABLE journal_outbox_applied (
    id  TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

-- The readiness probe's write: a database that cannot write (a full disk)
-- is not ready even when it answers.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
INSERT INTO health_probe (id, at) VALUES (1, 0);

-- +goose Down
DROP TABLE health_probe;
DROP TABLE journal_outbox_applied;
ALTER TABLE acts DROP COLUMN journal_archived;
DROP INDEX document_versions_object;
DROP INDEX documents_session_sha256;
DROP TABLE evidence_orphans;
DROP TABLE evidence_objects;
