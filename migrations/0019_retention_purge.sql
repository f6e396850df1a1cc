-- 0019_retention_purge: retention, legal hold, and the purge that finally removes attachments and
-- their stored content.
--
-- Retention. Every attachment gets retention_expires_at when its row is written (crates/store
-- attachments::insert): created + the tenant's tenants.retention_days, else the app's
-- `retention_days` variable (90 by default). Rows written before this migration get created + 90 days.
-- A later change of a tenant's retention applies to attachments created after it.
--
-- Legal hold. email_attachments.legal_hold or email_messages.legal_hold (the attachment's message)
-- keeps an attachment from being purged, whatever its retention or deletion. The tenant's admins set
-- and lift it (PUT/DELETE /api/v1/admin/.../legal-hold, audited): the app may update that column alone.
--
-- Purge (the scan worker's `purge` mode, as the scanner role, through the functions below):
--   1. purge_attachments: in one transaction, up to p_limit attachments past retention or
--      soft-deleted longer than the grace period, not on hold (FOR UPDATE SKIP LOCKED: replicas side
--      by side take disjoint rows), are deleted with an audit row each (user NULL = the system); the
--      references of live ones are given back; a blob no row references any more is marked purging
--      (purging_at) and its open scan jobs are closed. A purging blob is nobody's content: the unique
--      content index below leaves it out, so an upload of the same content makes a new blob (with a
--      new object) instead of reviving it.
--   2. purge_claim_blobs: purging blobs, leased to one worker (lease, SKIP LOCKED).
--   3. the worker deletes the object (DeleteObject; an absent object counts as deleted).
--   4. purge_forget_blob: the blob row goes, with its scan jobs and an audit row.
-- A purge killed anywhere leaves either rows not yet purged (step 1 rolled back) or a purging blob
-- whose object may or may not be gone: the next run (after the lease, or at once under the same
-- worker name) deletes the object again and forgets the row. No live row ever points at a purging
-- blob, and no object is deleted before its blob is purging.

ALTER TABLE tenants
    ADD COLUMN retention_days integer CHECK (retention_days BETWEEN 1 AND 36500);

ALTER TABLE email_attachments
    ADD COLUMN legal_hold boolean NOT NULL DEFAULT false;
ALTER TABLE email_messages
    ADD COLUMN legal_hold boolean NOT NULL DEFAULT false;

UPDATE email_attachments SET retention_expires_at = created_at + 90::bigint * 86400000
 WHERE retention_expires_at IS NULL;

ALTER TABLE attachment_blobs
    ADD COLUMN purging_at             bigint,
    ADD COLUMN purge_locked_by        text,
    ADD COLUMN purge_lease_expires_at bigint,
    ADD CONSTRAINT attachment_blobs_purge_lease_consistent
        CHECK ((purge_locked_by IS NULL) = (purge_lease_expires_at IS NULL)
               AND (purging_at IS NOT NULL OR purge_locked_by IS NULL));

-- Dedup among live content only: a purging blob keeps its row (and its hash) until its object is
-- gone, but an upload never joins it (ON CONFLICT (tenant_id, content_sha256) WHERE purging_at IS NULL).
ALTER TABLE attachment_blobs DROP CONSTRAINT attachment_blobs_content_key;
CREATE UNIQUE INDEX attachment_blobs_content_key ON attachment_blobs (tenant_id, content_sha256)
    WHERE purging_at IS NULL;
CREATE INDEX attachment_blobs_purging_idx ON attachment_blobs (purging_at) WHERE purging_at IS NOT NULL;
-- Soft-deleted attachments by deletion time (the grace period's candidates).
CREATE INDEX email_attachments_deleted_idx ON email_attachments (deleted_at) WHERE is_deleted;

-- What a purge would take now, oldest first: attachments past retention or soft-deleted more than
-- p_grace_days ago, not on hold, and whether their blob would go with them. Read-only (`--dry-run`).
CREATE FUNCTION purge_candidates(p_grace_days integer, p_limit integer)
    RETURNS TABLE (attachment_id uuid, tenant_id uuid, blob_id uuid, reason text, size_bytes bigint,
                   blob_goes boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := public.app_now_ms();
BEGIN
    IF p_grace_days NOT BETWEEN 0 AND 36500 OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'purge_candidates: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH c AS (
        SELECT a.id, a.tenant_id, a.blob_id, a.size_bytes,
               CASE WHEN a.retention_expires_at <= v_now THEN 'retention' ELSE 'deleted' END AS reason
        FROM public.email_attachments a
        JOIN public.email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id
        WHERE (a.retention_expires_at <= v_now
               OR (a.is_deleted AND a.deleted_at <= v_now - p_grace_days::bigint * 86400000))
          AND NOT a.legal_hold AND NOT m.legal_hold
        ORDER BY a.created_at, a.id
        LIMIT p_limit
    )
    SELECT c.id, c.tenant_id, c.blob_id, c.reason, c.size_bytes,
           NOT EXISTS (SELECT 1 FROM public.email_attachments o
                       WHERE o.blob_id = c.blob_id AND o.id NOT IN (SELECT id FROM c))
    FROM c;
END;
$$;

-- Step 1 (see the header): purges up to p_limit attachments for p_worker and returns them, with
-- whether their blob is now purging. Soft-deleted attachments purge p_grace_days after deletion.
CREATE FUNCTION purge_attachments(p_worker text, p_grace_days integer, p_limit integer)
    RETURNS TABLE (attachment_id uuid, tenant_id uuid, blob_id uuid, reason text, blob_purging boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now    bigint := public.app_now_ms();
    v_ids    uuid[];
    v_att    uuid[];
    v_tenant uuid[];
    v_blob   uuid[];
    v_reason text[];
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200
       OR p_grace_days NOT BETWEEN 0 AND 36500 OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'purge_attachments: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT array_agg(x.id) INTO v_ids FROM (
        SELECT a.id FROM public.email_attachments a
        JOIN public.email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id
        WHERE (a.retention_expires_at <= v_now
               OR (a.is_deleted AND a.deleted_at <= v_now - p_grace_days::bigint * 86400000))
          AND NOT a.legal_hold AND NOT m.legal_hold
        ORDER BY a.created_at, a.id
        LIMIT p_limit
        FOR UPDATE OF a SKIP LOCKED
    ) x;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;

    -- The blobs, locked in one order (replicas purging attachments of one blob never deadlock):
    -- an upload joining one of them waits for this transaction and then sees its outcome.
    PERFORM 1 FROM public.attachment_blobs b
     WHERE b.id IN (SELECT a.blob_id FROM public.email_attachments a WHERE a.id = ANY (v_ids))
     ORDER BY b.id
     FOR UPDATE;

    -- ref_count counts live attachments (a soft delete gave its reference back already).
    UPDATE public.attachment_blobs b
       SET ref_count = greatest(0, b.ref_count - n.live)
      FROM (SELECT a.blob_id, count(*)::integer AS live FROM public.email_attachments a
             WHERE a.id = ANY (v_ids) AND NOT a.is_deleted GROUP BY a.blob_id) n
     WHERE b.id = n.blob_id;

    WITH gone AS (
        DELETE FROM public.email_attachments a WHERE a.id = ANY (v_ids)
        RETURNING a.id, a.tenant_id, a.blob_id, a.message_id, a.size_bytes,
                  CASE WHEN a.retention_expires_at <= v_now THEN 'retention' ELSE 'deleted' END AS reason
    ), audited AS (
        INSERT INTO public.email_audit_log
            (tenant_id, user_id, action, resource_type, resource_id, details, created_at)
        SELECT g.tenant_id, NULL, 'attachment.purge', 'attachment', g.id::text,
               jsonb_build_object('reason', g.reason, 'messageId', g.message_id, 'blobId', g.blob_id,
                                  'size', g.size_bytes, 'worker', p_worker),
               v_now
        FROM gone g
    )
    SELECT array_agg(g.id ORDER BY g.id), array_agg(g.tenant_id ORDER BY g.id),
           array_agg(g.blob_id ORDER BY g.id), array_agg(g.reason ORDER BY g.id)
      INTO v_att, v_tenant, v_blob, v_reason
      FROM gone g;

    -- Content no row references any more is purging from now on, and nothing scans it any more.
    UPDATE public.attachment_blobs b
       SET purging_at = v_now
     WHERE b.id = ANY (v_blob) AND b.purging_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM public.email_attachments o WHERE o.blob_id = b.id);
    UPDATE public.scan_jobs j
       SET status = 'done', finished_at = v_now, lease_expires_at = NULL, locked_by = NULL,
           last_error = 'the content was purged'
     WHERE j.blob_id = ANY (v_blob) AND j.status IN ('pending', 'running')
       AND EXISTS (SELECT 1 FROM public.attachment_blobs b
                   WHERE b.id = j.blob_id AND b.purging_at IS NOT NULL);

    RETURN QUERY
    SELECT u.att, u.tenant, u.blob, u.reason, b.purging_at IS NOT NULL
    FROM unnest(v_att, v_tenant, v_blob, v_reason) AS u (att, tenant, blob, reason)
    JOIN public.attachment_blobs b ON b.id = u.blob;
END;
$$;

-- Step 2: up to p_limit purging blobs for p_worker, leased for p_lease_seconds; a blob whose lease
-- expired, or that p_worker itself held (a restarted worker of the same name), is claimable again.
CREATE FUNCTION purge_claim_blobs(p_worker text, p_lease_seconds integer, p_limit integer)
    RETURNS TABLE (blob_id uuid, tenant_id uuid, storage_key text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := public.app_now_ms();
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200
       OR p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'purge_claim_blobs: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    UPDATE public.attachment_blobs b
       SET purge_locked_by = p_worker, purge_lease_expires_at = v_now + p_lease_seconds::bigint * 1000
     WHERE b.id IN (SELECT x.id FROM public.attachment_blobs x
                    WHERE x.purging_at IS NOT NULL
                      AND (x.purge_locked_by IS NULL OR x.purge_locked_by = p_worker
                           OR x.purge_lease_expires_at <= v_now)
                    ORDER BY x.purging_at
                    LIMIT p_limit
                    FOR UPDATE SKIP LOCKED)
    RETURNING b.id, b.tenant_id, b.storage_key;
END;
$$;

-- Step 4: forgets purging blob p_blob_id, held by p_worker, whose object at p_storage_key is gone.
-- False when it may not: another worker's lease, or a storage key that changed meanwhile (a
-- quarantine move racing the purge: the next run deletes the new key).
CREATE FUNCTION purge_forget_blob(p_blob_id uuid, p_worker text, p_storage_key text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_blob public.attachment_blobs%ROWTYPE;
BEGIN
    SELECT * INTO v_blob FROM public.attachment_blobs b
     WHERE b.id = p_blob_id AND b.purging_at IS NOT NULL AND b.purge_locked_by = p_worker
       AND b.storage_key = p_storage_key
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.scan_jobs j WHERE j.blob_id = p_blob_id;
    DELETE FROM public.attachment_blobs b WHERE b.id = p_blob_id;
    INSERT INTO public.email_audit_log (tenant_id, user_id, action, resource_type, resource_id, details, created_at)
    VALUES (v_blob.tenant_id, NULL, 'blob.purge', 'blob', p_blob_id::text,
            jsonb_build_object('contentHash', v_blob.content_sha256, 'size', v_blob.size_bytes,
                               'worker', p_worker),
            public.app_now_ms());
    RETURN true;
END;
$$;

GRANT UPDATE (legal_hold) ON email_attachments, email_messages TO attachments_app;

GRANT EXECUTE ON FUNCTION purge_candidates(integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION purge_attachments(text, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION purge_claim_blobs(text, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION purge_forget_blob(uuid, text, text) TO attachments_scanner;
