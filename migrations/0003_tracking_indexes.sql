-- Indexes and constraints tuned against the benchmark (bench/RESULTS.md).

-- Metric points are the hottest write: the foreign key to runs made every inserted point run
-- a trigger that takes a KEY SHARE lock on its run's row, about half the cost of a batch.
-- Runs are never removed (deletion is a lifecycle stage), and the one writer
-- (tracking::metrics::log) resolves the run in the same transaction before inserting.
ALTER TABLE metrics DROP CONSTRAINT metrics_run_id_fkey;

-- History pages and chart buckets read (step, timestamp, value) in index order: with the
-- value included they are index-only scans.
DROP INDEX metrics_history;
CREATE INDEX metrics_history ON metrics (run_id, key, step, timestamp, id) INCLUDE (value);

-- Run lists sort newest first with runs lacking a start time last; the index now says so,
-- which lets PostgreSQL read a page straight from it.
DROP INDEX runs_by_experiment_start;
CREATE INDEX runs_by_experiment_start ON runs (experiment_id, start_time DESC NULLS LAST, id DESC);
