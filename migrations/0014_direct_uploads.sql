-- 0014_direct_uploads: uploads whose bytes go straight to storage, never through a function.
--
-- A client asks for an upload session (POST /emails/{id}/uploads): every check that can run before a
-- byte moves runs then (message ownership, filename and extension policy, claimed size and type), and
-- the session holds what was claimed. The client PUTs the parts to presigned storage URLs, then
-- completes (CompleteMultipartUpload): the session turns `verifying`. Until the worker has read the
-- object back (size and SHA-256 against the claims, the content policy, dedup, the virus scan) there
-- is no blob and no attachment row: an unverified hash must never reach the dedup index, where it
-- would let a client claim someone's content by its hash alone. The session is the attachment as its
-- uploader sees it meanwhile (listed as `verifying`, later `rejected` with a reason); its
-- attachment_id is the id the attachment row gets once verified.
--
-- Life of a session (state):
--   open       parts may be PUT until expires_at; DELETE aborts it (-> aborted); past expires_at the
--              janitor aborts its multipart upload (an aborted one's again: a part still uploading
--              during the app's abort may outlive it) and deletes the row.
--   verifying  completed; the worker claims it (lease, SKIP LOCKED) and reports the outcome through
--              the scan callback component, which records it in the tenant's transaction.
--   done       verified: the attachment row exists (id = attachment_id).
--   rejected   verification refused it (reject_code: size_mismatch, digest_mismatch,
--              blocked_file_type, message_gone, verification_failed).
--   aborted    the client gave up.
-- object_unused: the object at storage_key is not (or no longer) anyone's content: the upload was
-- rejected or aborted, or the tenant held the content already (dedup). The worker deletes it at once;
-- the janitor deletes it again before it forgets the row (a crash in between leaves nothing behind).
-- Terminal rows stay until expires_at (a rejected upload is listed with its reason until then), then
-- the janitor deletes them: no session row outlives its expiry by more than the janitor's period.

CREATE TABLE upload_sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),          -- uploadId
    tenant_id         uuid NOT NULL,
    message_id        uuid NOT NULL,
    user_id           uuid NOT NULL,
    attachment_id     uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    filename          text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255 AND filename !~ '[[:cntrl:]]'),
    declared_mime     text,
    claimed_size      bigint NOT NULL CHECK (claimed_size >= 0),
    claimed_sha256    text CHECK (claimed_sha256 ~ '^[0-9a-f]{64}$'),
    storage_key       text NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 1024),
    s3_upload_id      text NOT NULL CHECK (length(s3_upload_id) BETWEEN 1 AND 1024),
    part_size         bigint NOT NULL CHECK (part_size > 0),
    part_count        integer NOT NULL CHECK (part_count BETWEEN 1 AND 10000),
    state             text NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'verifying', 'done', 'rejected', 'aborted')),
    reject_code       text,
    reject_detail     text,
    object_unused     boolean NOT NULL DEFAULT false,
    expires_at        bigint NOT NULL,
    -- Verification: claimed by a worker with a lease, like scan_jobs.
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at      bigint NOT NULL DEFAULT app_now_ms(),
    lease_expires_at  bigint,
    locked_by         text,
    last_error        text,
    created_at        bigint NOT NULL DEFAULT app_now_ms(),
    updated_at        bigint NOT NULL DEFAULT app_now_ms(),
    completed_at      bigint,
    CONSTRAINT upload_sessions_message_fk FOREIGN KEY (tenant_id, message_id) REFERENCES email_messages (tenant_id, id),
    CONSTRAINT upload_sessions_user_fk FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT upload_sessions_rejected_has_code CHECK ((state = 'rejected') = (reject_code IS NOT NULL)),
    CONSTRAINT upload_sessions_lease_consistent
        CHECK ((lease_expires_at IS NULL) = (locked_by IS NULL))
);
-- The message's attachment list shows its sessions that are verifying or rejected.
CREATE INDEX upload_sessions_message_idx ON upload_sessions (message_id, created_at DESC, id DESC)
    WHERE state IN ('verifying', 'rejected');
