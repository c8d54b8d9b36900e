-- How far down each page visitors got over a range, per page and device class: page views,
-- how many reached 25, 50, 75 and 100 % of the page, and those as shares of the views. The
-- 200 most viewed first.
-- Reads scroll_daily (newest version of each row, as heatmap_pages.sql).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT
    page,
    device_class,
    views,
    reached_25,
    reached_50,
    reached_75,
    reached_100,
    round(if(views = 0, 0, reached_25 / views), 4) AS reached_25_rate,
    round(if(views = 0, 0, reached_50 / views), 4) AS reached_50_rate,
    round(if(views = 0, 0, reached_75 / views), 4) AS reached_75_rate,
    round(if(views = 0, 0, reached_100 / views), 4) AS reached_100_rate
FROM
(
    SELECT
        page,
        device_class,
        sum(v) AS views,
        sum(r25) AS reached_25,
        sum(r50) AS reached_50,
        sum(r75) AS reached_75,
        sum(r100) AS reached_100
    FROM
    (
        SELECT
            page,
            device_class,
            argMax(scroll_daily.views, version) AS v,
            argMax(scroll_daily.reached_25, version) AS r25,
            argMax(scroll_daily.reached_50, version) AS r50,
            argMax(scroll_daily.reached_75, version) AS r75,
            argMax(scroll_daily.reached_100, version) AS r100
        FROM scroll_daily
        WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
        GROUP BY page, day, device_class
    )
    GROUP BY page, device_class
)
ORDER BY views DESC, page, device_class
LIMIT 200
