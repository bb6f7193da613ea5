-- gpudev initial schema.
-- PostgreSQL is the single source of truth; PGMQ messages in the same database are hints to the processor.
-- Every timestamp is timestamptz. Status changes are guarded in code and recorded in reservation_events.

CREATE EXTENSION IF NOT EXISTS pgmq;

CREATE FUNCTION gpudev_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Users -------------------------------------------------------------------------------------------

CREATE TABLE users (
    user_id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{1,255}$'),
    email            TEXT,
    aws_arn          TEXT,
    oidc_issuer      TEXT,
    oidc_subject     TEXT,
    role             TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_active        BOOLEAN NOT NULL DEFAULT true,
    github_username  TEXT CHECK (github_username ~ '^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}$'),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at    TIMESTAMPTZ,
    disabled_at      TIMESTAMPTZ,
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL))
);
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject) WHERE oidc_issuer IS NOT NULL;
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION gpudev_touch_updated_at();

CREATE TABLE user_ssh_keys (
    ssh_key_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    public_key   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    comment      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, fingerprint)
);

-- API keys: only the SHA-256 hash of a key is stored; the prefix is for display. -----------------

CREATE TABLE api_keys (
    key_id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_hash               TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix             TEXT NOT NULL CHECK (length(key_prefix) BETWEEN 1 AND 16),
    description            TEXT,
    auth_method            TEXT NOT NULL DEFAULT 'admin',
    auth_issuer            TEXT,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at             TIMESTAMPTZ NOT NULL,
    last_used_at           TIMESTAMPTZ,
    revoked_at             TIMESTAMPTZ,
    rate_limit_per_minute  INTEGER CHECK (rate_limit_per_minute > 0),
    CHECK (expires_at > created_at)
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_expires ON api_keys (expires_at) WHERE revoked_at IS NULL;

-- Reservations ------------------------------------------------------------------------------------

CREATE TABLE reservations (
    reservation_id      UUID PRIMARY KEY,
    user_id             BIGINT NOT NULL REFERENCES users (user_id),
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'preparing', 'active', 'expired', 'cancelled', 'failed')),
    detailed_status     TEXT,
    failure_reason      TEXT,
    -- What was asked for.
    name                TEXT,
    gpu_type            TEXT NOT NULL,
    gpu_count           INTEGER NOT NULL CHECK (gpu_count >= 0),
    node_count          INTEGER NOT NULL DEFAULT 1 CHECK (node_count >= 1),
    duration_hours      DOUBLE PRECISION NOT NULL CHECK (duration_hours > 0),
    extended_hours      DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (extended_hours >= 0),
    image               TEXT NOT NULL,
    env_names           TEXT[] NOT NULL DEFAULT '{}',
    disk_name           TEXT,
    jupyter_enabled     BOOLEAN NOT NULL DEFAULT false,
    github_user         TEXT,
    secondary_users     TEXT[] NOT NULL DEFAULT '{}',
    priority            INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    idempotency_key     TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    cli_version         TEXT,
    -- Scheduling.
    queue_position      INTEGER,
    estimated_start_at  TIMESTAMPTZ,
    -- Placement and connection.
    instance_type       TEXT,
    namespace           TEXT,
    pod_name            TEXT,
    node_names          TEXT[] NOT NULL DEFAULT '{}',
    node_ip             TEXT,
    node_port           INTEGER CHECK (node_port BETWEEN 1 AND 65535),
    ssh_command         TEXT,
    jupyter_url         TEXT,
    jupyter_token       TEXT,
    -- Expiry.
    warnings_sent       TEXT[] NOT NULL DEFAULT '{}',
    -- Times.
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    admitted_at         TIMESTAMPTZ,
    launched_at         TIMESTAMPTZ,
    expires_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ
);
CREATE UNIQUE INDEX reservations_idempotency ON reservations (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX reservations_user_created ON reservations (user_id, created_at DESC);
CREATE INDEX reservations_live ON reservations (status, gpu_type)
    WHERE status IN ('queued', 'preparing', 'active');
CREATE INDEX reservations_expires ON reservations (expires_at) WHERE status = 'active';
CREATE TRIGGER reservations_touch BEFORE UPDATE ON reservations FOR EACH ROW EXECUTE FUNCTION gpudev_touch_updated_at();

-- Environment values are secrets: kept apart from the reservation row, never returned by the API,
-- handed to the pod through a Kubernetes Secret, and deleted when the reservation ends.
CREATE TABLE reservation_secrets (
    reservation_id  UUID PRIMARY KEY REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    env             JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(env) = 'object')
);

-- History: every status transition, warning, extension and note, with its reason.
CREATE TABLE reservation_events (
    event_id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id  UUID NOT NULL REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('transition', 'warning', 'extend', 'note')),
    from_status     TEXT,
    to_status       TEXT,
    reason          TEXT,
    actor           TEXT NOT NULL,
    details         JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A transition with no from_status is the creation of the reservation.
    CHECK (kind <> 'transition' OR to_status IS NOT NULL)
);
CREATE INDEX reservation_events_reservation ON reservation_events (reservation_id, event_id);

-- Persistent disks and their snapshots ------------------------------------------------------------

