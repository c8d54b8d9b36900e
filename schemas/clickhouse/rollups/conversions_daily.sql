-- Recomputes the conversions_daily rows of one site and day for the attributed forms a
-- batch touched (and the days sharing a transaction id with it). A transaction id's revenue
-- counts once per site, on its earliest conversion (ties broken by event id); a conversion
-- without a transaction id stands for itself. `version` = rows + other conversions of their
-- transactions, so it grows whenever the figures can change.
-- Parameters: {site:String}, {day:Date}, {keys:Array(String)} (attributed form keys).
INSERT INTO conversions_daily
SELECT
    site,
    day,
    form_key,
    sum(counts) AS conversions,
    sumIf(revenue, transaction_id = '' OR first_key = concat(toString(event_time_ms + 1000000000000000), event_id)) AS revenue,
    sum(if(transaction_id = '', 1, peers)) AS version
FROM
(
    SELECT site, day, form_key, device_class, country, browser_family, counts, revenue,
           transaction_id, event_time_ms, event_id
    FROM conversions FINAL
    WHERE site = {site:String} AND day = {day:Date} AND form_key IN {keys:Array(String)}
) AS figures
ANY LEFT JOIN
(
    SELECT
        transaction_id,
        min(concat(toString(event_time_ms + 1000000000000000), event_id)) AS first_key,
        count() AS peers
    FROM conversions FINAL
    WHERE site = {site:String} AND transaction_id != '' AND transaction_id IN
    (
        SELECT transaction_id FROM conversions
        WHERE site = {site:String} AND day = {day:Date} AND form_key IN {keys:Array(String)}
    )
    GROUP BY transaction_id
) AS joined USING (transaction_id)
GROUP BY site, day, form_key
