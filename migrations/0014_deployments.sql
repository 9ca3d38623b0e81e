-- Deployments: a model version served over HTTP (locally or on Kubernetes), and the
-- numbered history of what each one served. Every change (create, update, rollback, the
-- followed alias moving) appends a revision; `current_revision` names the one that should
-- be live. Rollback is a new revision pointing at an earlier version, never a rewrite.

CREATE TABLE deployments (
    id               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Also the Kubernetes object name (cairn-serve-NAME) and the gateway path /serve/NAME.
    name             text    NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    model_id         bigint  NOT NULL REFERENCES registered_models (id),
    -- The alias the deployment follows ("always serve @champion"); NULL: a fixed version.
    alias            text,
    runtime          text    NOT NULL DEFAULT 'mlflow-pyfunc',
    replicas         integer NOT NULL DEFAULT 1 CHECK (replicas BETWEEN 1 AND 100),
    cpu              text,
    memory           text,
    gpus             integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    env              jsonb   NOT NULL DEFAULT '{}',
    target           text    NOT NULL DEFAULT 'local' CHECK (target IN ('local', 'kubernetes')),
    -- pending (new revision not live yet), ready, failed, stopped.
    status           text    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'ready', 'failed', 'stopped')),
    status_message   text    NOT NULL DEFAULT '',
    current_revision integer NOT NULL DEFAULT 0,
    created_by       bigint  REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_by_model ON deployments (model_id);

CREATE TABLE deployment_revisions (
    deployment_id    bigint  NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    revision         integer NOT NULL CHECK (revision >= 1),
    -- The version served; kept when the version is deleted later (history stays readable).
    model_version_id bigint  REFERENCES model_versions (id) ON DELETE SET NULL,
    version          bigint  NOT NULL,
    reason           text    NOT NULL CHECK (reason IN ('create', 'update', 'rollback', 'alias-moved')),
    created_by       bigint  REFERENCES users (id),
    actor_name       text    NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, revision)
);
-- Lineage: which deployments serve (or served) a model version.
CREATE INDEX deployment_revisions_by_version ON deployment_revisions (model_version_id);
