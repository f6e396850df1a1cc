-- 0004_attachments: content-addressed blobs with per-tenant dedup, attachments, and the scan job outbox.

-- One row per distinct content per tenant. Dedup never crosses tenants: sharing a blob across tenants would
-- let one tenant learn (by timing or by isDeduplicated) that another holds a given file.
--
-- Ingest, in one transaction, after the object is stored under a fresh storage key:
--   INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime)
--   VALUES (...)
--   ON CONFLICT (tenant_id, content_sha256) DO UPDATE SET ref_count = attachment_blobs.ref_count + 1
--   RETURNING id, storage_key, scan_status, (xmax = 0) AS inserted;
-- inserted = false means the content already existed: delete the object just uploaded (the stored
-- storage_key wins), and report isDeduplicated = true. inserted = true: also INSERT a scan_jobs row.
-- ref_count counts the live (not soft-deleted) attachments using the blob; soft delete decrements it. A blob
-- at 0 is garbage once no attachment row within retention references it.
CREATE TABLE attachment_blobs (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants (id),
    content_sha256        text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),  -- lowercase hex, = contentHash / ETag
    size_bytes            bigint NOT NULL CHECK (size_bytes >= 0),
    storage_key           text NOT NULL CONSTRAINT attachment_blobs_storage_key_key UNIQUE
                          CHECK (length(storage_key) BETWEEN 1 AND 1024),
    sniffed_mime          text,
    scan_status           text NOT NULL DEFAULT 'pending'
                          CHECK (scan_status IN ('pending', 'clean', 'infected', 'suspicious', 'error', 'skipped')),
    scan_engine           text,
    scan_signature        text,
    scan_details          text,
    -- The scanner's own time of the verdict now in force (callback "scannedAt"). A verdict is applied only if
    -- it is newer: UPDATE ... WHERE scanned_at IS NULL OR scanned_at < $scannedAt; the trigger below refuses
    -- an older one anyway, so a delayed callback can never overwrite a newer verdict.
    scanned_at            bigint,
    -- Incremented by the trigger on every applied verdict change; lets readers detect that a verdict moved.
    scan_verdict_version  integer NOT NULL DEFAULT 0,
    ref_count             integer NOT NULL DEFAULT 1 CHECK (ref_count >= 0),
    created_at            bigint NOT NULL DEFAULT app_now_ms(),
    updated_at            bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT attachment_blobs_content_key UNIQUE (tenant_id, content_sha256),
    CONSTRAINT attachment_blobs_tenant_id_id_key UNIQUE (tenant_id, id)
);

-- Verdict invariants that must hold whatever a component does:
-- * infected is quarantine: it never turns into anything else for the app (an operator, as owner or
--   superuser, may release it deliberately);
-- * a verdict older than the one in force is refused (out-of-order callbacks);
-- * every verdict change bumps scan_verdict_version.
CREATE FUNCTION attachment_blobs_guard_verdict() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NEW.scan_status IS DISTINCT FROM OLD.scan_status
       OR NEW.scanned_at IS DISTINCT FROM OLD.scanned_at
       OR NEW.scan_signature IS DISTINCT FROM OLD.scan_signature THEN
        IF OLD.scan_status = 'infected' AND NEW.scan_status <> 'infected'
           AND NOT pg_has_role(current_user, 'attachments_owner', 'MEMBER') THEN
            RAISE EXCEPTION 'infected content stays quarantined (blob %)', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.scanned_at IS NOT NULL AND (NEW.scanned_at IS NULL OR NEW.scanned_at <= OLD.scanned_at) THEN
            RAISE EXCEPTION 'scan verdict is not newer than the one in force (blob %)', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.scan_verdict_version := OLD.scan_verdict_version + 1;
    END IF;
    NEW.updated_at := public.app_now_ms();
    RETURN NEW;
END;
$$;
CREATE TRIGGER attachment_blobs_guard BEFORE UPDATE ON attachment_blobs
    FOR EACH ROW EXECUTE FUNCTION attachment_blobs_guard_verdict();

