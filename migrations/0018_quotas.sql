-- 0018_quotas: what each tenant and user stores and downloads, and the per-tenant overrides of the limits.
--
-- Limits have defaults in the app's settings (quota_* variables, 0 = unlimited); a tenant's row in
-- tenant_quotas overrides any of them (NULL: the default; 0: unlimited). The operator writes it; the app
-- only reads it.
--
-- Usage is counted, not summed on demand: tenant_usage and user_usage hold the live (not soft-deleted)
-- attachments' bytes and count, kept by a trigger on email_attachments, so every path that creates,
-- soft-deletes or purges an attachment accounts for it in its own transaction, and the app's role cannot
-- write the counters. Bytes are logical: an attachment counts its whole size even when the tenant held the
-- content already (dedup saves storage, not quota), so what a tenant is charged never depends on what
-- someone else of the tenant uploaded.
--
-- Race-freedom: the trigger's UPDATE of the tenant's row, then the user's (always in that order), locks
-- them until the transaction ends; a concurrent commit waits and then sees the new totals. The commit
-- compares the totals with the limits after its insert, in the same transaction, and rolls back when they
-- are over, so concurrent uploads can never together end above a limit.

CREATE TABLE tenant_quotas (
    tenant_id                    uuid PRIMARY KEY REFERENCES tenants (id),
    tenant_bytes                 bigint CHECK (tenant_bytes >= 0),
    tenant_attachments           bigint CHECK (tenant_attachments >= 0),
    user_bytes                   bigint CHECK (user_bytes >= 0),
    user_attachments             bigint CHECK (user_attachments >= 0),
    user_download_bytes_per_day  bigint CHECK (user_download_bytes_per_day >= 0),
    updated_at                   bigint NOT NULL DEFAULT app_now_ms()
);

CREATE TABLE tenant_usage (
    tenant_id     uuid PRIMARY KEY REFERENCES tenants (id),
    stored_bytes  bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
    attachments   bigint NOT NULL DEFAULT 0 CHECK (attachments >= 0)
);

CREATE TABLE user_usage (
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    stored_bytes  bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
    attachments   bigint NOT NULL DEFAULT 0 CHECK (attachments >= 0),
    PRIMARY KEY (tenant_id, user_id),
    CONSTRAINT user_usage_user_fk FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

-- Bytes of content served to a user per UTC day (streamed: the answer's body; redirected: the object's
-- size). Charged by a conditional upsert before the answer, so concurrent downloads cannot pass the limit.
CREATE TABLE user_download_usage (
    tenant_id  uuid NOT NULL,
    user_id    uuid NOT NULL,
    day        date NOT NULL,
    bytes      bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (tenant_id, user_id, day),
    CONSTRAINT user_download_usage_user_fk FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE FUNCTION quota_account_attachment() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_tenant uuid;
    v_user   uuid;
    v_bytes  bigint := 0;
    v_count  bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT NEW.is_deleted THEN
            v_tenant := NEW.tenant_id; v_user := NEW.uploader_user_id;
            v_bytes := NEW.size_bytes; v_count := 1;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.is_deleted IS DISTINCT FROM NEW.is_deleted THEN
            v_tenant := NEW.tenant_id; v_user := NEW.uploader_user_id;
            v_bytes := CASE WHEN NEW.is_deleted THEN -OLD.size_bytes ELSE NEW.size_bytes END;
            v_count := CASE WHEN NEW.is_deleted THEN -1 ELSE 1 END;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF NOT OLD.is_deleted THEN
            v_tenant := OLD.tenant_id; v_user := OLD.uploader_user_id;
            v_bytes := -OLD.size_bytes; v_count := -1;
        END IF;
    END IF;
    IF v_count <> 0 THEN
        -- Tenant first, then user: every writer locks in this order.
        INSERT INTO public.tenant_usage AS u (tenant_id, stored_bytes, attachments)
        VALUES (v_tenant, greatest(v_bytes, 0), greatest(v_count, 0))
        ON CONFLICT (tenant_id) DO UPDATE
           SET stored_bytes = greatest(u.stored_bytes + v_bytes, 0),
               attachments = greatest(u.attachments + v_count, 0);
        INSERT INTO public.user_usage AS u (tenant_id, user_id, stored_bytes, attachments)
        VALUES (v_tenant, v_user, greatest(v_bytes, 0), greatest(v_count, 0))
        ON CONFLICT (tenant_id, user_id) DO UPDATE
           SET stored_bytes = greatest(u.stored_bytes + v_bytes, 0),
               attachments = greatest(u.attachments + v_count, 0);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER email_attachments_quota AFTER INSERT OR UPDATE OF is_deleted OR DELETE ON email_attachments
    FOR EACH ROW EXECUTE FUNCTION quota_account_attachment();

-- What exists already.
INSERT INTO tenant_usage (tenant_id, stored_bytes, attachments)
SELECT tenant_id, sum(size_bytes), count(*) FROM email_attachments WHERE NOT is_deleted GROUP BY tenant_id;
INSERT INTO user_usage (tenant_id, user_id, stored_bytes, attachments)
SELECT tenant_id, uploader_user_id, sum(size_bytes), count(*) FROM email_attachments WHERE NOT is_deleted
GROUP BY tenant_id, uploader_user_id;

-- Row-level security --------------------------------------------------------------------------------------

ALTER TABLE tenant_quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_quotas
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE user_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_usage
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE user_download_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_download_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_download_usage
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- The app reads limits and counters; only the trigger (as the owner) writes the stored counters, and only
-- the download charge writes its day's bytes.
GRANT SELECT ON tenant_quotas, tenant_usage, user_usage TO attachments_app;
GRANT SELECT, INSERT ON user_download_usage TO attachments_app;
GRANT UPDATE (bytes) ON user_download_usage TO attachments_app;
