-- Versioned datasets. A version is an immutable manifest of files (path, size, sha256);
-- the files' bytes are content-addressed blobs in object storage, stored once however many
-- versions hold them.

CREATE TABLE datasets (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text   NOT NULL UNIQUE,
    description      text   NOT NULL DEFAULT '',
    creation_time    bigint NOT NULL,
    last_update_time bigint NOT NULL,
    created_by       bigint REFERENCES users (id)
);

-- The blobs known to be in storage (written after the upload completed and its hash checked).
CREATE TABLE dataset_blobs (
    sha256        text   PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint NOT NULL CHECK (size >= 0),
    creation_time bigint NOT NULL
);

CREATE TABLE dataset_versions (
    id            bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id    bigint  NOT NULL REFERENCES datasets (id),
    version       integer NOT NULL CHECK (version > 0),
    -- SHA-256 of the manifest ("path\tsize\tsha256\n" per file, sorted by path): equal
    -- content gives an equal digest, which is how a run's logged input finds its version.
    digest        text    NOT NULL,
    file_count    integer NOT NULL,
    total_bytes   bigint  NOT NULL,
    message       text    NOT NULL DEFAULT '',
    -- Per tabular file: columns, types and row count.
    schema        jsonb   NOT NULL DEFAULT '{}',
    creation_time bigint  NOT NULL,
    created_by    bigint  REFERENCES users (id),
    UNIQUE (dataset_id, version)
);
CREATE INDEX dataset_versions_by_digest ON dataset_versions (digest);

CREATE TABLE dataset_files (
    version_id bigint NOT NULL REFERENCES dataset_versions (id),
    path       text   NOT NULL,
    size       bigint NOT NULL,
    sha256     text   NOT NULL REFERENCES dataset_blobs (sha256),
    PRIMARY KEY (version_id, path)
);
CREATE INDEX dataset_files_by_blob ON dataset_files (sha256);

-- Which dataset versions a run used: linked by jobs, by the native API, or matched by
-- digest when the MLflow client logs an input.
CREATE TABLE run_dataset_versions (
    run_id     bigint NOT NULL REFERENCES runs (id),
    version_id bigint NOT NULL REFERENCES dataset_versions (id),
    context    text   NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, version_id)
);
CREATE INDEX run_dataset_versions_by_version ON run_dataset_versions (version_id);
