-- The bot's live processes (issue 17): Discord's global limit is per bot, so each process
-- paces at its share of it. A process heartbeats its row; those heard from within the
-- lease period are alive; a clean stop deletes its row.
CREATE TABLE bot_processes (
    owner        TEXT PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