CREATE TABLE email_attachments (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL,
    message_id            uuid NOT NULL,
    blob_id               uuid NOT NULL,
    uploader_user_id      uuid NOT NULL,
    -- Validated (and normalised) by ingest; the database only refuses what is never acceptable.
    filename              text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255 AND filename !~ '[[:cntrl:]]'),
    declared_mime         text,           -- what the client said (Content-Type of the part/body)
    detected_mime         text,           -- what ingest concluded; served as mimeType
    size_bytes            bigint NOT NULL CHECK (size_bytes >= 0),
    is_deleted            boolean NOT NULL DEFAULT false,
    deleted_at            bigint,
    retention_expires_at  bigint,
    -- Signed download URLs embed this number; revoke-urls increments it, so every URL issued before stops
    -- verifying without a denylist.
    url_generation        integer NOT NULL DEFAULT 0 CHECK (url_generation >= 0),
    created_at            bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT email_attachments_message_fk FOREIGN KEY (tenant_id, message_id) REFERENCES email_messages (tenant_id, id),
    CONSTRAINT email_attachments_blob_fk FOREIGN KEY (tenant_id, blob_id) REFERENCES attachment_blobs (tenant_id, id),
    CONSTRAINT email_attachments_uploader_fk FOREIGN KEY (tenant_id, uploader_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT email_attachments_deleted_consistent CHECK (is_deleted = (deleted_at IS NOT NULL))
);
-- GET /emails/{id}/attachments: live ones, newest first (id breaks ties so paging is stable).
CREATE INDEX email_attachments_message_idx ON email_attachments (message_id, created_at DESC, id DESC) WHERE NOT is_deleted;
-- All attachments sharing a content (verdict fan-out, ref_count repair, GC).
CREATE INDEX email_attachments_blob_idx ON email_attachments (blob_id);
-- Retention purge.
CREATE INDEX email_attachments_retention_idx ON email_attachments (retention_expires_at) WHERE retention_expires_at IS NOT NULL;
CREATE INDEX email_attachments_created_brin ON email_attachments USING brin (created_at);