-- The worker's claim and the janitor's sweep read these.
CREATE INDEX upload_sessions_verifying_idx ON upload_sessions (available_at) WHERE state = 'verifying';
CREATE INDEX upload_sessions_expiry_idx ON upload_sessions (expires_at);
CREATE INDEX upload_sessions_unused_idx ON upload_sessions (updated_at) WHERE object_unused;
CREATE TRIGGER upload_sessions_touch BEFORE UPDATE ON upload_sessions
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

ALTER TABLE upload_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON upload_sessions
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- The app creates sessions, moves their state and records the verification's outcome; what was
-- claimed and where the object is never change.
GRANT SELECT, INSERT ON upload_sessions TO attachments_app;
GRANT UPDATE (state, reject_code, reject_detail, object_unused, completed_at, lease_expires_at,
              locked_by, last_error) ON upload_sessions TO attachments_app;


-- Worker side (SECURITY DEFINER, across tenants, for the scanner role). ----------------------------

-- Claim up to p_limit completed sessions to verify, with a lease of p_lease_seconds. A session whose
-- lease expired is claimable again; one that used up p_max_attempts is rejected with
-- verification_failed (its object is unused then).
CREATE FUNCTION upload_claim_verifications(p_worker text, p_lease_seconds integer, p_limit integer,
                                           p_max_attempts integer DEFAULT 5)
    RETURNS TABLE (upload_id uuid, tenant_id uuid, storage_key text, claimed_size bigint,
                   claimed_sha256 text, filename text, declared_mime text, attempts integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := public.app_now_ms();
    v_ids uuid[];
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200
       OR p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 1000
       OR p_max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'upload_claim_verifications: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE public.upload_sessions s
       SET state = 'rejected', reject_code = 'verification_failed',
           reject_detail = left('verification failed ' || s.attempts || ' times: '
                                || coalesce(s.last_error, 'lease expired'), 500),
           object_unused = true, lease_expires_at = NULL, locked_by = NULL
     WHERE s.id IN (SELECT x.id FROM public.upload_sessions x
                    WHERE x.state = 'verifying' AND x.attempts >= p_max_attempts
                      AND (x.lease_expires_at IS NULL OR x.lease_expires_at <= v_now)
                    LIMIT 100 FOR UPDATE SKIP LOCKED);

    SELECT array_agg(x.id) INTO v_ids FROM (
        SELECT s.id FROM public.upload_sessions s
        WHERE s.state = 'verifying' AND s.available_at <= v_now AND s.attempts < p_max_attempts
          AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= v_now)
        ORDER BY s.available_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) x;

    RETURN QUERY
    UPDATE public.upload_sessions s
       SET attempts = s.attempts + 1, locked_by = p_worker,
           lease_expires_at = v_now + p_lease_seconds::bigint * 1000
     WHERE s.id = ANY (coalesce(v_ids, '{}'))
    RETURNING s.id, s.tenant_id, s.storage_key, s.claimed_size, s.claimed_sha256, s.filename,
              s.declared_mime, s.attempts;
END;
$$;

