-- +goose Up
-- The secret the nodes of a cluster share to authenticate their requests to
-- one another (package cluster, nodeauth.go): the first node to start
-- generates it, every node reads it. One row. The table exists on SQLite
-- too, where nothing uses it: a cluster needs PostgreSQL. Who can read this
-- row can already write every table, so it adds no new holder of trust;
-- --cluster-secret-file replaces it where the operator prefers a mounted
-- secret.
CREATE TABLE cluster_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- +goose Down
DROP TABLE cluster_secret;