CREATE TABLE disks (
    disk_id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    disk_name         TEXT NOT NULL CHECK (disk_name ~ '^[A-Za-z0-9_-]{1,63}$'),
    kube_name         TEXT NOT NULL UNIQUE,
    size_gb           INTEGER NOT NULL CHECK (size_gb BETWEEN 1 AND 65536),
    storage_class     TEXT,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'ready', 'in_use', 'deleting', 'deleted', 'failed')),
    reservation_id    UUID REFERENCES reservations (reservation_id) ON DELETE SET NULL,
    operation_id      UUID,
    operation_status  TEXT,
    operation_error   TEXT,
    used_bytes        BIGINT,
    is_deleted        BOOLEAN NOT NULL DEFAULT false,
    delete_after      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at      TIMESTAMPTZ,
    CHECK (NOT is_deleted OR delete_after IS NOT NULL)
);
CREATE UNIQUE INDEX disks_user_name ON disks (user_id, disk_name) WHERE NOT is_deleted;
CREATE INDEX disks_delete_after ON disks (delete_after) WHERE is_deleted;
CREATE TRIGGER disks_touch BEFORE UPDATE ON disks FOR EACH ROW EXECUTE FUNCTION gpudev_touch_updated_at();

CREATE TABLE disk_snapshots (
    snapshot_id     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    disk_id         UUID NOT NULL REFERENCES disks (disk_id) ON DELETE CASCADE,
    kube_name       TEXT NOT NULL UNIQUE,
    reservation_id  UUID REFERENCES reservations (reservation_id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed', 'deleted')),
    size_bytes      BIGINT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    ready_at        TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ
);
CREATE INDEX disk_snapshots_disk ON disk_snapshots (disk_id, created_at DESC);

-- GPU types: the catalog plus the availability the CronJob writes --------------------------------

CREATE TABLE gpu_types (
    gpu_type                     TEXT PRIMARY KEY CHECK (gpu_type ~ '^[a-z0-9-]{1,32}$'),
    instance_type                TEXT NOT NULL,
    gpus_per_node                INTEGER NOT NULL CHECK (gpus_per_node >= 0),
    cpus_per_node                INTEGER NOT NULL CHECK (cpus_per_node > 0),
    memory_gib_per_node          INTEGER NOT NULL CHECK (memory_gib_per_node > 0),
    multinode                    BOOLEAN NOT NULL DEFAULT false,
    description                  TEXT,
    is_active                    BOOLEAN NOT NULL DEFAULT true,
    total_gpus                   INTEGER NOT NULL DEFAULT 0,
    available_gpus               INTEGER NOT NULL DEFAULT 0,
    in_use_gpus                  INTEGER NOT NULL DEFAULT 0,
    queued_gpus                  INTEGER NOT NULL DEFAULT 0,
    full_nodes_available         INTEGER NOT NULL DEFAULT 0,
    max_reservable               INTEGER NOT NULL DEFAULT 0,
    running_nodes                INTEGER NOT NULL DEFAULT 0,
    last_availability_update     TIMESTAMPTZ,
    last_availability_updated_by TEXT,
    created_at                   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER gpu_types_touch BEFORE UPDATE ON gpu_types FOR EACH ROW EXECUTE FUNCTION gpudev_touch_updated_at();

INSERT INTO gpu_types (gpu_type, instance_type, gpus_per_node, cpus_per_node, memory_gib_per_node, multinode, description) VALUES
    ('t4',      'g4dn.12xlarge',    4,  48,  192, false, 'NVIDIA T4'),
    ('l4',      'g6.12xlarge',      4,  48,  192, false, 'NVIDIA L4'),
    ('a10g',    'g5.12xlarge',      4,  48,  192, false, 'NVIDIA A10G'),
    ('a100',    'p4d.24xlarge',     8,  96, 1152, true,  'NVIDIA A100 40GB'),
    ('h100',    'p5.48xlarge',      8, 192, 2048, true,  'NVIDIA H100 80GB'),
    ('h200',    'p5e.48xlarge',     8, 192, 2048, true,  'NVIDIA H200 141GB'),
    ('b200',    'p6-b200.48xlarge', 8, 192, 2048, true,  'NVIDIA B200'),
    ('cpu-x86', 'c7i.8xlarge',      0,  32,   64, false, 'CPU only, x86_64'),
    ('cpu-arm', 'c7g.8xlarge',      0,  32,   64, false, 'CPU only, arm64');

-- Audit log: who did what, how they authenticated, and the outcome --------------------------------

CREATE TABLE audit_log (
    audit_id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_user_id   BIGINT REFERENCES users (user_id) ON DELETE SET NULL,
    actor           TEXT NOT NULL,
    auth_method     TEXT,
    auth_issuer     TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT,
    target_id       TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    request_id      TEXT,
    client_addr     TEXT,
    details         JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_time ON audit_log (occurred_at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_user_id, occurred_at DESC);

-- CronJob runs ------------------------------------------------------------------------------------

CREATE TABLE cronjob_runs (
    run_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    outcome      TEXT NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'success', 'failure')),
    summary      JSONB NOT NULL DEFAULT '{}'::jsonb,
    error        TEXT,
    host         TEXT,
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);
CREATE INDEX cronjob_runs_job ON cronjob_runs (job, started_at DESC);

-- The reservation queue ---------------------------------------------------------------------------

SELECT pgmq.create('gpu_reservations');
SELECT pgmq.create('gpu_reservations_dlq');
