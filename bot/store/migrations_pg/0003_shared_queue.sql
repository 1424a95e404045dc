-- One account limit and one members' queue for every process on this database (issue 17).
--
-- * `accounts`: one row per provider account of the pool; a dispatch locks the rows of its
--   pool (ORDER BY name), so two processes never count the same free slot twice.
-- * `jobs.slot_account`: the account whose slot the job holds. Set when a dispatch grants
--   the job a slot, cleared by its terminal save or when it goes back to the queue. What
--   counts against an account's limit is these rows, whichever process holds the job.
-- * `member_turns`: the round-robin between members (bot/engine/fair_queue.py in SQL).
--   A member's `turn` is taken from the `queue_turns` sequence when a job enters their
--   empty lane and again when they are served; lanes are served in turn order.
-- * `jobs.queued_seq` / `queued_front`: a job's place in its member's lane (a job put back
--   at the front after a refused submission goes before the others, the latest first), and
--   `not_before`, the database time before which a resubmission waits.
CREATE TABLE accounts (
    name                TEXT PRIMARY KEY,
    max_concurrent_jobs INTEGER NOT NULL,
    updated_at          DOUBLE PRECISION NOT NULL
);

CREATE SEQUENCE queue_turns;

CREATE TABLE member_turns (
    requester_id TEXT PRIMARY KEY,  -- '' for jobs without a requester
    turn         BIGINT NOT NULL
);

ALTER TABLE jobs ADD COLUMN slot_account TEXT;
ALTER TABLE jobs ADD COLUMN queued_seq BIGINT NOT NULL DEFAULT nextval('queue_turns');
ALTER TABLE jobs ADD COLUMN queued_front BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN not_before TIMESTAMPTZ;

CREATE INDEX jobs_slots ON jobs (slot_account) WHERE slot_account IS NOT NULL;
CREATE INDEX jobs_waiting ON jobs ((COALESCE(requester_id, '')))
    WHERE status = 'queued' AND slot_account IS NULL;

-- Jobs already sent hold a slot at their account (the single account is 'default').
UPDATE jobs SET slot_account = COALESCE(account, 'default')
WHERE status IN ('submitted', 'running');
INSERT INTO member_turns (requester_id, turn)
SELECT COALESCE(requester_id, ''), min(queued_seq) FROM jobs
WHERE status = 'queued' GROUP BY COALESCE(requester_id, '');

-- A job entering an empty lane puts its member at the back of the ring (FairQueue.push).
-- In the trigger, so that an insert stays the one statement it was.
CREATE FUNCTION queue_push_turn(member TEXT, pushed TEXT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO member_turns (requester_id, turn) VALUES (member, nextval('queue_turns'))
    ON CONFLICT (requester_id) DO UPDATE SET turn = CASE
        WHEN EXISTS (
            SELECT 1 FROM jobs w
            WHERE COALESCE(w.requester_id, '') = member AND w.id <> pushed
              AND w.status = 'queued' AND w.slot_account IS NULL)
        THEN member_turns.turn ELSE excluded.turn END
$$;

CREATE FUNCTION jobs_queued_turn() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queue_push_turn(COALESCE(NEW.requester_id, ''), NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_queued_turn AFTER INSERT ON jobs
FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION jobs_queued_turn();
