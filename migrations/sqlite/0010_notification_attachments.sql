-- Staff notifications carry the citizen's attachments (issue 13). An attachment keeps its
-- Content-ID and whether it was shown inline (the images of an HTML mail), so that a
-- notification sends it inline under the same Content-ID. Rows from before this migration:
-- no Content-ID, not inline (sent as ordinary attachments).
ALTER TABLE attachment ADD COLUMN content_id TEXT;
ALTER TABLE attachment ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;

-- Which of the ticket's attachments each notification offered, written when it is queued:
-- carried = 1 went with the mail as a MIME part, 0 did not fit
-- notifications.max_attachment_bytes and was listed with its size and a link. A link
-- table rather than an event detail: one row per notification and file, joined by id to
-- the attachment (name, size, sha256 are not copied), read by `ticket show`.
-- Keep in step with the other backend's 0010.
CREATE TABLE notification_attachment (
    message_id     BIGINT NOT NULL REFERENCES message (message_id),
    attachment_id  BIGINT NOT NULL REFERENCES attachment (attachment_id),
    carried        INTEGER NOT NULL,
    PRIMARY KEY (message_id, attachment_id)
);
