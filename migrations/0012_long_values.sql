-- Param values may be 6000 characters long and tag values 8000 (MLflow's limits), but a
-- btree entry holds at most 2704 bytes: a long value that does not compress well (a
-- base64 blob, a list of hashes) could not be logged at all. The search indexes now hold
-- the first 400 characters of the value (at most 1600 bytes, plus a key of at most 250
-- characters); searches seek on that prefix and compare whole values, and sorts read the
-- prefix order from the index and order ties on the whole value.
DROP INDEX run_params_search;
CREATE INDEX run_params_search ON run_params (experiment_id, key, left(value, 400)) INCLUDE (run_id);
DROP INDEX run_tags_search;
CREATE INDEX run_tags_search ON run_tags (experiment_id, key, left(value, 400)) INCLUDE (run_id);
