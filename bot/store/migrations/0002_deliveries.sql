-- Where each job is shown in Discord, so that a restart keeps editing the same message
-- and delivers a final result exactly once. Interaction tokens are not stored: they
-- die within 15 minutes, and the bot's own channel edit works without them.
CREATE TABLE deliveries (
    job_id             TEXT PRIMARY KEY NOT NULL,
    channel_id         TEXT NOT NULL,
    message_id         TEXT,
    guild_id           TEXT,
    upload_limit       INTEGER NOT NULL,
    final_delivered_at REAL,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL
);

-- A restart finishes what was not delivered yet.
CREATE INDEX deliveries_pending ON deliveries (final_delivered_at);
