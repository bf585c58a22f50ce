-- ticketgate schema, SQLite flavour. Keep in step with migrations/postgres/0001_init.sql:
-- same tables, same columns; only key and blob types differ. Times are unix millis (BIGINT),
-- flags INTEGER 0/1: the types sqlx's Any driver decodes on both backends.

-- Where each IMAP mailbox stands: (UIDVALIDITY, last UID stored).
CREATE TABLE mailbox_state (
    mailbox      TEXT PRIMARY KEY,
    uidvalidity  BIGINT NOT NULL,
    last_uid     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Every message exactly as received, stored before anything else happens to it.
CREATE TABLE raw_message (
    raw_message_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox         TEXT NOT NULL,
    uidvalidity     BIGINT,            -- NULL when it came through `ingest`
    uid             BIGINT,
    sha256          TEXT NOT NULL,     -- of `bytes`
    size            BIGINT NOT NULL,   -- full size of the message, as the server reported it
    complete        INTEGER NOT NULL,  -- 0: only the header was kept (oversize message left on the server)
    bytes           BLOB NOT NULL,
    received_at     BIGINT NOT NULL,
    state           TEXT NOT NULL,     -- pending | processed | duplicate | quarantined
    reason          TEXT,              -- why quarantined / why no acknowledgment
    message_id      BIGINT,            -- message row made from it (the original one, for duplicates)
    processed_at    BIGINT,
    server_done     INTEGER NOT NULL DEFAULT 0,  -- flagged \Seen (and moved) on the IMAP server
    UNIQUE (mailbox, uidvalidity, uid)
);
CREATE INDEX raw_message_state ON raw_message (state, mailbox);
-- Handled messages not yet flagged on the server (looked up after every batch). Partial and
-- covering: the lookup never reads a table row. An index on (mailbox, server_done) is not
-- enough: SQLite prefers the UNIQUE index above (it also gives ORDER BY uid) and then reads
-- every row of the mailbox, and `state`/`server_done` come after `bytes`, so each read
-- follows the whole overflow chain of the stored mail — all of it, after every batch.
CREATE INDEX raw_message_server ON raw_message (mailbox, uidvalidity, uid, state)
    WHERE server_done = 0;

-- Sequence per year for ticket references; bumped inside the ticket's transaction, so a
-- rolled-back ticket leaves no gap.
CREATE TABLE ticket_counter (
    year      BIGINT PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);

CREATE TABLE ticket (
    ticket_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ref           TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    area          TEXT NOT NULL,
    status        TEXT NOT NULL,
    citizen       TEXT NOT NULL,
    citizen_name  TEXT,
    subject       TEXT NOT NULL,
    text          TEXT NOT NULL,
    html          TEXT,
    channel       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX ticket_citizen ON ticket (citizen);

-- The timeline: every change, with time and actor. Never updated.
CREATE TABLE event (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  BIGINT NOT NULL REFERENCES ticket (ticket_id),
    kind       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    details    TEXT NOT NULL     -- JSON object
);
CREATE INDEX event_ticket ON event (ticket_id);

-- Every message in and out. Inbound rows point at their raw_message; outbound rows hold the
-- exact bytes handed to SMTP.
CREATE TABLE message (
    message_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id       BIGINT REFERENCES ticket (ticket_id),
    direction       TEXT NOT NULL,   -- in | out
    kind            TEXT NOT NULL,   -- report | follow_up | auto_reply | bounce | ack | notification | notice
    rfc_message_id  TEXT,
    in_reply_to     TEXT,
    dedup_key       TEXT UNIQUE,     -- inbound only: Message-ID, else sha256 of the raw bytes
    from_addr       TEXT NOT NULL,
    to_addrs        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text            TEXT NOT NULL,
    html            TEXT,
    at              BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    raw_message_id  BIGINT REFERENCES raw_message (raw_message_id),
    raw             BLOB
);
CREATE INDEX message_ticket ON message (ticket_id);
CREATE INDEX message_to_kind ON message (to_addrs, kind, at);

CREATE TABLE attachment (
    attachment_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     BIGINT NOT NULL REFERENCES message (message_id),
    ticket_id      BIGINT REFERENCES ticket (ticket_id),
    filename       TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    sha256         TEXT NOT NULL
);
CREATE INDEX attachment_ticket ON attachment (ticket_id);

-- Mail waiting to be sent. Rows are claimed with a lease so two workers never send one
-- message at the same time, and a crashed worker's claim expires.
CREATE TABLE outbox (
    outbox_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       BIGINT NOT NULL REFERENCES message (message_id),
    envelope_from    TEXT NOT NULL,
    recipients       TEXT NOT NULL,   -- comma-separated envelope recipients
    state            TEXT NOT NULL,   -- queued | sent | failed
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_reply       TEXT,
    sent_at          BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_message ON outbox (message_id);

-- Each SMTP attempt and what the server said.
CREATE TABLE delivery_attempt (
    delivery_attempt_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id            BIGINT NOT NULL REFERENCES outbox (outbox_id),
    at                   BIGINT NOT NULL,
    ok                   INTEGER NOT NULL,
    reply                TEXT NOT NULL
);
