-- Attempts at the citizen forms that hash a password or send mail (sign-in, registration,
-- mailed links, web reports), per key ("login:ip:…", "login:acct:…|ip:…", "register:ip:…",
-- "regmail:…", …). Written BEFORE the work they allow, so that parallel requests cannot all
-- pass a limit (issue 10, findings 5, 6, 15). Only the key type differs between backends.

CREATE TABLE web_attempt (
    attempt_id  BIGSERIAL PRIMARY KEY,
    key         TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX web_attempt_key ON web_attempt (key, at);
CREATE INDEX web_attempt_at ON web_attempt (at);

-- Its predecessor counted failures after the password check (raceable) and kept no id.
DROP TABLE login_failure;
