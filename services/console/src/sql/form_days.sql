-- Views per form and day over a range: the Forms page's trend sparklines.
-- Reads form_daily (newest version of each day's row).
-- Parameters: {site:String}, {from:Date}, {to:Date}.
SELECT form_key AS form, toString(day) AS day, argMax(form_daily.views, version) AS views
FROM form_daily
WHERE site = {site:String} AND day >= {from:Date} AND day <= {to:Date}
GROUP BY form_key, day
ORDER BY form_key, day
