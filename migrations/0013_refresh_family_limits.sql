-- Refresh families get an absolute lifetime, and rotation a grace window.
--
-- * Absolute lifetime: a family (one login) ends p_family_max_age_ms after the login, however often
--   it was rotated; each successor's expiry is capped at that end. `family_started_at` is copied
--   from token to successor.
-- * Grace window: two tabs of one browser refreshing with the same token at the same moment must not
--   log the user out. For p_grace_ms after a rotation, presenting the rotated token again is not
--   reuse if the caller presents the same successor hash: the successor is derived from the
--   presented token with a server key (auth-core's refresh::SuccessorKey), so the second tab gets
--   the very token the first one got, and the family stays one chain. Outside the window, or with
--   another successor, it is reuse as before (the family is revoked).

ALTER TABLE refresh_tokens ADD COLUMN family_started_at bigint;
UPDATE refresh_tokens rt
   SET family_started_at = f.started
  FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
 WHERE f.family_id = rt.family_id;
ALTER TABLE refresh_tokens
    ALTER COLUMN family_started_at SET DEFAULT app_now_ms(),
    ALTER COLUMN family_started_at SET NOT NULL;

-- Outcomes as auth_rotate_refresh_token (0002), plus new_expires_at: the successor's expiry
-- ('rotated' only). A grace-window repeat answers 'rotated' with the existing successor.
CREATE FUNCTION auth_rotate_refresh_token(p_old_hash text, p_new_hash text, p_new_expires_at bigint,
                                          p_family_max_age_ms bigint, p_grace_ms bigint)
    RETURNS TABLE (outcome text, tenant_id uuid, user_id uuid, family_id uuid, new_token_id uuid,
                   user_email text, user_role text, new_expires_at bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now  bigint := public.app_now_ms();
    v_tok  public.refresh_tokens%ROWTYPE;
    v_next public.refresh_tokens%ROWTYPE;
    v_user record;
    v_new  uuid;
    v_end  bigint;
BEGIN
    SELECT * INTO v_tok FROM public.refresh_tokens rt WHERE rt.token_hash = p_old_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
                            NULL::text, NULL::bigint;
        RETURN;
    END IF;

    SELECT u.email, u.role, (u.active AND t.active) AS ok INTO v_user
    FROM public.users u JOIN public.tenants t ON t.id = u.tenant_id
    WHERE u.tenant_id = v_tok.tenant_id AND u.id = v_tok.user_id;

    v_end := v_tok.family_started_at + GREATEST(p_family_max_age_ms, 0);

    IF v_tok.revoked_at IS NOT NULL THEN
        IF v_tok.revoked_reason = 'rotated' AND p_grace_ms > 0 AND v_now - v_tok.revoked_at <= p_grace_ms
           AND v_user.ok THEN
            SELECT * INTO v_next FROM public.refresh_tokens rt WHERE rt.id = v_tok.replaced_by FOR UPDATE;
            IF FOUND AND v_next.token_hash = p_new_hash AND v_next.revoked_at IS NULL
               AND v_next.expires_at > v_now THEN
                RETURN QUERY SELECT 'rotated'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                                    v_next.id, v_user.email, v_user.role, v_next.expires_at;
                RETURN;
            END IF;
        END IF;
        IF v_tok.revoked_reason = 'rotated' THEN
            UPDATE public.refresh_tokens rt
               SET revoked_at = v_now, revoked_reason = 'reuse_detected'
             WHERE rt.family_id = v_tok.family_id AND rt.revoked_at IS NULL;
            RETURN QUERY SELECT 'reuse_detected'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                                NULL::uuid, v_user.email, v_user.role, NULL::bigint;
        ELSE
            RETURN QUERY SELECT 'revoked'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                                NULL::uuid, v_user.email, v_user.role, NULL::bigint;
        END IF;
        RETURN;
    END IF;

    IF v_tok.expires_at <= v_now OR v_end <= v_now THEN
        RETURN QUERY SELECT 'expired'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                            NULL::uuid, v_user.email, v_user.role, NULL::bigint;
        RETURN;
    END IF;

    IF NOT v_user.ok THEN
        UPDATE public.refresh_tokens rt SET revoked_at = v_now, revoked_reason = 'user_inactive'
         WHERE rt.id = v_tok.id;
        RETURN QUERY SELECT 'user_inactive'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id,
                            NULL::uuid, v_user.email, v_user.role, NULL::bigint;
        RETURN;
    END IF;

    INSERT INTO public.refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at, family_started_at)
    VALUES (v_tok.tenant_id, v_tok.user_id, v_tok.family_id, p_new_hash, LEAST(p_new_expires_at, v_end),
            v_tok.family_started_at)
    RETURNING id INTO v_new;

    UPDATE public.refresh_tokens rt
       SET revoked_at = v_now, revoked_reason = 'rotated', replaced_by = v_new, last_used_at = v_now
     WHERE rt.id = v_tok.id;

    RETURN QUERY SELECT 'rotated'::text, v_tok.tenant_id, v_tok.user_id, v_tok.family_id, v_new,
                        v_user.email, v_user.role, LEAST(p_new_expires_at, v_end);
END;
$$;

-- The three-argument form stays for code deployed before this migration: no grace, no family cap
-- beyond the one the new form applies with a lifetime of a century.
CREATE OR REPLACE FUNCTION auth_rotate_refresh_token(p_old_hash text, p_new_hash text, p_new_expires_at bigint)
    RETURNS TABLE (outcome text, tenant_id uuid, user_id uuid, family_id uuid, new_token_id uuid,
                   user_email text, user_role text)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT r.outcome, r.tenant_id, r.user_id, r.family_id, r.new_token_id, r.user_email, r.user_role
      FROM public.auth_rotate_refresh_token(p_old_hash, p_new_hash, p_new_expires_at,
                                            100::bigint * 365 * 24 * 3600 * 1000, 0) r;
$$;

REVOKE ALL ON FUNCTION auth_rotate_refresh_token(text, text, bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_rotate_refresh_token(text, text, bigint, bigint, bigint) TO attachments_app;
