-- Job templates (named, versioned specs a team reuses) and GPU-hour accounting.

CREATE TABLE job_templates (
    id            bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text    NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
    -- 1, 2, ...: every update of a template is a new version; old ones stay, so a job
    -- names exactly the spec it came from.
    version       integer NOT NULL CHECK (version >= 1),
    -- A cairn_core::job::JobSpec; its params are the defaults a submission may override,
    -- its dataset inputs may be unpinned (resolved when a job is submitted).
    spec          jsonb   NOT NULL,
    description   text    NOT NULL DEFAULT '',
    -- Where jobs from this template log their runs (the Default experiment when NULL).
    experiment_id bigint  REFERENCES experiments (id),
    created_by    bigint  REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

-- The template version a job was submitted from. Retries and retrains of such a job
-- inherit it (trigger below), so their GPU hours count for the same template.
ALTER TABLE jobs ADD COLUMN template_id bigint REFERENCES job_templates (id);

-- Accounting, recorded when the job ends (finished_at set): wall time from start to end
-- (0 for a job that never started), GPU-seconds = wall x GPUs held, CPU-seconds = wall x 1
-- unless the executor measured it and set cpu_seconds itself.
ALTER TABLE jobs ADD COLUMN wall_seconds double precision;
ALTER TABLE jobs ADD COLUMN gpu_seconds  double precision;
ALTER TABLE jobs ADD COLUMN cpu_seconds  double precision;

CREATE FUNCTION jobs_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.template_id IS NULL AND NEW.origin_job_id IS NOT NULL THEN
        NEW.template_id := (SELECT template_id FROM jobs WHERE id = NEW.origin_job_id);
    END IF;
    IF NEW.finished_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.finished_at IS NULL) THEN
        NEW.wall_seconds := GREATEST(0, EXTRACT(EPOCH FROM NEW.finished_at - COALESCE(NEW.started_at, NEW.finished_at)));
        NEW.gpu_seconds := NEW.wall_seconds * NEW.gpus;
        NEW.cpu_seconds := COALESCE(NEW.cpu_seconds, NEW.wall_seconds);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER jobs_bookkeeping BEFORE INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_bookkeeping();

-- Jobs that ended before this migration.
UPDATE jobs SET
    wall_seconds = GREATEST(0, EXTRACT(EPOCH FROM finished_at - COALESCE(started_at, finished_at))),
    gpu_seconds = GREATEST(0, EXTRACT(EPOCH FROM finished_at - COALESCE(started_at, finished_at))) * gpus,
    cpu_seconds = GREATEST(0, EXTRACT(EPOCH FROM finished_at - COALESCE(started_at, finished_at)))
WHERE finished_at IS NOT NULL;

-- Usage totals over a time range (jobs count in the range they ended in).
CREATE INDEX jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- The jobs list: newest first, keyset on (created_at, id), optionally in one state.
CREATE INDEX jobs_by_state_time ON jobs (state, created_at DESC, id DESC);
CREATE INDEX jobs_by_template ON jobs (template_id) WHERE template_id IS NOT NULL;
