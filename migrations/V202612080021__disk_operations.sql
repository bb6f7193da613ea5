-- Every create and delete operation of a disk. The disk row keeps only its latest operation
-- (operation_id, operation_status, operation_error), so a client polling an earlier one found
-- nothing once a later one replaced it; each is now kept here until its disk is purged.
CREATE TABLE disk_operations (
    operation_id  UUID PRIMARY KEY,
    disk_id       UUID NOT NULL REFERENCES disks (disk_id) ON DELETE CASCADE,
    action        TEXT NOT NULL CHECK (action IN ('create', 'delete')),
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX disk_operations_disk ON disk_operations (disk_id);

-- The operations known so far: each disk's latest.
INSERT INTO disk_operations (operation_id, disk_id, action, status, error, created_at, updated_at)
SELECT operation_id, disk_id,
       CASE WHEN is_deleted THEN 'delete' ELSE 'create' END,
       coalesce(operation_status, 'pending'), operation_error, updated_at, updated_at
FROM disks
WHERE operation_id IS NOT NULL
ON CONFLICT (operation_id) DO NOTHING;
