SELECT `ranked`.`series_id`, `ranked`.`date`, `ranked`.`value` 
FROM (SELECT `latest_fred_indicators`.`series_id` AS `series_id`, `latest_fred_indicators`.`date` AS `date`, `latest_fred_indicators`.`value` AS `value`, row_number() OVER (PARTITION BY `latest_fred_indicators`.`series_id` ORDER BY `latest_fred_indicators`.`date` DESC) AS `_date_rank` 
FROM (SELECT `fred_indicators_versions`.`series_id` AS `series_id`, `fred_indicators_versions`.`date` AS `date`, `fred_indicators_versions`.`value` AS `value` 
FROM (SELECT `fred_indicators`.`series_id` AS `series_id`, `fred_indicators`.`date` AS `date`, `fred_indicators`.`value` AS `value`, row_number() OVER (PARTITION BY `fred_indicators`.`id` ORDER BY `fred_indicators`.`ingested_at` IS NULL ASC, `fred_indicators`.`ingested_at` DESC NULLS LAST) AS `_version_rank` 
FROM `fred_indicators` 
WHERE `fred_indicators`.`date` >= @since AND `fred_indicators`.`series_id` IN UNNEST(@series_ids)) AS `fred_indicators_versions` 
WHERE `fred_indicators_versions`.`_version_rank` = 1) AS `latest_fred_indicators`) AS `ranked` 
WHERE `ranked`.`_date_rank` = 1 ORDER BY `ranked`.`series_id`
