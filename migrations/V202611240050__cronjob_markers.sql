-- Markers the expiry CronJob needs to do each thing once across runs.
--
-- reservations.pod_missing_since: when a run first saw an active reservation without its Pod
-- (cleared when the Pod is seen again), so "missing for 10 minutes" is measured across runs.
-- disks.purged_at: when the PVC and snapshots of a soft-deleted disk were removed for good
-- (status 'deleted' alone cannot say it: the processor sets it when the delete operation is
-- acknowledged, long before the delete date).
ALTER TABLE reservations ADD COLUMN pod_missing_since TIMESTAMPTZ;
ALTER TABLE disks ADD COLUMN purged_at TIMESTAMPTZ;
CREATE INDEX disks_purge_due ON disks (delete_after) WHERE is_deleted AND purged_at IS NULL;
