-- Each office's daily digest (issue 14): one row per area and Italian day, written in the
-- same transaction as the digest mails are queued (the outbox). The primary key is what makes
-- the digest go out once per area and day with several instances running or after a restart:
-- the second transaction to record the day conflicts, inserts nothing and queues nothing.
-- sent_at (unix millis) is also where "new since the last digest" starts.
-- Keep in step with the other backend's 0011.
CREATE TABLE digest_sent (
    area      TEXT NOT NULL,
    day       TEXT NOT NULL,
    sent_at   BIGINT NOT NULL,
    PRIMARY KEY (area, day)
);
