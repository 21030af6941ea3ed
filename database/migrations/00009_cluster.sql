-- +goose Up
-- Several Chamber nodes on one PostgreSQL database (package cluster). The
-- tables exist on SQLite too, where nothing uses them: a cluster needs
-- PostgreSQL, and a single SQLite node holds every room itself.

-- Every node registers itself and beats its heart here; placement reads the
-- load it reports. heartbeat_at and the leases' until are the database's own
-- clock (Unix microseconds), never a node's.
CREATE TABLE cluster_nodes (
    id           TEXT PRIMARY KEY,
    incarnation  TEXT NOT NULL,
    public_url   TEXT NOT NULL,
    internal_url TEXT NOT NULL,
    media_addr   TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    cpu          DOUBLE PRECISION NOT NULL DEFAULT 0,
    peers        INTEGER NOT NULL DEFAULT 0,
    rooms        INTEGER NOT NULL DEFAULT 0,
    draining     BOOLEAN NOT NULL DEFAULT FALSE,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- A room's home node: the one process (holder = its node's incarnation)
-- that serves the room's connections and writes for it. token grows by one
-- at every change of holder; writes for the room carry it and are refused
-- when it is no longer the lease's (fencing).
CREATE TABLE room_leases (
    session_id  TEXT PRIMARY KEY,
    node_id     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    token       BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    claimed_at  BIGINT NOT NULL
);
CREATE INDEX room_leases_holder ON room_leases (holder);

-- What a node that is not a room's home tells the home after a REST change
-- it committed (LISTEN/NOTIFY carries only the id: a payload is bounded).
CREATE TABLE room_events (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    body       TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX room_events_at ON room_events (at);

-- Live room state that used to live only in the home node's memory: the
-- page being presented in the main room, so a new home shows it too; and
-- the recording a node that handed the room over (drain, shutdown) stopped,
-- which the next home continues as a new segment.
CREATE TABLE room_state (
    session_id         TEXT PRIMARY KEY,
    presenting         TEXT NOT NULL,
    presenting_doc     TEXT NOT NULL,
    recording_handover TEXT NOT NULL DEFAULT '',
    updated_at         BIGINT NOT NULL
);

-- +goose Down
DROP TABLE room_state;
DROP TABLE room_events;
DROP TABLE room_leases;
DROP TABLE cluster_nodes;
