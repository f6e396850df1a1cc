-- 0005_audit_log: append-only audit trail per tenant.
-- The app may INSERT (every component) and SELECT under RLS (the admin route listing the tenant's audit log);
-- it can never UPDATE, DELETE or TRUNCATE. A trigger refuses those for everyone but the owner as well, so a
-- grant added by mistake later still cannot rewrite history; retention purges run as the owner.

CREATE TABLE email_audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    user_id        uuid,                       -- NULL for system actions (scanner verdicts, retention)
    action         text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]{0,63}$'),   -- e.g. attachment.upload
    resource_type  text CHECK (resource_type ~ '^[a-z][a-z0-9_]{0,63}$'),     -- e.g. attachment
    resource_id    text CHECK (length(resource_id) <= 200),
    request_id     text CHECK (length(request_id) <= 200),
    -- inet validates the address; components pass a string, so bind it as text: $n::text::inet
    client_addr    inet,
    details        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    created_at     bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT email_audit_log_user_fk FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
-- The admin listing: one tenant, newest first, keyset-paged by (created_at, id).
CREATE INDEX email_audit_log_tenant_time_idx ON email_audit_log (tenant_id, created_at DESC, id DESC);
CREATE INDEX email_audit_log_resource_idx ON email_audit_log (tenant_id, resource_type, resource_id);
CREATE INDEX email_audit_log_created_brin ON email_audit_log USING brin (created_at);

CREATE FUNCTION email_audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(current_user, 'attachments_owner', 'MEMBER') THEN
        RAISE EXCEPTION 'email_audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
CREATE TRIGGER email_audit_log_no_update BEFORE UPDATE OR DELETE ON email_audit_log
    FOR EACH ROW EXECUTE FUNCTION email_audit_log_append_only();
CREATE TRIGGER email_audit_log_no_truncate BEFORE TRUNCATE ON email_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION email_audit_log_append_only();

ALTER TABLE email_audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_audit_log
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

GRANT SELECT, INSERT ON email_audit_log TO attachments_app;
