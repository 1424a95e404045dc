-- Jobs. `data` holds the whole job as JSON and is the source of truth; the other
-- columns copy the fields that are searched or sorted on, so they can be indexed.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    -- UNIQUE lets INSERT ... ON CONFLICT(idempotency_key) DO NOTHING make a double
    -- click create one job; NULLs are distinct, so jobs without a key never collide.
    idempotency_key TEXT UNIQUE,
    provider        TEXT NOT NULL,
    provider_ref    TEXT,
    status          TEXT NOT NULL,
    requester_id    TEXT,
    guild_id        TEXT,
    channel_id      TEXT,
    parent_job_id   TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    finished_at     REAL,
    data            TEXT NOT NULL
);

-- Webhooks and polls find a job by the provider's id for it.
CREATE INDEX jobs_provider_ref ON jobs (provider, provider_ref);
-- Resuming after a restart lists the jobs still in flight.
CREATE INDEX jobs_status ON jobs (status);
-- History pages and quotas, per member and per server.
CREATE INDEX jobs_requester_created ON jobs (requester_id, created_at);
CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at);
