-- 0001_foundation: conventions, schema privileges and the helpers every later migration relies on.
--
-- CONVENTIONS (read before adding a migration)
--
-- * Time: every point in time is stored as BIGINT milliseconds since the Unix epoch (UTC), in columns
--   named `*_at`. The HTTP API speaks epoch ms (`createdAt`, `expiresAt`, `scannedAt`), Spin's postgres
--   interface maps int8 losslessly into Rust's i64 (no timestamp type mapping or time zone to get wrong in
--   a component), lease/expiry arithmetic is plain integer addition, and BRIN indexes work on it just as on
--   timestamptz. Defaults use `app_now_ms()` (transaction start time, like now()). For humans:
--   `to_timestamp(created_at / 1000.0)`.
-- * Tenancy: every tenant-owned table has `tenant_id uuid NOT NULL`, ENABLE + FORCE ROW LEVEL SECURITY and a
--   policy `tenant_id = (SELECT app_current_tenant_id())`. The tenant comes from the GUC
--   `app.current_tenant_id`, which components set per transaction:
--       BEGIN; SELECT set_config('app.current_tenant_id', '<uuid>', true); ...; COMMIT;
--   (never per session: pooled connections would otherwise carry one request's tenant into the next).
--   Missing, empty or malformed setting => app_current_tenant_id() is NULL => no row is visible and every
--   write is refused by WITH CHECK. The `(SELECT ...)` wrapper makes the planner evaluate it once per
--   statement (an InitPlan) instead of once per row, and still lets it drive index scans.
-- * Children carry the parent's tenant_id and reference the parent by (tenant_id, id): a row can never point
--   at another tenant's row, even if a component passes a foreign id (foreign-key checks ignore RLS, so a
--   plain `REFERENCES parent(id)` would both allow the link and reveal the id exists).
-- * Roles: `attachments_owner` (NOLOGIN, BYPASSRLS) owns every object; the migration runner creates it and
--   runs each migration after `SET ROLE attachments_owner`. `attachments_app` (LOGIN, NOSUPERUSER,
--   NOBYPASSRLS, not a member of the owner) is what the components connect as; it gets explicit, per-table
--   (often per-column) grants in the migration that creates the table, and nothing by default.
-- * The owner has BYPASSRLS only so that the few SECURITY DEFINER functions below (login before a tenant is
--   known, cross-tenant scan queue) can work; FORCE ROW LEVEL SECURITY keeps any other owner-like role that
--   is not BYPASSRLS under the policies. Nobody logs in as the owner.
-- * Functions are not executable by PUBLIC in this database (default privileges below): every function the
--   app may call is granted explicitly, and every SECURITY DEFINER function pins its search_path.

-- Only the owner creates objects; the app may resolve names in the schema, nobody else may.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO attachments_app;

ALTER DEFAULT PRIVILEGES FOR ROLE attachments_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Current time in epoch milliseconds (transaction start, so every row written by one transaction agrees).
CREATE FUNCTION app_now_ms() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM now()) * 1000)::bigint;

-- The tenant of the current transaction, or NULL. Equivalent to
-- NULLIF(current_setting('app.current_tenant_id', true), '')::uuid, except that a malformed value also yields
-- NULL instead of raising: a policy must fail closed, never turn a bad header into an error path.
CREATE FUNCTION app_current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE
        WHEN current_setting('app.current_tenant_id', true)
             ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
        THEN current_setting('app.current_tenant_id', true)::uuid
    END;

GRANT EXECUTE ON FUNCTION app_now_ms() TO attachments_app;
GRANT EXECUTE ON FUNCTION app_current_tenant_id() TO attachments_app;

-- Keeps updated_at honest without trusting every UPDATE statement to set it.
CREATE FUNCTION app_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := app_now_ms();
    RETURN NEW;
END;
$$;
GRANT EXECUTE ON FUNCTION app_touch_updated_at() TO attachments_app;
