-- Form funnel: for each form of a site over a date range, how many sessions viewed it,
-- started it, submitted it and converted, who left before starting and who started
-- without converting. Reads form_daily (newest version of each day's row).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    form,
    views,
    starts,
    submits,
    conversions,
    toInt64(views) - toInt64(starts) AS page_abandoners,
    toInt64(starts) - toInt64(conversions) AS initial_abandoners,
    round(if(views = 0, 0, starts / views), 4) AS start_rate,
    round(if(starts = 0, 0, conversions / starts), 4) AS conversion_rate
FROM
(
    SELECT form_key AS form, sum(v) AS views, sum(s) AS starts, sum(sb) AS submits, sum(c) AS conversions
    FROM
    (
        SELECT
            form_key,
            argMax(form_daily.views, version) AS v,
            argMax(form_daily.starts, version) AS s,
            argMax(form_daily.submits, version) AS sb,
            argMax(form_daily.conversions, version) AS c
        FROM form_daily
        WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, form_key
    )
    GROUP BY form_key
)
ORDER BY views DESC, form
