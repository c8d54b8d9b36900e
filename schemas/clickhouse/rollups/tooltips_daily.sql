-- Recomputes the tooltips_daily rows of one site and day for the triggers a batch touched.
-- Parameters: {site:String}, {day:Date}, {keys:Array(String)} (triggers).
INSERT INTO tooltips_daily
SELECT
    site,
    day,
    trigger,
    device_class,
    country,
    browser_family,
    countIf(action = 'impression') AS impressions,
    countIf(action = 'click') AS clicks,
    countIf(action = 'close') AS closes,
    count() AS version
FROM tooltip_events FINAL
WHERE site = {site:String} AND day = {day:Date} AND trigger IN {keys:Array(String)}
GROUP BY site, day, trigger, device_class, country, browser_family
