-- Reporting data outlives event data (README, "Retention"): the daily figures per site,
-- form and field — no visitor, session or segment in them — are kept while the site is a
-- customer. Servers with TTL drop the 90-day TTL of those tables; on 18.16 the retention
-- task stops trimming them (it knows only the tables of event data). Rows already removed
-- do not come back: a database that ran the 90-day retention before this migration holds
-- reporting data from 90 days before the migration onwards.
{remove_ttl:form_daily};
{remove_ttl:field_daily};
{remove_ttl:conversions_daily};

-- Sites that left (`exatom-admin delete-site`): the services drop every record of a site
-- named here, so that events still in the topics do not bring its rows back. A site code and
-- when it was deleted, nothing else; kept after the site's data is gone.
CREATE TABLE IF NOT EXISTS deleted_sites (
    site String,
    deleted_at_ms Int64
) ENGINE = ReplacingMergeTree(deleted_at_ms)
ORDER BY site;
