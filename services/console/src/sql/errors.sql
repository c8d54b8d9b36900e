-- Script errors over a range per page, message and script: how often they fired, in how
-- many sessions, and how many of those sessions then abandoned a form they had started or
-- converted. Those costing forms first, then the most frequent; the first 500.
-- Reads errors_daily (newest version of each row, as heatmap_pages.sql).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    page,
    message,
    source,
    sum(e) AS errors,
    sum(s) AS sessions,
    sum(a) AS sessions_abandoning_a_form,
    sum(c) AS sessions_converting
FROM
(
    SELECT
        page,
        message,
        source,
        argMax(errors_daily.errors, version) AS e,
        argMax(errors_daily.sessions, version) AS s,
        argMax(errors_daily.sessions_abandoning_a_form, version) AS a,
        argMax(errors_daily.sessions_converting, version) AS c
    FROM errors_daily
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY page, day, message, source
)
GROUP BY page, message, source
ORDER BY sessions_abandoning_a_form DESC, errors DESC, page, message, source
LIMIT 500
