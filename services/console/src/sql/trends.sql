-- The site per day over a range: sessions, visitors and page views (v_sessions_daily),
-- form starts and conversions (form_daily, newest version of each row). Days without
-- figures are filled in by the console. (The day is made text inside each side: 18.16
-- loses a function of a USING column after the join.)
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    day,
    sessions,
    visitors,
    pageviews,
    starts,
    conversions
FROM
(
    SELECT toString(day) AS day, sessions, visitors, pageviews
    FROM v_sessions_daily
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
) AS traffic
ANY FULL OUTER JOIN
(
    SELECT toString(day) AS day, sum(s) AS starts, sum(c) AS conversions
    FROM
    (
        SELECT day, argMax(form_daily.starts, version) AS s, argMax(form_daily.conversions, version) AS c
        FROM form_daily
        WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, form_key
    )
    GROUP BY day
) AS forms USING (day)
ORDER BY day
