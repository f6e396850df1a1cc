-- 0017_reconcile_and_metrics: what the reconcile job and the worker's metrics read and write.
--
-- Reconcile (`scan-worker reconcile`) walks the bucket with ListObjectsV2, page by page, in the
-- bucket's key order (bytes, i.e. COLLATE "C"), and asks, for the key range each page covers, which
-- keys the database knows: reconcile_known_keys. A listed object no row knows, older than the safety
-- window, is an orphan (deleted); a blob row in the range whose object was not listed is missing
-- (marked with missing_since, cleared if the object shows up again). The job connects as the scanner
-- role: these SECURITY DEFINER functions are all it may call here, and they return keys, ids and
-- timestamps only.

-- When reconcile first found this blob's object missing from the bucket (epoch ms); NULL: present,
-- or never checked.
ALTER TABLE attachment_blobs ADD COLUMN missing_since bigint;

-- Range scans in byte order (the listing's order), whatever the database's collation.
CREATE INDEX attachment_blobs_storage_key_c_idx ON attachment_blobs (storage_key COLLATE "C");
CREATE INDEX upload_sessions_storage_key_c_idx ON upload_sessions (storage_key COLLATE "C");
CREATE INDEX attachment_blobs_missing_idx ON attachment_blobs (missing_since) WHERE missing_since IS NOT NULL;

-- The keys the database knows in (p_after, p_upto] (byte order), at most p_limit, in key order:
--   kind 'blob'    a blob's object (expect_object false when the quarantine deleted it on purpose);
--   kind 'session' an upload session's object (direct or tus; may exist or not, never "missing").
CREATE FUNCTION reconcile_known_keys(p_after text, p_upto text, p_limit integer)
    RETURNS TABLE (storage_key text, kind text, blob_id uuid, tenant_id uuid, expect_object boolean,
                   missing_since bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_after IS NULL OR p_upto IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'reconcile_known_keys: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT k.storage_key, k.kind, k.blob_id, k.tenant_id, k.expect_object, k.missing_since FROM (
        (SELECT b.storage_key COLLATE "C" AS storage_key, 'blob'::text AS kind, b.id AS blob_id,
                b.tenant_id, b.quarantine_action IS DISTINCT FROM 'deleted' AS expect_object,
                b.missing_since
           FROM public.attachment_blobs b
          WHERE b.storage_key COLLATE "C" > p_after AND b.storage_key COLLATE "C" <= p_upto
          ORDER BY b.storage_key COLLATE "C"
          LIMIT p_limit)
        UNION ALL
        (SELECT s.storage_key COLLATE "C", 'session', NULL::uuid, s.tenant_id, false, NULL::bigint
           FROM public.upload_sessions s
          WHERE s.storage_key COLLATE "C" > p_after AND s.storage_key COLLATE "C" <= p_upto
          ORDER BY s.storage_key COLLATE "C"
          LIMIT p_limit)
    ) k
    ORDER BY k.storage_key COLLATE "C", k.kind
    LIMIT p_limit;
END;
$$;

-- Marks blob p_blob_id missing when its storage_key is still p_key (a row that moved on, e.g. to
-- quarantine, is not); keeps the first time it was found missing. Returns missing_since, NULL when
-- nothing was marked.
CREATE FUNCTION reconcile_mark_missing(p_blob_id uuid, p_key text)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE public.attachment_blobs b
       SET missing_since = coalesce(b.missing_since, public.app_now_ms())
     WHERE b.id = p_blob_id AND b.storage_key = p_key
    RETURNING b.missing_since
$$;

-- The object of blob p_blob_id is back (restored from a backup): the mark goes.
CREATE FUNCTION reconcile_clear_missing(p_blob_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE public.attachment_blobs b SET missing_since = NULL
     WHERE b.id = p_blob_id AND b.missing_since IS NOT NULL;
    RETURN FOUND;
END;
$$;

-- The session that owns multipart upload p_s3_upload_id of key p_key, if any: when it expires (epoch
-- ms) and its state. No row: a multipart upload no session knows (an in-function upload's, or a
-- forgotten session's).
CREATE FUNCTION reconcile_multipart_session(p_key text, p_s3_upload_id text)
    RETURNS TABLE (expires_at bigint, state text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT s.expires_at, s.state FROM public.upload_sessions s
     WHERE s.storage_key = p_key AND s.s3_upload_id = p_s3_upload_id
$$;

-- The worker's queue gauges, across tenants and without any tenant's identity: scan jobs pending
-- (due or in backoff) and running, the age of the oldest pending one (ms; NULL when none), and
-- direct uploads waiting for verification.
CREATE FUNCTION worker_queue_stats()
    RETURNS TABLE (scan_pending bigint, scan_running bigint, oldest_pending_age_ms bigint,
                   verify_pending bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT (SELECT count(*) FROM public.scan_jobs j WHERE j.status = 'pending'),
           (SELECT count(*) FROM public.scan_jobs j WHERE j.status = 'running'),
           (SELECT public.app_now_ms() - min(j.created_at) FROM public.scan_jobs j WHERE j.status = 'pending'),
           (SELECT count(*) FROM public.upload_sessions s WHERE s.state = 'verifying')
$$;

GRANT EXECUTE ON FUNCTION reconcile_known_keys(text, text, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION reconcile_mark_missing(uuid, text) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION reconcile_clear_missing(uuid) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION reconcile_multipart_session(text, text) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION worker_queue_stats() TO attachments_scanner;
