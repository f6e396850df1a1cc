-- 0022_scan_rescans: content judged clean is scanned again when the signatures move on, without ever
-- delaying the first scan of new content.
--
-- A rescan is a scan job with `rescan = true`, in the same queue (one open job per content, 0004), so a
-- rescan's verdict goes through the callback like any other: a flip to infected is quarantined and
-- audited as today. What differs:
-- * scan_claim_jobs takes pending first scans only (and, as before, any job whose lease expired);
--   rescans are claimed by scan_claim_rescans, which the worker calls only with the slots first scans
--   left free and never with more than its share for rescans (SCAN_RESCAN_SLOTS);
-- * a rescan does not move its tenant's fair-share clock (0012): 10,000 rescans of a tenant must not put
--   that tenant's next upload hours into the future. Its fair_at orders rescans only: minus the
--   content's creation time, so the newest content is rescanned first;
-- * an upload that joins content with an open rescan job (its scan_job_id) turns that job into a first
--   scan: the upload awaits it, so it must not wait behind the rescans.
-- scan_enqueue_rescans queues them, a bounded number at a time (the worker calls it on an interval with
-- the current signature version; the operator's `scan-worker rescan` with a cut-off time).

ALTER TABLE scan_jobs
    ADD COLUMN rescan boolean NOT NULL DEFAULT false;

DROP INDEX scan_jobs_fair_idx;
CREATE INDEX scan_jobs_fair_idx ON scan_jobs (fair_at) WHERE status = 'pending' AND NOT rescan;
CREATE INDEX scan_jobs_rescan_idx ON scan_jobs (fair_at) WHERE status = 'pending' AND rescan;
-- Newest content first, for scan_enqueue_rescans.
CREATE INDEX attachment_blobs_clean_created_idx ON attachment_blobs (created_at DESC)
    WHERE scan_status = 'clean' AND purging_at IS NULL;

-- 0012's trigger, leaving rescans out of the tenant's clock.
CREATE OR REPLACE FUNCTION scan_jobs_fair_at() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    c_step constant bigint := 1000;
    v_now  bigint := public.app_now_ms();
BEGIN
    IF NEW.rescan THEN
        -- scan_enqueue_rescans orders rescans by fair_at itself; nobody else queues them.
        RETURN NEW;
    END IF;
    INSERT INTO public.scan_fair_clocks AS c (tenant_id, clock)
    VALUES (NEW.tenant_id, v_now + c_step)
    ON CONFLICT (tenant_id) DO UPDATE SET clock = greatest(c.clock, v_now) + c_step
    RETURNING c.clock INTO NEW.fair_at;
    RETURN NEW;
END;
$$;

-- An upload awaiting an open rescan job makes it a first scan.
CREATE FUNCTION scan_jobs_promote_awaited() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NEW.scan_job_id IS NOT NULL THEN
        -- In line as a first scan arriving now (a rescan's fair_at only orders rescans).
        UPDATE public.scan_jobs j SET rescan = false, fair_at = public.app_now_ms()
         WHERE j.id = NEW.scan_job_id AND j.tenant_id = NEW.tenant_id AND j.rescan
           AND j.status IN ('pending', 'running');
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION scan_jobs_promote_awaited() FROM PUBLIC;
CREATE TRIGGER email_attachments_promote_awaited AFTER INSERT ON email_attachments
    FOR EACH ROW EXECUTE FUNCTION scan_jobs_promote_awaited();

-- 0012's claim, taking pending first scans only (rescans: scan_claim_rescans). Same signature: the
-- grants stay.
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
            WHERE j.status = 'pending' AND NOT j.rescan AND j.available_at <= v_now
            ORDER BY j.fair_at
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

-- Up to p_limit pending rescans, newest content first, for worker p_worker with a lease of
-- p_lease_seconds. Content that stopped being clean meanwhile (a finding, a purge) is answered here:
-- there is nothing to rescan.
CREATE FUNCTION scan_claim_rescans(p_worker text, p_lease_seconds integer, p_limit integer)
    RETURNS TABLE (job_id uuid, tenant_id uuid, blob_id uuid, content_sha256 text, storage_key text,
                   size_bytes bigint, attempts integer, lease_expires_at bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := public.app_now_ms();
    v_ids uuid[];
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'scan_claim_rescans: worker name required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'scan_claim_rescans: lease must be 1..86400 s and limit 1..1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH moot AS (
        SELECT j.id FROM public.scan_jobs j
        JOIN public.attachment_blobs b ON b.tenant_id = j.tenant_id AND b.id = j.blob_id
        WHERE j.status = 'pending' AND j.rescan
          AND (b.scan_status <> 'clean' OR b.purging_at IS NOT NULL)
        LIMIT 100
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE public.scan_jobs j
       SET status = 'done', finished_at = v_now, last_error = 'no longer clean content: nothing to rescan'
      FROM moot WHERE j.id = moot.id;

    SELECT array_agg(s.id) INTO v_ids FROM (
        SELECT j.id FROM public.scan_jobs j
        WHERE j.status = 'pending' AND j.rescan AND j.available_at <= v_now
        ORDER BY j.fair_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) s;

    RETURN QUERY
    UPDATE public.scan_jobs j
       SET status = 'running', attempts = j.attempts + 1, locked_by = p_worker,
           lease_expires_at = v_now + p_lease_seconds::bigint * 1000
      FROM public.attachment_blobs b
     WHERE j.id = ANY (coalesce(v_ids, '{}')) AND b.tenant_id = j.tenant_id AND b.id = j.blob_id
    RETURNING j.id, j.tenant_id, j.blob_id, b.content_sha256, b.storage_key, b.size_bytes, j.attempts,
              j.lease_expires_at;
END;
$$;

-- Queues rescans of clean content, newest first, until p_max_open rescans are open (pending or
-- running); how many it queued. Which content:
--   p_engine's verdict on it, if any, is older than the signatures: under a known signature version
--   below p_signature_version (when given; a verdict of an engine that named no version is not
--   known to be older), or received before p_judged_before (when given);
--   content that engine never judged only with p_unjudged_too;
--   created at or after p_created_since (when given), of tenant p_tenant (when given);
--   clean, not purging, its object not missing, and without an open job.
CREATE FUNCTION scan_enqueue_rescans(p_engine text, p_signature_version bigint, p_judged_before bigint,
                                     p_created_since bigint, p_unjudged_too boolean, p_tenant uuid,
                                     p_max_open integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_open integer;
    v_n    integer;
BEGIN
    IF p_engine IS NULL OR p_engine !~ '^[a-z0-9._-]{1,40}$' OR p_max_open NOT BETWEEN 1 AND 1000000
       OR p_unjudged_too IS NULL THEN
        RAISE EXCEPTION 'scan_enqueue_rescans: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One enqueuer at a time: replicas on the same interval do not both fill the queue.
    PERFORM pg_advisory_xact_lock(hashtextextended('scan_enqueue_rescans', 0));
    SELECT count(*) INTO v_open FROM public.scan_jobs j
     WHERE j.rescan AND j.status IN ('pending', 'running');
    IF v_open >= p_max_open THEN
        RETURN 0;
    END IF;
    INSERT INTO public.scan_jobs (tenant_id, blob_id, rescan, fair_at, max_attempts)
    SELECT b.tenant_id, b.id, true, -b.created_at, 3
      FROM public.attachment_blobs b
      LEFT JOIN public.scan_engine_verdicts e ON e.blob_id = b.id AND e.engine = p_engine
     WHERE b.scan_status = 'clean' AND b.purging_at IS NULL AND b.missing_since IS NULL
       AND (p_tenant IS NULL OR b.tenant_id = p_tenant)
       AND (p_created_since IS NULL OR b.created_at >= p_created_since)
       AND CASE WHEN e.blob_id IS NULL THEN p_unjudged_too
                ELSE (p_signature_version IS NULL OR e.signature_version < p_signature_version)
                 AND (p_judged_before IS NULL OR e.received_at < p_judged_before)
           END
       AND NOT EXISTS (SELECT 1 FROM public.scan_jobs o
                        WHERE o.blob_id = b.id AND o.status IN ('pending', 'running'))
     ORDER BY b.created_at DESC
     LIMIT p_max_open - v_open
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;

-- How many rescans are open (pending, running): the worker's gauge and the operator's progress.
CREATE FUNCTION scan_open_rescans() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT count(*) FROM public.scan_jobs j WHERE j.rescan AND j.status IN ('pending', 'running')
$$;

REVOKE ALL ON FUNCTION scan_claim_rescans(text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION scan_enqueue_rescans(text, bigint, bigint, bigint, boolean, uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION scan_open_rescans() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scan_claim_rescans(text, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION scan_enqueue_rescans(text, bigint, bigint, bigint, boolean, uuid, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION scan_open_rescans() TO attachments_scanner;
