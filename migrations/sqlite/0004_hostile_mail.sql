-- Hostile mail (issue 10, findings 1 and 12). Keep in step with the other backend's 0004.

-- Processing attempts of a raw message, counted and committed BEFORE it is parsed: a
-- message whose attempts keep crashing the process (a stack overflow aborts; no error is
-- ever returned) is recognised at the next start and quarantined instead of crashing again.
ALTER TABLE raw_message ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
-- `ingest` run again by the MTA after a crash finds the row its crashed run stored.
CREATE INDEX raw_message_sha256 ON raw_message (sha256);

-- Fingerprint of an inbound message's author fields and body (mail::fingerprint): the same
-- Message-ID with another fingerprint is a different message. NULL on rows stored before
-- this migration (computed from their raw message when needed).
ALTER TABLE message ADD COLUMN content_sha256 TEXT;
