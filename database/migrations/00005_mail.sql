-- +goose Up
-- How an invited person is reached by e-mail, in which language and time
-- zone. sequence is the iCalendar SEQUENCE of the newest calendar object
-- sent for the invitation (its UID is the participant's id); messages
-- counts the outbox rows made for it, to order them. told_at is when the
-- person was last told the session's time: a reminder falls due only after
-- it.
CREATE TABLE invitation_contacts (
    participant_id TEXT PRIMARY KEY REFERENCES participants (id),
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    email          TEXT NOT NULL,
    language       TEXT NOT NULL,
    time_zone      TEXT NOT NULL,
    sequence       INTEGER NOT NULL DEFAULT 0,
    messages       INTEGER NOT NULL DEFAULT 0,
    told_at        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX invitation_contacts_session ON invitation_contacts (session_id);

-- The outbox: a message is written here in the transaction that makes the
-- change it announces, and a sender loop delivers it later, with retries.
-- secret holds the invitation token for the one letter that carries the
-- link, and is cleared as soon as that letter is sent, given up or
-- superseded. status: pending, sent, failed, superseded.
CREATE TABLE mail_outbox (
    id                 TEXT PRIMARY KEY,
    session_id         TEXT NOT NULL REFERENCES sessions (id),
    participant_id     TEXT NOT NULL REFERENCES participants (id),
    n                  INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    sequence           INTEGER NOT NULL,
    starts_at          BIGINT,
    previous_starts_at BIGINT,
    secret             TEXT,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL,
    lease_until        BIGINT,
    deadline           BIGINT,
    last_error         TEXT NOT NULL DEFAULT '',
    message_id         TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    sent_at            BIGINT,
    UNIQUE (participant_id, n)
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- One row per reminder made: the primary key is what makes each reminder
-- happen once, across restarts and replicas.
CREATE TABLE mail_reminders (
    participant_id TEXT NOT NULL REFERENCES participants (id),
    starts_at      BIGINT NOT NULL,
    lead_seconds   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (participant_id, starts_at, lead_seconds)
);

-- +goose Down
DROP TABLE mail_reminders;
DROP TABLE mail_outbox;
DROP TABLE invitation_contacts;
