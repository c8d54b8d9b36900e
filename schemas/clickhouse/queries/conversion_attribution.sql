-- Conversion attribution: which form earned each conversion and its revenue over a date
-- range (form '' = conversions with no form before them), with each form's share of the
-- site's revenue (transactions already counted once). Reads conversions_daily (newest
-- version of each day's row). Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    form,
    conversions,
    revenue,
    round(if(total = 0, 0, revenue / total), 4) AS revenue_share
FROM
(
    SELECT form_key AS form, sum(c) AS conversions, sum(r) AS revenue, 1 AS one
    FROM
    (
        SELECT
            form_key,
            argMax(conversions_daily.conversions, version) AS c,
            argMax(conversions_daily.revenue, version) AS r
        FROM conversions_daily
        WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, form_key
    )
    GROUP BY form_key
) AS figures
ANY LEFT JOIN
(
    SELECT sum(r) AS total, 1 AS one
    FROM
    (
        SELECT argMax(conversions_daily.revenue, version) AS r
        FROM conversions_daily
        WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY day, form_key
    )
) AS joined USING (one)
ORDER BY revenue DESC, form
