-- +goose Up
-- Signing confirmed by a recent sign-in (identity issue 12). A console
-- sign-in through the provider keeps when the person last authenticated
-- there: the ID token's auth_time, or, when the provider omits it, the
-- moment the code was exchanged (auth_time_source says which). Only a new
-- authentication at the provider moves it: a refresh never does.
ALTER TABLE browser_sessions ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE browser_sessions ADD COLUMN auth_time_source TEXT NOT NULL DEFAULT '';

-- A sign-in under way may re-authenticate an existing console sign-in
-- (before a signature) instead of starting one: reauth_session names it.
ALTER TABLE sign_in_attempts ADD COLUMN reauth_session TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sign_in_attempts DROP COLUMN reauth_session;
ALTER TABLE browser_sessions DROP COLUMN auth_time_source;
ALTER TABLE browser_sessions DROP COLUMN auth_time;
