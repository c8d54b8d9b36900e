-- The pages of a site with clicks over a range: clicks, rage clicks and dead clicks, the
-- 200 most clicked first (the Heatmap page lists them to pick one; a site's long tail of
-- pages clicked once is no map worth drawing).
-- Reads heatmap_daily (newest version of each bin's row: argMax, since FINAL does not pass
-- through the site's views on 18.16, which answer the rows of every version).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT page, sum(c) AS clicks, sum(r) AS rage_clicks, sum(d) AS dead_clicks
FROM
(
    SELECT
        page,
        argMax(heatmap_daily.clicks, version) AS c,
        argMax(heatmap_daily.rage_clicks, version) AS r,
        argMax(heatmap_daily.dead_clicks, version) AS d
    FROM heatmap_daily
    WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY page, day, device_class, x_bin, y_bin
)
GROUP BY page
ORDER BY clicks DESC, page
LIMIT 200
