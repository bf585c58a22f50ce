-- Hostile mail (issue 10, findings 1 and 12). Keep in step with the other backend's 0004.

-- Processing attempts of a raw message, counted and committed BEFORE it is parsed: a
-- message whose attempts keep crashing the process (a stack overflow aborts; no error is
-- ever returned) is recognised at the next start and quarantined instead of crashing again.
ALTER TABLE raw_message ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- Inbound messages by Message-ID: the same Message-ID with different content is a new
-- message (flagged), found through this index.
CREATE INDEX message_rfc_message_id ON message (rfc_message_id);
