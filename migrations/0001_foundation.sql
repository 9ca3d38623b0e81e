-- Foundation: accounts, API tokens, dashboard sessions, server settings and the audit log.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- API tokens are signed JWTs; the row is what makes them listable and revocable.
-- The token secret itself is never stored.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    name         text        NOT NULL,
    scope        text        NOT NULL DEFAULT 'write' CHECK (scope IN ('read', 'write')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC);

-- Dashboard sessions: the cookie holds a random secret, the table only its SHA-256.
CREATE TABLE sessions (
    secret_hash bytea PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE server_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Append-only, hash-chained audit log. `id` is the position in the chain (no gaps:
-- rows are appended under an advisory lock), `prev_hash` is the previous row's `hash`,
-- and `hash` covers this row's content and `prev_hash` (see cairn-db audit.rs).
-- `details` is canonical JSON text, kept as text so the hashed bytes are the stored bytes.
CREATE TABLE audit_events (
    id          bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id    bigint,
    actor_name  text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    request_id  text,
    client_addr text,
    outcome     text        NOT NULL,
    details     text        NOT NULL,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at);
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
