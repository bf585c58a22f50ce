-- The citizen web page: accounts, sessions, single-use mail links, login failures.
-- Keep in step with the other backend's 0003 (only key types differ).

CREATE TABLE citizen (
    citizen_id     BIGSERIAL PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,   -- lowercase; tickets are matched on it once verified
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    fiscal_code    TEXT NOT NULL UNIQUE,   -- normalised (uppercase); shown only masked
    password_hash  TEXT NOT NULL,          -- Argon2id PHC string
    verified_at    BIGINT,                 -- NULL until the emailed link is confirmed
    created_at     BIGINT NOT NULL
);

-- Signed-in sessions, shared by every instance. The cookie holds a random id; only its
-- sha256 is stored, so a copy of the database opens no session.
CREATE TABLE web_session (
    session_hash  TEXT PRIMARY KEY,
    citizen_id    BIGINT NOT NULL REFERENCES citizen (citizen_id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX web_session_citizen ON web_session (citizen_id);

-- Links mailed to a citizen (verify the address, reset the password): random, stored as
-- sha256, single use (used_at), expiring.
CREATE TABLE citizen_token (
    token_hash  TEXT PRIMARY KEY,
    citizen_id  BIGINT NOT NULL REFERENCES citizen (citizen_id),
    purpose     TEXT NOT NULL,             -- verify | reset
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX citizen_token_citizen ON citizen_token (citizen_id, purpose, created_at);

-- Failed sign-ins, for the rate limits per address and per account (key "ip:…" / "acct:…").
CREATE TABLE login_failure (
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX login_failure_key ON login_failure (key, at);
