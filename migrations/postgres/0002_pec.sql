-- PEC (certified mail, RFC 6109). Same statements on both backends.

-- NULL: the ticket did not come to a PEC box. 1: a citizen's certified PEC (transport
-- envelope). 0: an ordinary mail that reached the PEC box (anomaly envelope): not certified.
ALTER TABLE ticket ADD COLUMN certified INTEGER;
-- The PEC address the ticket came to: From of every mail to the citizen, sent through
-- [pec_smtp] so that it is certified too.
ALTER TABLE ticket ADD COLUMN pec_address TEXT;
-- Where mail to the citizen goes when not to `citizen`: a PEC's `risposte` address when it
-- differs from the certified sender (`mittente`, who stays the ticket's citizen).
ALTER TABLE ticket ADD COLUMN reply_to TEXT;
-- "My tickets" looks tickets up by citizen OR reply_to.
CREATE INDEX ticket_reply_to ON ticket (reply_to);

-- The PEC identificativo: for an inbound envelope its Message-ID (the provider's); for our
-- outbound mail the id the provider gave it (learned from its receipts; the citizen's client
-- puts it in In-Reply-To when answering).
ALTER TABLE message ADD COLUMN pec_id TEXT;
-- Outbound over PEC: accettata | non accettata | consegnata | non consegnata.
ALTER TABLE message ADD COLUMN pec_state TEXT;
-- JSON object: the receipt that set pec_state (type, delivered_to, reason, certified_at).
ALTER TABLE message ADD COLUMN pec_detail TEXT;
-- The provider's certified time (daticert.xml `data`), unix millis.
ALTER TABLE message ADD COLUMN certified_at BIGINT;
-- Provider signature of an inbound envelope/receipt: verified | not verified | not checked.
ALTER TABLE message ADD COLUMN signature TEXT;
ALTER TABLE message ADD COLUMN signature_detail TEXT;
CREATE INDEX message_pec_id ON message (pec_id);

-- smtp | pec: which SMTP account sends the row.
ALTER TABLE outbox ADD COLUMN transport TEXT NOT NULL DEFAULT 'smtp';