-- Outbox of content to scan, written in the same transaction as a new blob, so a blob can never exist
-- without a job. Scanners claim with FOR UPDATE SKIP LOCKED (scan_claim_jobs) and hold a lease; a crashed
-- scanner's job becomes claimable again once lease_expires_at passes.
CREATE TABLE scan_jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    blob_id           uuid NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    available_at      bigint NOT NULL DEFAULT app_now_ms(),   -- not before (retry backoff)
    lease_expires_at  bigint,
    locked_by         text,
    last_error        text,
    created_at        bigint NOT NULL DEFAULT app_now_ms(),
    updated_at        bigint NOT NULL DEFAULT app_now_ms(),
    finished_at       bigint,
    CONSTRAINT scan_jobs_blob_fk FOREIGN KEY (tenant_id, blob_id) REFERENCES attachment_blobs (tenant_id, id),
    CONSTRAINT scan_jobs_lease_consistent
        CHECK ((status = 'running') = (lease_expires_at IS NOT NULL AND locked_by IS NOT NULL))
);
-- The claim queries read exactly these two partial indexes; finished jobs cost them nothing.
CREATE INDEX scan_jobs_pending_idx ON scan_jobs (available_at) WHERE status = 'pending';
CREATE INDEX scan_jobs_running_idx ON scan_jobs (lease_expires_at) WHERE status = 'running';
-- At most one open job per blob (a rescan request while one is open is a no-op: ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX scan_jobs_open_blob_key ON scan_jobs (blob_id) WHERE status IN ('pending', 'running');
CREATE INDEX scan_jobs_blob_idx ON scan_jobs (blob_id);
CREATE TRIGGER scan_jobs_touch BEFORE UPDATE ON scan_jobs
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

-- Row-level security --------------------------------------------------------------------------------------

ALTER TABLE attachment_blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachment_blobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON attachment_blobs
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE email_attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_attachments
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE scan_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scan_jobs
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- Grants: rows are never hard-deleted by the app (soft delete, retention purge is an operator job). The
-- columns that identify content (tenant, hash, storage key, size) are immutable for the app.
GRANT SELECT, INSERT ON attachment_blobs, email_attachments, scan_jobs TO attachments_app;
GRANT UPDATE (ref_count, sniffed_mime, scan_status, scan_engine, scan_signature, scan_details, scanned_at)
    ON attachment_blobs TO attachments_app;
GRANT UPDATE (is_deleted, deleted_at, retention_expires_at, url_generation, detected_mime)
    ON email_attachments TO attachments_app;
GRANT UPDATE (status, attempts, available_at, lease_expires_at, locked_by, last_error, finished_at)
    ON scan_jobs TO attachments_app;

-- Cross-tenant entry points. Scanners serve every tenant and the scan callback may name only an attachment
-- id, so these run as the owner (SECURITY DEFINER) and expose only what the scan flow needs. Their callers
-- authenticate by other means (scanner deployment, HMAC-signed callback) before calling them.

-- Claim up to p_limit jobs for p_worker with a lease of p_lease_seconds. Pending jobs first (oldest
-- available first), then jobs whose lease expired (a crashed scanner). SKIP LOCKED makes concurrent claimers
-- take disjoint jobs without waiting on each other. A job whose lease expired after max_attempts is not
-- retried: it is marked failed and its blob's verdict becomes 'error' (still blocked for download by default).
CREATE FUNCTION scan_claim_jobs(p_worker text, p_lease_seconds integer DEFAULT 300, p_limit integer DEFAULT 1)
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

    SELECT array_agg(s.id) INTO v_ids FROM (
        SELECT j.id FROM public.scan_jobs j
        WHERE j.status = 'pending' AND j.available_at <= v_now
        ORDER BY j.available_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) s;
    v_ids := coalesce(v_ids, '{}');

    IF cardinality(v_ids) < p_limit THEN
        SELECT array_agg(s.id) INTO v_more FROM (
            SELECT j.id FROM public.scan_jobs j
            WHERE j.status = 'running' AND j.lease_expires_at <= v_now AND j.attempts < j.max_attempts
            ORDER BY j.lease_expires_at
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

-- Finish a claimed job. Only the worker holding the lease may finish it ('not_owner' otherwise, e.g. the
-- lease expired and another worker took the job over). p_error NULL => 'done'; otherwise the job goes back
-- to 'pending' with exponential backoff (10 s * 2^attempts, at most 1 h), or 'failed' after max_attempts,
-- in which case a still-pending blob gets the verdict 'error'.
-- Applying the verdict itself is the scan callback's job (UPDATE attachment_blobs under the tenant).
CREATE FUNCTION scan_complete_job(p_job_id uuid, p_worker text, p_error text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_now bigint := public.app_now_ms();
    v_job public.scan_jobs%ROWTYPE;
BEGIN
    SELECT * INTO v_job FROM public.scan_jobs j WHERE j.id = p_job_id FOR UPDATE;
    IF NOT FOUND OR v_job.status <> 'running' OR v_job.locked_by IS DISTINCT FROM p_worker THEN
        RETURN 'not_owner';
    END IF;
    IF p_error IS NULL THEN
        UPDATE public.scan_jobs j SET status = 'done', lease_expires_at = NULL, locked_by = NULL,
               finished_at = v_now
         WHERE j.id = p_job_id;
        RETURN 'done';
    ELSIF v_job.attempts >= v_job.max_attempts THEN
        UPDATE public.scan_jobs j SET status = 'failed', lease_expires_at = NULL, locked_by = NULL,
               finished_at = v_now, last_error = left(p_error, 2000)
         WHERE j.id = p_job_id;
        UPDATE public.attachment_blobs b SET scan_status = 'error', scan_details = 'scan attempts exhausted'
         WHERE b.tenant_id = v_job.tenant_id AND b.id = v_job.blob_id AND b.scan_status = 'pending';
        RETURN 'failed';
    ELSE
        UPDATE public.scan_jobs j SET status = 'pending', lease_expires_at = NULL, locked_by = NULL,
               last_error = left(p_error, 2000),
               available_at = v_now + least(3600000, 10000 * (2 ^ v_job.attempts)::bigint)
         WHERE j.id = p_job_id;
        RETURN 'pending';
    END IF;
END;
$$;

-- The tenant (and content) an attachment id belongs to, for a caller that authenticated without a tenant:
-- the HMAC-signed scan callback body {"attachmentId"}. It reveals nothing but these three values.
CREATE FUNCTION resolve_attachment_tenant(p_attachment_id uuid)
    RETURNS TABLE (tenant_id uuid, blob_id uuid, content_sha256 text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
        SELECT a.tenant_id, a.blob_id, b.content_sha256
        FROM public.email_attachments a
        JOIN public.attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id
        WHERE a.id = p_attachment_id
    $$;

GRANT EXECUTE ON FUNCTION scan_claim_jobs(text, integer, integer) TO attachments_app;
GRANT EXECUTE ON FUNCTION scan_complete_job(uuid, text, text) TO attachments_app;
GRANT EXECUTE ON FUNCTION resolve_attachment_tenant(uuid) TO attachments_app;