-- Hand a claimed verification back after a transient failure (storage, clamd, the callback): it is
-- retried after a backoff (10 s * 2^attempts, at most 10 min; the exponent is capped so that a large
-- p_max_attempts cannot overflow bigint). 'not_owner' when the lease is not p_worker's any more (or
-- the outcome was recorded meanwhile).
CREATE FUNCTION upload_release_verification(p_upload_id uuid, p_worker text, p_error text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_now bigint := public.app_now_ms();
BEGIN
    UPDATE public.upload_sessions s
       SET lease_expires_at = NULL, locked_by = NULL, last_error = left(coalesce(p_error, ''), 2000),
           available_at = v_now + least(600000, 10000 * (2 ^ least(s.attempts, 16))::bigint)
     WHERE s.id = p_upload_id AND s.state = 'verifying' AND s.locked_by = p_worker;
    RETURN CASE WHEN FOUND THEN 'pending' ELSE 'not_owner' END;
END;
$$;

-- The janitor's work, up to p_limit rows, each claimed with a lease of p_lease_seconds so that
-- janitors side by side take disjoint rows:
--   'abort'   an open or aborted session past its expiry: AbortMultipartUpload (again, for an
--             aborted one: a part still uploading when the app aborted may outlive that abort, and
--             S3 says to abort again), then upload_forget_session;
--   'delete'  an object nobody uses (object_unused): DeleteObject, then upload_object_deleted;
--   'forget'  a finished session past its expiry whose object is settled: upload_forget_session.
CREATE FUNCTION upload_janitor_claim(p_worker text, p_lease_seconds integer, p_limit integer)
    RETURNS TABLE (upload_id uuid, tenant_id uuid, action text, storage_key text, s3_upload_id text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_now bigint := public.app_now_ms();
    v_ids uuid[];
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200
       OR p_lease_seconds NOT BETWEEN 1 AND 86400 OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'upload_janitor_claim: invalid arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(x.id) INTO v_ids FROM (
        SELECT s.id FROM public.upload_sessions s
        WHERE (s.lease_expires_at IS NULL OR s.lease_expires_at <= v_now)
          AND (s.object_unused
               OR (s.expires_at <= v_now AND s.state IN ('open', 'done', 'rejected', 'aborted')))
        ORDER BY s.expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) x;

    RETURN QUERY
    UPDATE public.upload_sessions s
       SET locked_by = p_worker, lease_expires_at = v_now + p_lease_seconds::bigint * 1000
     WHERE s.id = ANY (coalesce(v_ids, '{}'))
    RETURNING s.id, s.tenant_id,
              CASE WHEN s.object_unused THEN 'delete'
                   WHEN s.state IN ('open', 'aborted') THEN 'abort'
                   ELSE 'forget' END,
              s.storage_key, s.s3_upload_id;
END;
$$;

-- The unused object of p_upload_id is deleted (by p_worker, holding its janitor lease).
CREATE FUNCTION upload_object_deleted(p_upload_id uuid, p_worker text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE public.upload_sessions s
       SET object_unused = false, lease_expires_at = NULL, locked_by = NULL
     WHERE s.id = p_upload_id AND s.object_unused
       AND (s.locked_by = p_worker OR s.locked_by IS NULL);
    RETURN FOUND;
END;
$$;

-- Deletes the row of p_upload_id once its multipart upload is aborted (open) or its object settled
-- (finished), past its expiry. A session that turned verifying meanwhile (completed in time) stays.
CREATE FUNCTION upload_forget_session(p_upload_id uuid, p_worker text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    DELETE FROM public.upload_sessions s
     WHERE s.id = p_upload_id AND s.locked_by = p_worker AND NOT s.object_unused
       AND s.expires_at <= public.app_now_ms() AND s.state IN ('open', 'done', 'rejected', 'aborted');
    RETURN FOUND;
END;
$$;

-- The tenant of an upload session, for the HMAC-authenticated verification callback (which names
-- only the upload id). Reveals nothing else.
CREATE FUNCTION resolve_upload_tenant(p_upload_id uuid)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$ SELECT s.tenant_id FROM public.upload_sessions s WHERE s.id = p_upload_id $$;

GRANT EXECUTE ON FUNCTION upload_claim_verifications(text, integer, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION upload_release_verification(uuid, text, text) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION upload_janitor_claim(text, integer, integer) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION upload_object_deleted(uuid, text) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION upload_forget_session(uuid, text) TO attachments_scanner;
GRANT EXECUTE ON FUNCTION resolve_upload_tenant(uuid) TO attachments_app;
