-- The PostgreSQL schema, equal to what SQLite's migrations 0001-0006 built (see
-- bot/store/migrations/ for why each table and column exists). Differences:
--   * times stay Unix seconds, as DOUBLE PRECISION (what SQLite's REAL holds);
--   * `data` is TEXT, the job's JSON exactly as written: JSONB would rewrite numbers and
--     refuse \u0000, and the text is the source of truth. Usage reports cast it to json;
--   * `seq` stands in for SQLite's rowid: it breaks ties in insertion order.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    -- UNIQUE lets INSERT ... ON CONFLICT (idempotency_key) DO NOTHING make a double
    -- click create one job, across processes too; NULLs never collide.
    idempotency_key TEXT UNIQUE,
    provider        TEXT NOT NULL,
    provider_ref    TEXT,
    status          TEXT NOT NULL,
    requester_id    TEXT,
    guild_id        TEXT,
    channel_id      TEXT,
    parent_job_id   TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    finished_at     DOUBLE PRECISION,
    data            TEXT NOT NULL,
    mode            TEXT,
    error_code      TEXT,
    account         TEXT,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX jobs_provider_ref ON jobs (provider, provider_ref);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_requester_created ON jobs (requester_id, created_at);
CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at);
CREATE INDEX jobs_member_usage
    ON jobs (guild_id, requester_id, created_at, status, mode, error_code);
CREATE INDEX jobs_account_created ON jobs (account, created_at);

CREATE TABLE deliveries (
    job_id             TEXT PRIMARY KEY,
    channel_id         TEXT NOT NULL,
    message_id         TEXT,
    guild_id           TEXT,
    upload_limit       BIGINT NOT NULL,
    final_delivered_at DOUBLE PRECISION,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (final_delivered_at);

-- DMs use guild_id '' (NULLs would never collide in the primary key).
CREATE TABLE member_prefs (
    guild_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE guild_settings (
    guild_id   TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- Append-only; `id` orders entries recorded within the same instant.
CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_log_guild_at ON audit_log (guild_id, at, id);
