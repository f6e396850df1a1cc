-- 0011_scanner_role: the scan worker's own database role.
--
-- The native scan worker (crates/scan-worker) used to connect as attachments_app, the role of the
-- components: with it, a leaked worker credential read every tenant's rows that RLS lets a tenant
-- transaction see, and the worker's host held more than it needs. It now connects as
-- attachments_scanner (SCAN_DATABASE_URL), which the migration runner creates like the app role
-- (crates/db-tools bootstrap: LOGIN, NOSUPERUSER, NOBYPASSRLS, never a member of the owner, its
-- password from `migrate --scanner-password` / $ATTACHMENTS_SCANNER_PASSWORD, a transaction left
-- idle ends after 5 s) and which may do exactly what the worker does:
--   scan_claim_jobs   claim jobs across tenants (SECURITY DEFINER, 0004/0007/0010);
--   scan_complete_job hand a claimed job back (SECURITY DEFINER, 0004).
-- Both run as the owner and return only what a scan needs (content hash, storage key, size); the
-- role has no privilege on any table or view and no other function (functions are not executable by
-- PUBLIC here, 0001), so it cannot SELECT attachments, users or anything else.
--
-- The app role's sessions also end a transaction left idle for 5 s
-- (idle_in_transaction_session_timeout, set where the role is created: ALTER ROLE needs a
-- superuser, which migrations do not run as): a component instance stopped mid-transaction cannot
-- leave it open for the next request on that pooled connection to continue.

GRANT USAGE ON SCHEMA public TO attachments_scanner;
GRANT EXECUTE ON FUNCTION scan_claim_jobs(text, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION scan_complete_job(uuid, text, text) TO attachments_scanner;

-- Downloads through a signed content URL are audited once per URL and minute, not once per request:
-- a URL fetched in a loop (it is public: whoever holds it may fetch it, up to the per-URL rate limit
-- `file_rate_limit`) cannot flood the append-only audit log. audit_download adds one download of
-- attachment p_attachment through the URL whose opaque id is p_url (signed_url::url_id, never the
-- URL itself) to the row of that URL for the current minute (window start = the transaction's time
-- rounded down to the minute), or writes that row: action 'attachment.download', the first
-- request's id and client address, details {url, windowStart, count, bytes, mode}. It returns the
-- row's count. The row's count and bytes are the only thing that ever changes in the audit log, and
-- only here, while its minute lasts: the append-only trigger (0005) lets the owner, as whom this
-- SECURITY DEFINER function runs, do it; the app still cannot UPDATE a row. Concurrent downloads of
-- one URL take turns on an advisory lock of (tenant, URL, minute), so they add up into one row.
CREATE FUNCTION audit_download(p_attachment uuid, p_url text, p_request_id text, p_client_addr text,
                               p_bytes bigint, p_mode text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_tenant uuid := public.app_current_tenant_id();
    v_now    bigint := public.app_now_ms();
    v_window bigint := v_now - v_now % 60000;
    v_count  bigint;
BEGIN
    -- SECURITY DEFINER bypasses RLS: the tenant is explicit, and without one nothing is written.
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'audit_download: no tenant set' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_attachment IS NULL OR p_url IS NULL OR p_url !~ '^[0-9a-f]{32}$'
       OR p_bytes IS NULL OR p_bytes < 0 OR p_mode IS NULL OR p_mode !~ '^[a-z]{1,16}$' THEN
        RAISE EXCEPTION 'audit_download: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(
        hashtextextended('audit_download:' || v_tenant::text || ':' || p_url || ':' || v_window::text, 0));
    UPDATE public.email_audit_log l
       SET details = l.details
                     || jsonb_build_object('count', (l.details->>'count')::bigint + 1,
                                           'bytes', (l.details->>'bytes')::bigint + p_bytes)
     WHERE l.tenant_id = v_tenant
       AND l.resource_type = 'attachment' AND l.resource_id = p_attachment::text
       AND l.action = 'attachment.download'
       AND l.created_at >= v_window
       AND l.details->>'url' = p_url
       AND l.details->>'windowStart' = v_window::text
    RETURNING (l.details->>'count')::bigint INTO v_count;
    IF FOUND THEN
        RETURN v_count;
    END IF;
    INSERT INTO public.email_audit_log
        (tenant_id, user_id, action, resource_type, resource_id, request_id, client_addr, details, created_at)
    VALUES (v_tenant, NULL, 'attachment.download', 'attachment', p_attachment::text, left(p_request_id, 200),
            p_client_addr::inet,
            jsonb_build_object('url', p_url, 'windowStart', v_window, 'count', 1, 'bytes', p_bytes,
                               'mode', p_mode),
            v_now);
    RETURN 1;
END;
$$;

GRANT EXECUTE ON FUNCTION audit_download(uuid, text, text, text, bigint, text) TO attachments_app;
