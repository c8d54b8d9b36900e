-- One page's clicks over a range per device class and heatmap bin (2 % of the document's
-- width by 25 CSS pixels of its height), top to bottom: the Heatmap page draws one device
-- class and offers the others.
-- Reads heatmap_daily (newest version of each bin's row, as heatmap_pages.sql).
-- Parameters: {site:String}, {page:String}, {from:Date}, {to:Date}.
SELECT device_class, x_bin, y_bin, sum(c) AS clicks, sum(r) AS rage_clicks, sum(d) AS dead_clicks
FROM
(
    SELECT
        device_class,
        x_bin,
        y_bin,
        argMax(heatmap_daily.clicks, version) AS c,
        argMax(heatmap_daily.rage_clicks, version) AS r,
        argMax(heatmap_daily.dead_clicks, version) AS d
    FROM heatmap_daily
    WHERE site = {site:String} AND page = {page:String}
      AND day >= {from:Date} AND day <= {to:Date}
    GROUP BY day, device_class, x_bin, y_bin
)
GROUP BY device_class, x_bin, y_bin
ORDER BY device_class, y_bin, x_bin
