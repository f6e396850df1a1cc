-- 0012_scan_fair_share: the scan queue shares scanners fairly between tenants.
--
-- Until now pending jobs were claimed oldest first: a tenant that uploads 10,000 files at once puts every
-- other tenant's new content (blocked for download until scanned) behind all of them. Now each job gets a
-- virtual time, fair_at, from its tenant's clock in scan_fair_clocks: a tenant's next job gets
-- max(now, the tenant's clock) + 1 s, and the clock moves to it. A tenant's own jobs keep their order, a
-- burst spreads into the future one step per job, and a tenant that enqueues now lands among the burst's
-- first jobs rather than behind its last: tenants interleave. An idle tenant's clock falls behind real
-- time, so it gets no credit for having been idle (max with now).
--
-- fair_at orders pending jobs only; when a job may run is still available_at (retry backoff), and jobs
-- whose lease expired still come first (0007). A retried job keeps its fair_at. The trigger sets fair_at on
-- every insert (the app's column value is overwritten); the app may not update it (0004's column grants),
-- nor read or write the clocks (no grants; the trigger runs as the owner).

CREATE TABLE scan_fair_clocks (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id),
    -- The virtual time (epoch ms) given to the tenant's newest job.
    clock      bigint NOT NULL
);
ALTER TABLE scan_fair_clocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_fair_clocks FORCE ROW LEVEL SECURITY;
-- Nobody but the owner (BYPASSRLS, through the trigger) sees a row: fails closed even if a grant slipped in.
CREATE POLICY owner_only ON scan_fair_clocks USING (false) WITH CHECK (false);

-- Existing open jobs keep their order: their virtual time is when they became available.
ALTER TABLE scan_jobs ADD COLUMN fair_at bigint NOT NULL DEFAULT 0;
UPDATE scan_jobs SET fair_at = available_at WHERE status IN ('pending', 'running');
ALTER TABLE scan_jobs ALTER COLUMN fair_at DROP DEFAULT;
CREATE INDEX scan_jobs_fair_idx ON scan_jobs (fair_at) WHERE status = 'pending';
-- The pending claim reads scan_jobs_fair_idx now.
DROP INDEX scan_jobs_pending_idx;

CREATE FUNCTION scan_jobs_fair_at() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    -- One job's share of the scanners in virtual time.
    c_step constant bigint := 1000;
    v_now  bigint := public.app_now_ms();
BEGIN
    INSERT INTO public.scan_fair_clocks AS c (tenant_id, clock)
    VALUES (NEW.tenant_id, v_now + c_step)
    ON CONFLICT (tenant_id) DO UPDATE SET clock = greatest(c.clock, v_now) + c_step
    RETURNING c.clock INTO NEW.fair_at;
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION scan_jobs_fair_at() FROM PUBLIC;

CREATE TRIGGER scan_jobs_fair_at BEFORE INSERT ON scan_jobs
    FOR EACH ROW EXECUTE FUNCTION scan_jobs_fair_at();

-- 0010's claim with the pending jobs taken in fair_at order. Same signature; CREATE OR REPLACE keeps the
-- owner and the EXECUTE grants (0011: the scanner role).
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

    -- Content whose object its quarantine deleted cannot be scanned again and its verdict stands: a
    -- job for it, such as a later uploader's, is answered here (0010).
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

    -- Expired leases first (0007).
    SELECT array_agg(s.id) INTO v_ids FROM (
        SELECT j.id FROM public.scan_jobs j
        WHERE j.status = 'running' AND j.lease_expires_at <= v_now AND j.attempts < j.max_attempts
        ORDER BY j.lease_expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) s;
    v_ids := coalesce(v_ids, '{}');

    -- Then pending jobs in virtual-time order (see the header).
    IF cardinality(v_ids) < p_limit THEN
        SELECT array_agg(s.id) INTO v_more FROM (
            SELECT j.id FROM public.scan_jobs j
            WHERE j.status = 'pending' AND j.available_at <= v_now
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
