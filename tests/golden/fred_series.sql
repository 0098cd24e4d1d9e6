SELECT `latest_fred_indicators`.`date`, `latest_fred_indicators`.`value` 
FROM (SELECT `fred_indicators_versions`.`date` AS `date`, `fred_indicators_versions`.`value` AS `value` 
FROM (SELECT `fred_indicators`.`date` AS `date`, `fred_indicators`.`value` AS `value`, row_number() OVER (PARTITION BY `fred_indicators`.`id` ORDER BY `fred_indicators`.`ingested_at` IS NULL ASC, `fred_indicators`.`ingested_at` DESC NULLS LAST) AS `_version_rank` 
FROM `fred_indicators` 
WHERE `fred_indicators`.`date` >= @start AND `fred_indicators`.`date` < @end AND `fred_indicators`.`series_id` = @series_id) AS `fred_indicators_versions` 
WHERE `fred_indicators_versions`.`_version_rank` = 1) AS `latest_fred_indicators` ORDER BY `latest_fred_indicators`.`date`
