-- Which forms the sessions that hit each error then abandoned, over a range: per page,
-- message, script and form key (form_daily's), the sessions. A session that abandoned two
-- forms counts for each.
-- Reads session_errors (newest version of each session's row, as heatmap_pages.sql).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT page, message, source, arrayJoin(forms) AS form, uniqExact(session_id) AS sessions
FROM
(
    SELECT
        page,
        message,
        source,
        session_id,
        argMax(abandoned_forms, version) AS forms
    FROM session_errors
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY page, day, message, source, session_id
)
GROUP BY page, message, source, form
ORDER BY page, message, source, sessions DESC, form
