-- Community servers: each server's settings, an audit log of who changed them, and an
-- index for the usage figures (quotas, /usage) that are read from the jobs themselves.
-- IF NOT EXISTS throughout, so the file is harmless on a database where an operator
-- created any of these by hand; rows written by 0001–0003 are untouched.

-- `data` holds GuildSettings as JSON (like member_prefs): a new setting is a new field
-- with a default in bot/community.py, not a migration. No row: the defaults.
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id   TEXT PRIMARY KEY NOT NULL,
    data       TEXT NOT NULL,
    updated_at REAL NOT NULL
);

-- Append-only. `id` orders entries recorded within the same second.
CREATE TABLE IF NOT EXISTS audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_guild_at ON audit_log (guild_id, at, id);

-- Usage is computed from `jobs`, not kept in a second table that could drift from it:
-- the columns every usage query filters on (guild, member, time, status) are already
-- real columns, and the few values only the JSON holds (mode, cost, error code) are
-- read with json_extract from the rows this index narrows to: one member's jobs in one
-- server since a time. Costs are summed in Python as Decimal, since SQLite's SUM would
-- round them through floating point, so generated columns would buy nothing here.
CREATE INDEX IF NOT EXISTS jobs_guild_requester_created ON jobs (guild_id, requester_id, created_at);
