-- Session replay (README, "Session replay"): one row per batch a page's recorder sent,
-- after the browser's privacy rules and the anonymizer's second pass. A page's batches
-- read back in order by (page_view_id, seq); a session's pages are the `page_view` events
-- of the session, whose `event_id` is the batch's `page_view_id`.
CREATE TABLE IF NOT EXISTS replay_batches (
    site {lc},
    day Date,
    page_view_id String,
    seq UInt32,
    received_ms Int64,
    skew_ms Int64,
    first_ms Int64,
    last_ms Int64,
    event_count UInt32,
    -- The events' JSON size before compression.
    bytes UInt32,
    -- The rrweb events, a JSON array, gzipped.
    events String,
    -- The first day the row is no longer kept: the site's `replay_days` after `day`, at
    -- most 90 (the retention task deletes it then; the TTL keeps the 90 of every table).
    expires Date,
    -- What the second pass had to fix in this batch.
    findings UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site, day, page_view_id, seq)
{ttl:day};

-- The sessions that have a replay, with what the console lists them by. `bytes`: the
-- replay's JSON size before compression.
CREATE VIEW IF NOT EXISTS v_replays AS
SELECT
    site,
    day,
    session_id,
    toDateTime(intDiv(started_ms, 1000)) AS started_at,
    toUInt32(intDiv(duration_ms, 1000)) AS duration_s,
    pageviews AS pages,
    forms_started,
    converted,
    bytes
FROM
(
    SELECT site, day, session_id, started_ms, duration_ms, pageviews, forms_started, converted
    FROM sessions FINAL
) AS s
ANY INNER JOIN
(
    SELECT site, session_id, sum(page_bytes) AS bytes
    FROM
    (
        SELECT site, page_view_id, sum(bytes) AS page_bytes
        FROM replay_batches FINAL
        GROUP BY site, page_view_id
    ) AS pages
    ANY INNER JOIN
    (
        SELECT site, event_id AS page_view_id, session_id
        FROM events FINAL
        WHERE kind = 'page_view'
    ) AS views USING (site, page_view_id)
    GROUP BY site, session_id
) AS replays USING (site, session_id);
