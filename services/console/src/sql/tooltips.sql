-- Hesitation tooltips over a range per trigger: impressions, clicks and closes.
-- Reads tooltips_daily (newest version of each row).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT trigger, sum(i) AS impressions, sum(c) AS clicks, sum(x) AS closes
FROM
(
    SELECT
        trigger,
        argMax(tooltips_daily.impressions, version) AS i,
        argMax(tooltips_daily.clicks, version) AS c,
        argMax(tooltips_daily.closes, version) AS x
    FROM tooltips_daily
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY trigger, day, device_class, country, browser_family
)
GROUP BY trigger
ORDER BY impressions DESC, trigger
