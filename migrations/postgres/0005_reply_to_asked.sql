-- Identity comes from From, never from Reply-To (issue 10, findings 2 and 3). Same statements
-- on both backends.

-- The Reply-To a citizen's first mail asked for, when it differs from From: shown to staff
-- ("chiede risposta a"), never an identity. `reply_to` (0002) keeps its meaning — where mail
-- to the citizen goes instead of `citizen` — but is now set only when staff choose this
-- address explicitly (`#rispondi-a` / `#reply-to`). Existing PEC tickets keep the `risposte`
-- address they were answered at, and show it as asked too.
ALTER TABLE ticket ADD COLUMN reply_to_asked TEXT;
UPDATE ticket SET reply_to_asked = reply_to WHERE reply_to IS NOT NULL;

-- outbox.recipients: new rows hold a JSON array of addresses (one element per envelope
-- recipient), never a comma-joined string. Older rows (one address each) are read as before;
-- see store/outbox.rs `decode_recipients`.
