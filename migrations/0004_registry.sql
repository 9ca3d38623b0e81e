-- Model registry: registered models, their versions, tags and aliases (MLflow's registry).
--
-- A version points at stored artifacts (its `source`, and `storage_location`, where a
-- `models:/m-...` source resolves to the logged model's artifacts); nothing is copied.
-- Version numbers are drawn from `registered_models.last_version`, so a deleted version's
-- number is never reused and concurrent registrations serialise on the model's row.
-- Times are epoch milliseconds, as in MLflow's API.

CREATE TABLE registered_models (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text   NOT NULL,
    description       text,
    creation_time     bigint NOT NULL,
    last_updated_time bigint NOT NULL,
    last_version      bigint NOT NULL DEFAULT 0,
    created_by        bigint REFERENCES users (id)
);
-- Lookups by name and name-ordered search pages.
CREATE UNIQUE INDEX registered_models_by_name ON registered_models (name);
CREATE INDEX registered_models_by_update ON registered_models (last_updated_time DESC, id);

CREATE TABLE registered_model_tags (
    model_id bigint NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    key      text   NOT NULL,
    value    text   NOT NULL,
    PRIMARY KEY (model_id, key)
);
-- Tag filters of searches: `tags.k = 'v'` finds models by key and value.
CREATE INDEX registered_model_tags_search ON registered_model_tags (key, value) INCLUDE (model_id);

CREATE TABLE model_versions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id          bigint NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version           bigint NOT NULL,
    source            text   NOT NULL,
    -- Where the artifacts are: the source, or for a `models:/` source what it resolves to.
    storage_location  text   NOT NULL,
    run_id            bigint REFERENCES runs (id),
    -- The MLflow 3 logged model the version was registered from.
    logged_model_id   text   REFERENCES logged_models (model_id),
    status            text   NOT NULL DEFAULT 'READY'
                      CHECK (status IN ('PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY')),
    current_stage     text   NOT NULL DEFAULT 'None'
                      CHECK (current_stage IN ('None', 'Staging', 'Production', 'Archived')),
    description       text,
    user_id           text   NOT NULL DEFAULT '',
    run_link          text,
    creation_time     bigint NOT NULL,
    last_updated_time bigint NOT NULL,
    created_by        bigint REFERENCES users (id),
    UNIQUE (model_id, version)
);
-- Latest version per stage, and versions of a model in version order (the UNIQUE index).
CREATE INDEX model_versions_by_stage ON model_versions (model_id, current_stage, version DESC);
-- "Which versions came from this run?" (search by run_id, the run page).
CREATE INDEX model_versions_by_run ON model_versions (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX model_versions_by_logged_model ON model_versions (logged_model_id) WHERE logged_model_id IS NOT NULL;

CREATE TABLE model_version_tags (
    version_id bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    key        text   NOT NULL,
    value      text   NOT NULL,
    PRIMARY KEY (version_id, key)
);
CREATE INDEX model_version_tags_search ON model_version_tags (key, value) INCLUDE (version_id);

-- One version per alias per model; deleting the version removes its aliases.
CREATE TABLE model_aliases (
    model_id   bigint NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    alias      text   NOT NULL,
    version_id bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    PRIMARY KEY (model_id, alias)
);
CREATE INDEX model_aliases_by_version ON model_aliases (version_id);
