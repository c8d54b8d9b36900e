-- Recomputes the errors_daily rows of one site and day for the pages a batch touched: per
-- error, the sessions it fired in and how many of them abandoned a form or converted.
-- Parameters: {site:String}, {day:Date}, {keys:Array(String)} (pages).
INSERT INTO errors_daily
SELECT
    site,
    day,
    page,
    message,
    source,
    sum(errors) AS errors,
    count() AS sessions,
    countIf(abandoned_form = 1) AS sessions_abandoning_a_form,
    countIf(converted = 1) AS sessions_converting,
    count() AS version
FROM session_errors FINAL
WHERE site = {site:String} AND day = {day:Date} AND page IN {keys:Array(String)}
GROUP BY site, day, page, message, source
