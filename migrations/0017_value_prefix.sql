-- The 400-character prefix of param and tag values that the search indexes hold (0012)
-- becomes a stored column. An index on the expression `left(value, 400)` cannot answer
-- a query from the index alone: PostgreSQL wants `value` itself, which is not in the
-- index, so collecting the runs with `params.p0 = 'v3'` read a heap page per match
-- (13 ms for 10,000 runs). On a plain column the same scan reads only the index (3 ms),
-- which is what a search needs to check such a filter against a hash of those runs
-- instead of probing every candidate (crates/cairn-db/src/tracking/search.rs).
ALTER TABLE run_params ADD COLUMN value_prefix text GENERATED ALWAYS AS (left(value, 400)) STORED;
ALTER TABLE run_tags ADD COLUMN value_prefix text GENERATED ALWAYS AS (left(value, 400)) STORED;
DROP INDEX run_params_search;
CREATE INDEX run_params_search ON run_params (experiment_id, key, value_prefix) INCLUDE (run_id);
DROP INDEX run_tags_search;
CREATE INDEX run_tags_search ON run_tags (experiment_id, key, value_prefix) INCLUDE (run_id);
-- The choice needs the number of runs an equality filter matches. PostgreSQL would multiply
-- the selectivities of the experiment, the key and the value as if they were independent
-- (a value that only one key takes, such as `adam`, estimated at a twentieth of its runs
-- with twenty keys); statistics on the three together give the common combinations exactly.
CREATE STATISTICS run_params_key_value (mcv) ON experiment_id, key, value_prefix FROM run_params;
CREATE STATISTICS run_tags_key_value (mcv) ON experiment_id, key, value_prefix FROM run_tags;
