-- 0002_identity: tenants, users, refresh tokens, and the SECURITY DEFINER lookups login and refresh need.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Unique so that fixtures (the `demo` tenant) can be created idempotently with ON CONFLICT.
    name        text NOT NULL CONSTRAINT tenants_name_key UNIQUE
                CHECK (length(name) BETWEEN 1 AND 200),
    active      boolean NOT NULL DEFAULT true,
    created_at  bigint NOT NULL DEFAULT app_now_ms()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    -- Globally unique, case-insensitively (index below): login resolves the tenant from the email.
    email          text NOT NULL
                   CHECK (length(email) BETWEEN 3 AND 320 AND email = btrim(email) AND position('@' IN email) > 1),
    display_name   text,
    -- PHC string; only argon2id is accepted so a weaker hash cannot sneak in through a fixture or tool.
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    active         boolean NOT NULL DEFAULT true,
    created_at     bigint NOT NULL DEFAULT app_now_ms(),
    updated_at     bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT users_tenant_id_id_key UNIQUE (tenant_id, id)
);
-- lower() instead of citext: no extension to install, and the same expression serves auth_lookup_user.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

-- Opaque refresh tokens, stored only as the lowercase hex SHA-256 of the token (they are long random
-- strings, so an unsalted fast hash is enough; a leaked table cannot be replayed).
-- Rotation: each refresh revokes the presented token (revoked_reason 'rotated', replaced_by = successor) and
-- issues a successor in the same family. Presenting a token that was already rotated is reuse: the whole
-- family is revoked (see auth_rotate_refresh_token).
CREATE TABLE refresh_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    user_id         uuid NOT NULL,
    family_id       uuid NOT NULL,
    token_hash      text NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE
                    CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at      bigint NOT NULL DEFAULT app_now_ms(),
    expires_at      bigint NOT NULL,
    last_used_at    bigint,
    revoked_at      bigint,
    revoked_reason  text CHECK (revoked_reason IN ('rotated', 'logout', 'reuse_detected', 'user_inactive', 'admin')),
    replaced_by     uuid,
    CONSTRAINT refresh_tokens_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT refresh_tokens_user_fk FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT refresh_tokens_replaced_by_fk FOREIGN KEY (tenant_id, replaced_by) REFERENCES refresh_tokens (tenant_id, id),
    CONSTRAINT refresh_tokens_revoked_consistent CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL)),
    CONSTRAINT refresh_tokens_replaced_means_revoked CHECK (replaced_by IS NULL OR revoked_at IS NOT NULL)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_live_idx ON refresh_tokens (tenant_id, user_id) WHERE revoked_at IS NULL;

-- Row-level security --------------------------------------------------------------------------------------

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT app_current_tenant_id()))
    WITH CHECK (id = (SELECT app_current_tenant_id()));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- Grants: tenants and users are read-only for the app (provisioning is an operator/tool job), and the app
-- cannot read password hashes at all: column grants leave password_hash out, auth_lookup_user hands it over
-- for exactly one email at a time.
GRANT SELECT ON tenants TO attachments_app;
GRANT SELECT (id, tenant_id, email, display_name, role, active, created_at, updated_at) ON users TO attachments_app;
GRANT SELECT, INSERT ON refresh_tokens TO attachments_app;
GRANT UPDATE (revoked_at, revoked_reason, replaced_by, last_used_at) ON refresh_tokens TO attachments_app;

-- Login and refresh happen BEFORE the component knows the tenant (the request carries only an email or an
-- opaque token), and under RLS the app sees nothing without a tenant. Rather than giving the app a way
-- around RLS, these functions run as the owner (SECURITY DEFINER) and return only what the flow needs, for
-- exactly one key. search_path is pinned so a caller cannot redirect the unqualified names they use.

