-- Audit trail: indexes for the audit page's and API's filters, and anchors.
--
-- The audit list filters by actor, action, target (object) and outcome, each exact or by
-- prefix (`job.*`), and pages newest first by id: `(column text_pattern_ops, id)` serves the
-- equality, the prefix LIKE whatever the collation, and the id order within one value.
-- `target` has its index from 0006; time ranges use `audit_events_by_time` from 0001.
CREATE INDEX audit_events_by_actor_name ON audit_events (actor_name text_pattern_ops, id);
CREATE INDEX audit_events_by_action ON audit_events (action text_pattern_ops, id);
CREATE INDEX audit_events_by_outcome ON audit_events (outcome text_pattern_ops, id);

-- Chain heads taken by `cairn audit anchor`. No foreign key to audit_events: an anchor must
-- outlive the row it names, so that a deleted row shows up as a missing anchor.
CREATE TABLE audit_anchors (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   bigint      NOT NULL,
    hash       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL
);
