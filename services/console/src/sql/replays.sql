-- The sessions of a range that have a replay (v_replays), newest first, at most 500.
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    session_id,
    toString(day) AS day,
    toString(started_at) AS started_at,
    duration_s,
    pages,
    forms_started,
    converted,
    bytes
FROM v_replays
WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
ORDER BY started_at DESC, session_id
LIMIT 500
