-- 0009_scan_verdicts_by_arrival: verdicts are ordered by when they arrive, not by the scanner's clock, and a
-- finding is never stale.
--
-- 0004 refused any verdict whose scannedAt (the scanner's own clock) was not newer than the one in force. A
-- scanner that dated a `clean` verdict in the future (a wrong clock, or a hostile or buggy scanner) made every
-- later verdict look older, so an `infected` finding that arrived after it was dropped as stale and the content
-- stayed servable. Content is immutable: whatever a scanner found in it stays true, whenever it was found.
--
-- From here on (crates/scan-core/src/verdict.rs is the state machine; this trigger is its backstop):
-- * infected and suspicious always win: they apply whatever is in force and whatever their scannedAt;
-- * infected is never left and suspicious is never released (only towards infected) by the app; an operator
--   (the owner or a superuser) may release content deliberately;
-- * other verdicts take effect in the order they arrive: the callback locks the content row, so that order is
--   the order of its transactions. scanned_at stays the scanner's statement (shown to users, audited); the
--   new scan_received_at is the server's time the verdict in force arrived, stamped by the trigger (the app
--   cannot write it);
-- * every verdict change bumps scan_verdict_version, as before.
-- Same trigger, same name: CREATE OR REPLACE keeps it attached to attachment_blobs.

ALTER TABLE attachment_blobs
    ADD COLUMN scan_received_at bigint;

-- NULL for verdicts in force before this migration (their arrival was not recorded) and for pending content.

CREATE OR REPLACE FUNCTION attachment_blobs_guard_verdict() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NEW.scan_status IS DISTINCT FROM OLD.scan_status
       OR NEW.scanned_at IS DISTINCT FROM OLD.scanned_at
       OR NEW.scan_signature IS DISTINCT FROM OLD.scan_signature
       OR NEW.scan_engine IS DISTINCT FROM OLD.scan_engine
       OR NEW.scan_details IS DISTINCT FROM OLD.scan_details THEN
        IF NOT pg_has_role(current_user, 'attachments_owner', 'MEMBER') THEN
            IF OLD.scan_status = 'infected' AND NEW.scan_status <> 'infected' THEN
                RAISE EXCEPTION 'infected content stays quarantined (blob %)', OLD.id
                    USING ERRCODE = 'check_violation';
            END IF;
            IF OLD.scan_status = 'suspicious' AND NEW.scan_status NOT IN ('suspicious', 'infected') THEN
                RAISE EXCEPTION 'suspicious content stays quarantined (blob %)', OLD.id
                    USING ERRCODE = 'check_violation';
            END IF;
        END IF;
        NEW.scan_received_at := public.app_now_ms();
        NEW.scan_verdict_version := OLD.scan_verdict_version + 1;
    END IF;
    NEW.updated_at := public.app_now_ms();
    RETURN NEW;
END;
$$;
