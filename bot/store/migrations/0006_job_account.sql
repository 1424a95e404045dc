-- Several provider accounts (MJ_ACCOUNTS_FILE): each job records the account it was sent
-- to, so that its follow-ups go to the same one and the admins' view can count each
-- account's jobs and cost today. Jobs from before have none: they belong to the first
-- account of their provider. The index serves "this account's jobs since midnight".
ALTER TABLE jobs ADD COLUMN account TEXT;
UPDATE jobs SET account = json_extract(data, '$.account');
CREATE INDEX IF NOT EXISTS jobs_account_created ON jobs (account, created_at);
