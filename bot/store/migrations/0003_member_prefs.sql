-- Each member's preferences per server (Midjourney's /prefer and /settings, per person).
-- `data` holds the preferences as JSON, so a new preference (default mode, aspect ratio,
-- prompt suffix, …) needs a field in MemberPrefs, not a migration. DMs use guild_id ''
-- because NULLs would never collide in the primary key.
CREATE TABLE member_prefs (
    guild_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
