-- One site's way in for the console (`exatom-console grant-sites`): views of the tables the
-- console reads, filtered to the site (database PIPELINE_site_SITE, read only by the console's
-- reader), and Distributed tables of the same names over them (database PIPELINE_console_SITE,
-- the only one the site's console user may open). SITE is a registered client code
-- ([A-Za-z0-9_-], checked), DB the pipeline's database.
CREATE DATABASE IF NOT EXISTS `PIPELINE_site_SITE`;
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.form_daily AS SELECT * FROM `PIPELINE`.form_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.form_segment_daily AS SELECT * FROM `PIPELINE`.form_segment_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.field_daily AS SELECT * FROM `PIPELINE`.field_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.conversions_daily AS SELECT * FROM `PIPELINE`.conversions_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.tooltips_daily AS SELECT * FROM `PIPELINE`.tooltips_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.conversions AS SELECT * FROM `PIPELINE`.conversions WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.events AS SELECT * FROM `PIPELINE`.events WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.heatmap_daily AS SELECT * FROM `PIPELINE`.heatmap_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.scroll_daily AS SELECT * FROM `PIPELINE`.scroll_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.errors_daily AS SELECT * FROM `PIPELINE`.errors_daily WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.session_errors AS SELECT * FROM `PIPELINE`.session_errors WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.replay_batches AS SELECT * FROM `PIPELINE`.replay_batches WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.v_replays AS SELECT * FROM `PIPELINE`.v_replays WHERE site = 'SITE';
CREATE VIEW IF NOT EXISTS `PIPELINE_site_SITE`.v_sessions_daily AS
SELECT site, day, count() AS sessions, uniqExact(visitor_id) AS visitors, sum(pageviews) AS pageviews,
       avg(duration_ms) / 1000 AS avg_session_duration_s
FROM `PIPELINE`.sessions FINAL WHERE site = 'SITE' GROUP BY site, day;
CREATE DATABASE IF NOT EXISTS `PIPELINE_console_SITE`;
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.form_daily AS `PIPELINE`.form_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'form_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.form_segment_daily AS `PIPELINE`.form_segment_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'form_segment_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.field_daily AS `PIPELINE`.field_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'field_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.conversions_daily AS `PIPELINE`.conversions_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'conversions_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.tooltips_daily AS `PIPELINE`.tooltips_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'tooltips_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.conversions AS `PIPELINE`.conversions ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'conversions');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.events AS `PIPELINE`.events ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'events');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.heatmap_daily AS `PIPELINE`.heatmap_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'heatmap_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.scroll_daily AS `PIPELINE`.scroll_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'scroll_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.errors_daily AS `PIPELINE`.errors_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'errors_daily');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.session_errors AS `PIPELINE`.session_errors ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'session_errors');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.replay_batches AS `PIPELINE`.replay_batches ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'replay_batches');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.v_replays AS `PIPELINE_site_SITE`.v_replays ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'v_replays');
CREATE TABLE IF NOT EXISTS `PIPELINE_console_SITE`.v_sessions_daily AS `PIPELINE_site_SITE`.v_sessions_daily ENGINE = Distributed(exatom_console, 'PIPELINE_site_SITE', 'v_sessions_daily')
