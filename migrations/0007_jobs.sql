-- Training jobs: a queue in PostgreSQL (workers claim with FOR UPDATE SKIP LOCKED), the
-- state machine queued -> scheduled -> running -> succeeded / failed / cancelled, and one
-- event row per transition.

CREATE TABLE jobs (
    id            uuid    PRIMARY KEY,
    state         text    NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    -- The resolved spec (cairn_core::job::JobSpec): enough to run the job again.
    spec          jsonb   NOT NULL,
    experiment_id bigint  NOT NULL REFERENCES experiments (id),
    run_id        bigint  NOT NULL REFERENCES runs (id),
    priority      integer NOT NULL DEFAULT 0,
    gpus          integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    -- The job this one retries or retrains, if any.
    origin_job_id uuid    REFERENCES jobs (id),
    reason        text    NOT NULL DEFAULT '',
    exit_code     integer,
    -- Which server process runs it (local executor), and the process group it started.
    worker        text,
    pid           integer,
    -- The token the job's code logs with; revoked when the job ends.
    token_id      uuid,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_by    bigint  REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    scheduled_at  timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX jobs_queue ON jobs (priority DESC, created_at) WHERE state = 'queued';
CREATE INDEX jobs_by_time ON jobs (created_at DESC);
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('scheduled', 'running');
CREATE INDEX jobs_by_run ON jobs (run_id);

CREATE TABLE job_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid   NOT NULL REFERENCES jobs (id),
    at         timestamptz NOT NULL DEFAULT now(),
    from_state text,
    to_state   text   NOT NULL,
    reason     text   NOT NULL DEFAULT ''
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);
