-- 0006_monitoring: read-only views for operators, in schema `ops`, readable by members of the built-in
-- pg_monitor role (grant that to a human or an exporter, never to attachments_app).
-- Query text of other roles' sessions is shown only to pg_monitor/pg_read_all_stats members; that check is
-- made against the caller, so these views reveal nothing the caller could not already see.

CREATE SCHEMA ops;
REVOKE ALL ON SCHEMA ops FROM PUBLIC;
GRANT USAGE ON SCHEMA ops TO pg_monitor;

-- Connections by database, role, application and state, with the oldest state change and transaction in
-- each group ("idle in transaction" for minutes is the classic leak).
CREATE VIEW ops.connections_by_state AS
SELECT datname                             AS database,
       usename                             AS role,
       application_name,
       coalesce(state, 'unknown')          AS state,
       count(*)                            AS connections,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_locks,
       max(now() - state_change)           AS longest_in_state,
       max(now() - xact_start)             AS oldest_transaction
FROM pg_catalog.pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY datname, usename, application_name, coalesce(state, 'unknown');

-- Statements running (or transactions held open) for more than 5 seconds, longest first.
CREATE VIEW ops.long_running_queries AS
SELECT pid,
       datname                        AS database,
       usename                        AS role,
       application_name,
       client_addr,
       state,
       wait_event_type,
       wait_event,
       now() - query_start            AS query_duration,
       now() - xact_start             AS transaction_duration,
       left(query, 2000)              AS query
FROM pg_catalog.pg_stat_activity
WHERE backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND state IS DISTINCT FROM 'idle'
  AND (query_start < now() - interval '5 seconds' OR xact_start < now() - interval '5 seconds')
ORDER BY coalesce(xact_start, query_start);

-- Table bloat estimate for this schema's tables. Expected size = rows * (tuple header 24 B + line pointer 4 B
-- + average data width from pg_stats, rounded up to the 8-byte alignment) packed into pages of
-- (block_size - 24 B page header) * fillfactor; bloat = actual heap size - expected. It is an estimate (it
-- needs ANALYZE statistics and ignores TOAST); dead_tuple_ratio from the stats collector complements it.
-- pg_stats hides columns the caller may not SELECT, so the computation runs as the owner (SECURITY DEFINER)
-- and returns only sizes and counts.
CREATE FUNCTION ops.table_bloat_estimate()
    RETURNS TABLE (table_name text, live_tuples bigint, dead_tuples bigint, dead_tuple_ratio numeric,
                   table_bytes bigint, expected_bytes bigint, bloat_bytes bigint, bloat_ratio numeric,
                   last_vacuum timestamptz, last_autovacuum timestamptz, last_analyze timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH bs AS (SELECT current_setting('block_size')::numeric AS block_size),
    widths AS (
        SELECT s.schemaname, s.tablename, sum((1 - s.null_frac) * s.avg_width) AS data_width
        FROM pg_stats s WHERE s.schemaname = 'public'
        GROUP BY s.schemaname, s.tablename
    ),
    t AS (
        SELECT c.oid, c.relname, c.relpages, greatest(c.reltuples, 0) AS reltuples,
               coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::numeric
                         FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 100) AS fillfactor,
               w.data_width
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN widths w ON w.tablename = c.relname
        WHERE c.relkind = 'r'
    ),
    e AS (
        SELECT t.*, bs.block_size,
               (t.relpages * bs.block_size)::bigint AS actual,
               CASE WHEN t.data_width IS NULL THEN NULL ELSE
                   (ceil(t.reltuples / greatest(1, floor((bs.block_size - 24) * t.fillfactor / 100
                        / (28 + ceil(t.data_width / 8) * 8)))) * bs.block_size)::bigint
               END AS expected
        FROM t, bs
    )
    SELECT e.relname::text,
           st.n_live_tup, st.n_dead_tup,
           round(st.n_dead_tup::numeric / nullif(st.n_live_tup + st.n_dead_tup, 0), 4),
           e.actual, e.expected,
           greatest(e.actual - e.expected, 0),
           round(greatest(e.actual - e.expected, 0)::numeric / nullif(e.actual, 0), 4),
           st.last_vacuum, st.last_autovacuum, st.last_analyze
    FROM e
    LEFT JOIN pg_stat_user_tables st ON st.relid = e.oid
    ORDER BY greatest(e.actual - coalesce(e.expected, e.actual), 0) DESC, e.relname
$$;

CREATE VIEW ops.table_bloat AS SELECT * FROM ops.table_bloat_estimate();

GRANT EXECUTE ON FUNCTION ops.table_bloat_estimate() TO pg_monitor;
GRANT SELECT ON ops.connections_by_state, ops.long_running_queries, ops.table_bloat TO pg_monitor;
