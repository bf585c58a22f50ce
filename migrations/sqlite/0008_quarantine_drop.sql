-- Quarantined messages an operator has dealt with (`ticketgate quarantine drop ID --reason`):
-- the raw message stays stored, its state becomes 'dropped', and this row says who (the unix
-- user), when and why. One row per message: a message is dropped once.
CREATE TABLE quarantine_drop (
    raw_message_id  BIGINT PRIMARY KEY REFERENCES raw_message (raw_message_id),
    dropped_at      BIGINT NOT NULL,
    dropped_by      TEXT NOT NULL,
    reason          TEXT NOT NULL
);
