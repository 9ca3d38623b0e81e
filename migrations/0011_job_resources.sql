-- CPU cores a job reserves (its spec's `cpu`, 1 when unset). CPU-seconds are charged for
-- them: wall x cores, as GPU-seconds are wall x GPUs held.
ALTER TABLE jobs ADD COLUMN cpu_cores double precision NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION jobs_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.template_id IS NULL AND NEW.origin_job_id IS NOT NULL THEN
        NEW.template_id := (SELECT template_id FROM jobs WHERE id = NEW.origin_job_id);
    END IF;
    IF NEW.finished_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.finished_at IS NULL) THEN
        NEW.wall_seconds := GREATEST(0, EXTRACT(EPOCH FROM NEW.finished_at - COALESCE(NEW.started_at, NEW.finished_at)));
        NEW.gpu_seconds := NEW.wall_seconds * NEW.gpus;
        NEW.cpu_seconds := COALESCE(NEW.cpu_seconds, NEW.wall_seconds * NEW.cpu_cores);
    END IF;
    RETURN NEW;
END
$$;
