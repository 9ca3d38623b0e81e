-- Lineage and provenance: a model version's provenance lists the audit events whose target
-- is the version (`model:NAME/VERSION`) or its model (`model:NAME`), and the alias moves
-- away from it (targets `model:NAME/%`). `text_pattern_ops` serves both the equalities and
-- the prefix LIKE whatever the database's collation; `id` keeps each target's events in
-- the chain's order.
CREATE INDEX audit_events_by_target ON audit_events (target text_pattern_ops, id);
