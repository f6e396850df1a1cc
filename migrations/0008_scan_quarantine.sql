-- 0008_scan_quarantine: what the scan callback records when it quarantines an object.
--
-- Infected and suspicious content is refused by downloads from the moment its verdict commits. The
-- callback then also takes the stored object out of its normal key (variable `quarantine_mode`):
--   move   : CopyObject to 'quarantine/' || storage_key, record the new key here, DeleteObject the original;
--   delete : record the deletion here, DeleteObject.
-- Recording happens between the copy and the delete, so a row never points at a missing object without
-- saying so, and a retried callback resumes from what is recorded (crates/scan-core/src/quarantine.rs).
--
-- storage_key stays immutable for the app (0004); the only way to change it, or to record a
-- quarantine, is scan_record_quarantine below, which allows exactly these two transitions for content of
-- the transaction's tenant whose verdict is infected or suspicious. Nothing un-quarantines (an operator,
-- as the owner, may).

ALTER TABLE attachment_blobs
    ADD COLUMN quarantined_at    bigint,
    -- moved: storage_key is the quarantine key; deleted: the object at storage_key was deleted.
    ADD COLUMN quarantine_action text CHECK (quarantine_action IN ('moved', 'deleted')),
    ADD CONSTRAINT attachment_blobs_quarantine_consistent
        CHECK ((quarantined_at IS NULL) = (quarantine_action IS NULL)),
    ADD CONSTRAINT attachment_blobs_quarantine_key
        CHECK (quarantine_action IS DISTINCT FROM 'moved' OR storage_key LIKE 'quarantine/%');

-- Records the quarantine of blob p_blob_id (of the current tenant) whose storage_key is p_from_key.
-- p_action 'moved': storage_key becomes 'quarantine/' || p_from_key (the caller copied the object there
-- first); 'deleted': storage_key is kept and the object is marked deleted (the caller deletes it next).
-- Returns the storage key now recorded, or NULL when nothing changed (another tenant, not quarantine
-- content, already recorded, or storage_key is no longer p_from_key because a concurrent callback won).
CREATE FUNCTION scan_record_quarantine(p_blob_id uuid, p_from_key text, p_action text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    v_key text;
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('moved', 'deleted') THEN
        RAISE EXCEPTION 'scan_record_quarantine: action must be moved or deleted'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_from_key IS NULL OR p_from_key LIKE 'quarantine/%' THEN
        RAISE EXCEPTION 'scan_record_quarantine: not an original key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- SECURITY DEFINER runs as the owner, which bypasses RLS: the tenant filter is explicit. Without a
    -- tenant set, app_current_tenant_id() is NULL and nothing matches.
    UPDATE public.attachment_blobs b
       SET storage_key = CASE WHEN p_action = 'moved' THEN 'quarantine/' || p_from_key ELSE b.storage_key END,
           quarantine_action = p_action,
           quarantined_at = public.app_now_ms()
     WHERE b.id = p_blob_id
       AND b.tenant_id = public.app_current_tenant_id()
       AND b.storage_key = p_from_key
       AND b.quarantine_action IS NULL
       AND b.scan_status IN ('infected', 'suspicious')
    RETURNING b.storage_key INTO v_key;
    RETURN v_key;
END;
$$;

GRANT EXECUTE ON FUNCTION scan_record_quarantine(uuid, text, text) TO attachments_app;
