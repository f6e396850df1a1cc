-- 0010_dedup_per_uploader: what an upload tells its uploader about content the tenant already holds.
--
-- Content is stored once per tenant (0004), and its verdict is per content. Until now an upload of
-- content a colleague had stored answered isDeduplicated = true and the verdict already in force at
-- once: anyone of the tenant could learn that someone else holds a given file, and whether it was
-- judged. Now:
-- * isDeduplicated is true only when the same uploader has an earlier attachment with that content
--   (crates/store: attachments SELECT and the upload's scan-job step);
-- * every upload awaits a scan job of its own content, recorded in email_attachments.scan_job_id,
--   unless the uploader already had the content and no scan of it is open: the content's open job
--   when there is one (at most one per content, 0004), else a new job. While that job is open the
--   attachment reports 'pending' (the Attachment's virusScanStatus, scan-status) and is served as
--   pending; once it is done (or failed) it reports the content's verdict. Infected or suspicious
--   content is never served, whatever an attachment reports.
-- * The scan worker answers a new uploader's job like any other (it scans the content again and the
--   callback applies the newer verdict); a job for content whose object its quarantine deleted is
--   answered by scan_claim_jobs at once (below).
-- Existing attachments keep scan_job_id NULL: they report the content's verdict, as before.

ALTER TABLE scan_jobs
    ADD CONSTRAINT scan_jobs_tenant_id_id_key UNIQUE (tenant_id, id);

ALTER TABLE email_attachments
    ADD COLUMN scan_job_id uuid,
    ADD CONSTRAINT email_attachments_scan_job_fk
        FOREIGN KEY (tenant_id, scan_job_id) REFERENCES scan_jobs (tenant_id, id);

-- The per-uploader dedup question (has this uploader an attachment with this content?).
CREATE INDEX email_attachments_blob_uploader_idx ON email_attachments (blob_id, uploader_user_id);

-- scan_claim_jobs as in 0007, plus the answer for content deleted by its quarantine. Same signature;
-- CREATE OR REPLACE keeps the owner and the grants.
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

    -- Content whose object its quarantine deleted (0008) cannot be scanned again, and its verdict
    -- (infected or suspicious) stands: a job for it, such as a later uploader's, is answered here.
    WITH gone AS (
        SELECT j.id FROM public.scan_jobs j
        JOIN public.attachment_blobs b ON b.tenant_id = j.tenant_id AND b.id = j.blob_id
        WHERE j.status = 'pending' AND b.quarantine_action = 'deleted'
        LIMIT 100
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE public.scan_jobs j
       SET status = 'done', finished_at = v_now,
           last_error = 'the content was deleted by its quarantine; its verdict stands'
      FROM gone WHERE j.id = gone.id;

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
