-- Recomputes the heatmap_daily rows of one site and day for the pages a batch touched.
-- Parameters: {site:String}, {day:Date}, {keys:Array(String)} (pages).
INSERT INTO heatmap_daily
SELECT
    site,
    day,
    page,
    device_class,
    x_bin,
    y_bin,
    sum(clicks) AS clicks,
    sum(rage_clicks) AS rage_clicks,
    sum(dead_clicks) AS dead_clicks,
    count() AS version
FROM click_bins FINAL
WHERE site = {site:String} AND day = {day:Date} AND page IN {keys:Array(String)}
GROUP BY site, day, page, device_class, x_bin, y_bin