-- Login: the user for an email (case-insensitive), with the hash to verify. `active` is false when the user
-- or its tenant is disabled; callers should still verify against a dummy hash when no row comes back, so an
-- unknown email costs the same time as a wrong password.
CREATE FUNCTION auth_lookup_user(p_email text)
    RETURNS TABLE (user_id uuid, tenant_id uuid, email text, password_hash text, role text, active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
        SELECT u.id, u.tenant_id, u.email, u.password_hash, u.role, (u.active AND t.active)
        FROM public.users u
        JOIN public.tenants t ON t.id = u.tenant_id
        WHERE lower(u.email) = lower(btrim(p_email))
    $$;

-- Refresh (read-only view of one token, e.g. for diagnostics or a custom flow).
CREATE FUNCTION auth_lookup_refresh_token(p_token_hash text)
    RETURNS TABLE (token_id uuid, tenant_id uuid, user_id uuid, family_id uuid, expires_at bigint,
                   revoked_at bigint, revoked_reason text, replaced_by uuid,
                   user_email text, user_role text, user_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
        SELECT rt.id, rt.tenant_id, rt.user_id, rt.family_id, rt.expires_at,
               rt.revoked_at, rt.revoked_reason, rt.replaced_by,
               u.email, u.role, (u.active AND t.active)
        FROM public.refresh_tokens rt
        JOIN public.users u ON u.tenant_id = rt.tenant_id AND u.id = rt.user_id
        JOIN public.tenants t ON t.id = rt.tenant_id
        WHERE rt.token_hash = p_token_hash
    $$;

-- Refresh, atomically: locks the presented token so two concurrent refreshes cannot both succeed, then
--   'rotated'         -> successor inserted (same family, hash p_new_hash, expiry p_new_expires_at),
--                        presented token revoked with replaced_by = successor; new_token_id set.
--   'reuse_detected'  -> the presented token had already been rotated: every live token of the family is
--                        revoked. The caller answers 401 but MUST COMMIT (not roll back) so the revocation sticks.
--   'revoked' | 'expired' | 'user_inactive' | 'unknown' -> nothing issued (user_inactive revokes the token).
CREATE FUNCTION auth_rotate_refresh_token(p_old_hash text, p_new_hash text, p_new_expires_at bigint)
    RETURNS TABLE (outcome text, tenant_id uuid, user_id uuid, family_id uuid, new_token_id uuid,
                   user_email text, user_role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now  bigint := public.app_now_ms();
    v_tok  public.refresh_tokens%ROWTYPE;
    v_user record;
    v_new  uuid;
BEGIN
    SELECT * INTO v_tok FROM public.refresh_tokens rt WHERE rt.token_hash = p_old_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::text;
        RETURN;
    END IF;

    SELECT u.email, u.role, (u.active AND t.active) AS ok INTO v_user
    FROM public.users u JOIN public.tenants t ON t.id = u.tenant_id
    WHERE u.tenant_id = v_tok.tenant_id AND u.id = v_tok.user_id;

    IF v_tok.revoked_at IS NOT NULL THEN
        IF v_tok.revoked_reason = 'rotated' THEN
            UPDATE public.refresh_tokens rt
               SET revoked_at = v_now, revoked_reason = 'reuse_detected'
             WHERE rt.family_id = v_tok.family_id AND rt.revoked_at IS NULL;
            RETURN QUERY SELECT 'reuse_detected'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                                NULL::uuid, v_user.email, v_user.role;
        ELSE
            RETURN QUERY SELECT 'revoked'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                                NULL::uuid, v_user.email, v_user.role;
        END IF;
        RETURN;
    END IF;

    IF v_tok.expires_at <= v_now THEN
        RETURN QUERY SELECT 'expired'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                            NULL::uuid, v_user.email, v_user.role;
        RETURN;
    END IF;

    IF NOT v_user.ok THEN
        UPDATE public.refresh_tokens rt SET revoked_at = v_now, revoked_reason = 'user_inactive'
         WHERE rt.id = v_tok.id;
        RETURN QUERY SELECT 'user_inactive'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                            NULL::uuid, v_user.email, v_user.role;
        RETURN;
    END IF;

    INSERT INTO public.refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
    VALUES (v_tok.tenant_id, v_tok.user_id, v_tok.family_id, p_new_hash, p_new_expires_at)
    RETURNING id INTO v_new;

    UPDATE public.refresh_tokens rt
       SET revoked_at = v_now, revoked_reason = 'rotated', replaced_by = v_new, last_used_at = v_now
     WHERE rt.id = v_tok.id;

    RETURN QUERY SELECT 'rotated'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id, v_new,
                        v_user.email, v_user.role;
END;
$$;

GRANT EXECUTE ON FUNCTION auth_lookup_user(text) TO attachments_app;
GRANT EXECUTE ON FUNCTION auth_lookup_refresh_token(text) TO attachments_app;
GRANT EXECUTE ON FUNCTION auth_rotate_refresh_token(text, text, bigint) TO attachments_app;
