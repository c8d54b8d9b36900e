-- Recomputes the scroll_daily rows of one site and day for the pages a batch touched.
-- Parameters: {site:String}, {day:Date}, {keys:Array(String)} (pages).
INSERT INTO scroll_daily
SELECT
    site,
    day,
    page,
    device_class,
    count() AS views,
    countIf(depth >= 25) AS reached_25,
    countIf(depth >= 50) AS reached_50,
    countIf(depth >= 75) AS reached_75,
    countIf(depth >= 100) AS reached_100,
    count() AS version
FROM page_scrolls FINAL
WHERE site = {site:String} AND day = {day:Date} AND page IN {keys:Array(String)}
GROUP BY site, day, page, device_class
