-- Submit idempotency: a retried submit (same Idempotency-Key, or the same client-proposed id) is
-- compared with the first one through the SHA-256 of its canonical JSON body.
-- The original request fields `command` and `disk_size_gb` are kept for the processor (the size a
-- new persistent disk is created with; the command to run in the dev box).

ALTER TABLE reservations
    ADD COLUMN request_hash TEXT CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    ADD COLUMN command      TEXT CHECK (length(command) <= 16384),
    ADD COLUMN disk_size_gb INTEGER CHECK (disk_size_gb BETWEEN 10 AND 10000);
