-- 0021_scan_engine_verdicts: each scan engine's own verdict on a content.
--
-- attachment_blobs holds the verdict in force (scan_status and the columns of the verdict that last
-- changed it). With more than one engine (ClamAV, VirusTotal) the content's status is the worst of the
-- engines that gave an opinion (crates/scan-core/src/engines.rs), and each engine's result is kept
-- here, one row per content and engine, written by the scan callback in the transaction that decides
-- the verdict: which engine (the first word of the callback's `engine`, lower case), its version and,
-- for ClamAV, the version of its signature database (what rescans after a signature update compare),
-- what it said, the threats it named, when it scanned (the scanner's clock) and when that arrived.
--
-- Tenant isolation like the neighbouring tables (RLS, forced). The app (the callback and the
-- scan-status route) reads, inserts and updates the verdict columns; it never deletes (the purge
-- deletes a content row as the owner, and its engine rows go with it). The scanner role has nothing
-- here.

CREATE TABLE scan_engine_verdicts (
    tenant_id          uuid NOT NULL,
    blob_id            uuid NOT NULL,
    engine             text NOT NULL CHECK (engine ~ '^[a-z0-9._-]{1,40}$'),
    engine_version     text CHECK (length(engine_version) <= 100),
    signature_version  bigint CHECK (signature_version >= 0),
    status             text NOT NULL CHECK (status IN ('clean', 'infected', 'suspicious', 'error')),
    names              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(names) = 'array'),
    scanned_at         bigint NOT NULL,
    received_at        bigint NOT NULL DEFAULT app_now_ms(),
    PRIMARY KEY (blob_id, engine),
    CONSTRAINT scan_engine_verdicts_blob_fk FOREIGN KEY (tenant_id, blob_id)
        REFERENCES attachment_blobs (tenant_id, id) ON DELETE CASCADE
);
-- Rescans after a signature update: content an engine judged clean under an older signature version.
CREATE INDEX scan_engine_verdicts_rescan_idx ON scan_engine_verdicts (engine, signature_version)
    WHERE status = 'clean';

ALTER TABLE scan_engine_verdicts ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_engine_verdicts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scan_engine_verdicts
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- The verdicts in force so far were ClamAV's (the only engine): each becomes ClamAV's record, with the
-- signature version its engine text names (clamd's `ClamAV 1.0.7/27000/<date>`), so that a signature
-- update rescans them too.
INSERT INTO scan_engine_verdicts (tenant_id, blob_id, engine, engine_version, signature_version, status,
                                  names, scanned_at, received_at)
SELECT b.tenant_id, b.id, 'clamav',
       left(nullif(split_part(split_part(b.scan_engine, ' ', 2), '/', 1), ''), 40),
       CASE WHEN split_part(split_part(b.scan_engine, ' ', 2), '/', 2) ~ '^[0-9]{1,18}$'
            THEN split_part(split_part(b.scan_engine, ' ', 2), '/', 2)::bigint END,
       b.scan_status,
       CASE WHEN b.scan_signature IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(b.scan_signature) END,
       b.scanned_at, coalesce(b.scan_received_at, b.scanned_at)
  FROM attachment_blobs b
 WHERE b.scan_engine ~ '^ClamAV( |$)' AND b.scanned_at IS NOT NULL
   AND b.scan_status IN ('clean', 'infected', 'suspicious', 'error');

GRANT SELECT, INSERT ON scan_engine_verdicts TO attachments_app;
GRANT UPDATE (engine_version, signature_version, status, names, scanned_at, received_at)
    ON scan_engine_verdicts TO attachments_app;

-- Whether the VirusTotal engine may upload the tenant's content that VirusTotal does not know (by its
-- SHA-256): uploading hands the bytes to a third party, so it is the tenant's choice, off by default;
-- an operator sets it (UPDATE tenants SET virustotal_upload = true ...). Without it content unknown to
-- VirusTotal gets no VirusTotal verdict at all ("no opinion").
ALTER TABLE tenants
    ADD COLUMN virustotal_upload boolean NOT NULL DEFAULT false;

-- The one fact the scan worker needs about a tenant, for the scanner role (which has no privilege on
-- tenants): false for an unknown tenant.
CREATE FUNCTION scan_tenant_allows_upload(p_tenant uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT coalesce((SELECT t.virustotal_upload FROM public.tenants t WHERE t.id = p_tenant), false)
$$;
REVOKE ALL ON FUNCTION scan_tenant_allows_upload(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scan_tenant_allows_upload(uuid) TO attachments_scanner;
