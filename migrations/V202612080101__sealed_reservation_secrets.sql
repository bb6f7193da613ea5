-- Environment values and start commands are kept encrypted (ADR 11): the API seals them with a
-- fresh data key per reservation, wrapped by a key-encryption key the database never sees;
-- `key_id` names that key so keys can be rotated. Only the processor opens them.
--
-- Rows written before this migration keep their plain `env` until their reservation ends (the
-- processor still reads them and logs that it did); no new row is plain. Each row is either
-- sealed or plain, never both.
ALTER TABLE reservation_secrets
    ALTER COLUMN env DROP NOT NULL,
    ALTER COLUMN env DROP DEFAULT,
    ADD COLUMN key_id   TEXT,
    ADD COLUMN data_key BYTEA,
    ADD COLUMN sealed   BYTEA,
    ADD CONSTRAINT reservation_secrets_sealed_or_plain CHECK (
        (env IS NULL AND key_id IS NOT NULL AND data_key IS NOT NULL AND sealed IS NOT NULL)
        OR (env IS NOT NULL AND key_id IS NULL AND data_key IS NULL AND sealed IS NULL));

-- New reservations keep their command only sealed, beside the environment; `reservations.command`
-- is read only for reservations submitted before this migration and is cleared with their
-- secrets when they end. Commands of reservations that ended already are forgotten now.
UPDATE reservations SET command = NULL WHERE command IS NOT NULL
    AND status NOT IN ('queued', 'preparing', 'active');
