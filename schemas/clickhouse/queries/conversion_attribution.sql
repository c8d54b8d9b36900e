-- Conversion attribution: which form earned each conversion and its revenue over a date
-- range (form '' = conversions with no form before them; transactions already counted
-- once). Shares of the total are left to the dashboard: a second pass over the rollup for
-- the total would double the cost. Reads conversions_daily (newest version of each day's row).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT form_key AS form, sum(c) AS conversions, sum(r) AS revenue
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
ORDER BY revenue DESC, form
