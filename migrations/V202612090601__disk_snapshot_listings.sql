-- What a disk held when it was snapshotted: the expiry job lists the home directory in the dev box
-- (three levels deep, at most 5,000 entries) just before it deletes the box, and keeps the text
-- with the snapshot, so `GET /v1/disks/{name}/content` can show it without mounting the disk.
ALTER TABLE disk_snapshots
    ADD COLUMN content_listing TEXT,
    ADD COLUMN listed_at       TIMESTAMPTZ,
    ADD CONSTRAINT disk_snapshots_listing CHECK ((content_listing IS NULL) = (listed_at IS NULL));
