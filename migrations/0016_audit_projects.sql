-- The project of each audit event's object, for filtering the audit log by project.
--
-- `audit_target_project` maps an event's target (`experiment:12`, `run:HEX`,
-- `model:NAME/3`, `dataset:NAME@2`, `job:UUID`, `job_template:NAME@1`, `deployment:NAME`,
-- `project:NAME`, `artifact:EXPERIMENT/...`) to the project its object is in when the
-- event is written (in the same transaction as the change). `project_id` is an index for
-- filtering, not part of the hashed content: the hash chain is unchanged, and an event
-- whose object is gone (a deleted model) or that names no object (a login) has none.

-- PL/pgSQL rather than SQL: its statements' plans are cached per connection, where a SQL
-- function's body would be planned again on every call.
CREATE FUNCTION audit_target_project(target text) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    kind text := split_part(target, ':', 1);
    rest text := substr(target, length(split_part(target, ':', 1)) + 2);
BEGIN
    CASE kind
    WHEN 'experiment' THEN
        IF rest ~ '^[0-9]{1,18}$' THEN
            RETURN (SELECT project_id FROM experiments WHERE id = rest::bigint);
        END IF;
    WHEN 'artifact' THEN
        IF split_part(rest, '/', 1) ~ '^[0-9]{1,18}$' THEN
            RETURN (SELECT project_id FROM experiments WHERE id = split_part(rest, '/', 1)::bigint);
        END IF;
    WHEN 'run' THEN
        IF rest ~* '^[0-9a-f]{32}$|^[0-9a-f-]{36}$' THEN
            RETURN (SELECT e.project_id FROM runs r JOIN experiments e ON e.id = r.experiment_id
                    WHERE r.run_uuid = rest::uuid);
        END IF;
    WHEN 'job' THEN
        IF rest ~* '^[0-9a-f]{32}$|^[0-9a-f-]{36}$' THEN
            RETURN (SELECT e.project_id FROM jobs j JOIN experiments e ON e.id = j.experiment_id
                    WHERE j.id = rest::uuid);
        END IF;
    WHEN 'model' THEN
        RETURN (SELECT project_id FROM registered_models WHERE name = regexp_replace(rest, '/[0-9]+$', ''));
    WHEN 'dataset' THEN
        RETURN (SELECT project_id FROM datasets WHERE name = regexp_replace(rest, '@[0-9]+$', ''));
    WHEN 'job_template' THEN
        RETURN (SELECT min(project_id) FROM job_templates WHERE name = regexp_replace(rest, '@[0-9]+$', ''));
    WHEN 'deployment' THEN
        RETURN (SELECT project_id FROM deployments WHERE name = rest);
    WHEN 'project' THEN
        RETURN (SELECT id FROM projects WHERE name = rest);
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END
$$;

ALTER TABLE audit_events ADD COLUMN project_id bigint;

-- Fill in the events written before: the append-only trigger refuses updates, so it is
-- lifted for this one statement, which touches no hashed column.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
UPDATE audit_events SET project_id = audit_target_project(target);
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;

CREATE INDEX audit_events_by_project ON audit_events (project_id, id DESC) WHERE project_id IS NOT NULL;
