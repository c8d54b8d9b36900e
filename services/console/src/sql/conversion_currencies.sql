-- Conversions and revenue per attributed form and currency over a range (form '' = not
-- attributable), counted as conversions_daily counts them: each conversion row's newest
-- version, a transaction id's revenue once per site, on its earliest conversion (ties by
-- event id). The rollups sum revenue across currencies; this splits it.
-- Reads conversions (event level, the site's rows only).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT form, currency, sum(c) AS conversions, sumIf(r, transaction_id = '' OR first_key = key) AS revenue
FROM
(
    SELECT
        event_id,
        argMax(form_key, version) AS form,
        argMax(currency, version) AS currency,
        argMax(counts, version) AS c,
        argMax(revenue, version) AS r,
        argMax(transaction_id, version) AS transaction_id,
        concat(toString(argMax(event_time_ms, version) + 1000000000000000), event_id) AS key
    FROM conversions
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY event_id
) AS figures
ANY LEFT JOIN
(
    SELECT transaction_id, min(concat(toString(event_time_ms + 1000000000000000), event_id)) AS first_key
    FROM conversions
    WHERE site = {site:String} AND transaction_id != ''
    GROUP BY transaction_id
) AS firsts USING (transaction_id)
GROUP BY form, currency
ORDER BY revenue DESC, form, currency
