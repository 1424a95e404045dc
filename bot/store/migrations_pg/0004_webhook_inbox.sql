-- Webhooks on any process (issue 17): a provider's post, or a member's cancel, for a job
-- that another process holds waits here until that owner (woken by NOTIFY, or by its own
-- periodic look) takes it. DELETE ... RETURNING hands each row to exactly one reader.
CREATE TABLE webhook_inbox (
    id          BIGSERIAL PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL DEFAULT 'push',  -- 'push' (a provider's post) or 'cancel'
    provider    TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_inbox_job ON webhook_inbox (job_id, id);
