-- 0007_scan_claim_expired_first: scan_claim_jobs hands out jobs whose lease expired BEFORE pending ones.
-- 0004 took pending jobs first, so under a steady backlog a crashed scanner's job waited until the whole
-- pending queue drained, its blob blocked for download all that time. Expired-lease work is the oldest work
-- there is, and there is little of it (only crashed scanners produce it). Same signature and grants;
-- CREATE OR REPLACE keeps the owner and the EXECUTE grant to attachments_app.

CREATE OR REPLACE FUNCTION scan_claim_jobs(p_worker text, p_lease_seconds integer DEFAULT 300, p_limit integer DEFAULT 1)
    RETURNS TABLE (job_id uuid, tenant_id uuid, blob_id uuid, content_sha256 text, storage_key text,
                   size_bytes bigint, attempts integer, lease_expires_at bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now  bigint := public.app_now_ms();
    v_ids  uuid[];
    v_more uuid[];
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'scan_claim_jobs: worker name required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'scan_claim_jobs: lease must be 1..86400 s and limit 1..1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Give up on jobs that exhausted their attempts and whose last lease expired.
    WITH dead AS (
        SELECT j.id, j.tenant_id, j.blob_id FROM public.scan_jobs j
        WHERE j.status = 'running' AND j.lease_expires_at <= v_now AND j.attempts >= j.max_attempts
        ORDER BY j.lease_expires_at
        LIMIT 100
        FOR UPDATE SKIP LOCKED
    ), failed AS (
        UPDATE public.scan_jobs j
           SET status = 'failed', lease_expires_at = NULL, locked_by = NULL, finished_at = v_now,
               last_error = coalesce(j.last_error, 'lease expired after the last attempt')
          FROM dead WHERE j.id = dead.id
        RETURNING j.tenant_id, j.blob_id
    )
    UPDATE public.attachment_blobs b
       SET scan_status = 'error', scan_details = 'scan attempts exhausted'
      FROM failed
     WHERE b.tenant_id = failed.tenant_id AND b.id = failed.blob_id AND b.scan_status = 'pending';

    -- Expired leases first (see the header).
    SELECT array_agg(s.id) INTO v_ids FROM (
        SELECT j.id FROM public.scan_jobs j
        WHERE j.status = 'running' AND j.lease_expires_at <= v_now AND j.attempts < j.max_attempts
        ORDER BY j.lease_expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) s;
    v_ids := coalesce(v_ids, '{}');

    IF cardinality(v_ids) < p_limit THEN
        SELECT array_agg(s.id) INTO v_more FROM (
            SELECT j.id FROM public.scan_jobs j
            WHERE j.status = 'pending' AND j.available_at <= v_now
            ORDER BY j.available_at
            LIMIT p_limit - cardinality(v_ids)
            FOR UPDATE SKIP LOCKED
        ) s;
        v_ids := v_ids || coalesce(v_more, '{}');
    END IF;

    RETURN QUERY
    UPDATE public.scan_jobs j
       SET status = 'running', attempts = j.attempts + 1, locked_by = p_worker,
           lease_expires_at = v_now + p_lease_seconds::bigint * 1000
      FROM public.attachment_blobs b
     WHERE j.id = ANY (v_ids) AND b.tenant_id = j.tenant_id AND b.id = j.blob_id
    RETURNING j.id, j.tenant_id, j.blob_id, b.content_sha256, b.storage_key, b.size_bytes, j.attempts,
              j.lease_expires_at;
END;
$$;
