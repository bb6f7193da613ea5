-- Tell every API replica when authentication facts change, so cached verified keys are dropped at
-- once: a key revoked or shortened, a user disabled, renamed or given another role.
-- The payload is the user id; listeners drop that user's cached keys.

CREATE FUNCTION gpudev_notify_auth_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('gpudev_auth_changed', OLD.user_id::text);
    ELSE
        PERFORM pg_notify('gpudev_auth_changed', NEW.user_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_auth_change
    AFTER UPDATE OF revoked_at, expires_at OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION gpudev_notify_auth_change();

CREATE TRIGGER users_auth_change
    AFTER UPDATE OF is_active, role, username OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION gpudev_notify_auth_change();
