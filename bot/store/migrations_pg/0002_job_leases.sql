-- Leases, for several processes on one database (issue 17; used by a later change): the
-- process that owns a job in flight, until when (the database's own clock, so the
-- processes' clocks need not agree), and a fencing epoch that every claim raises, so that
-- a write by a process whose lease was taken over matches nothing. Jobs start unowned.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
