SELECT `ranked`.`indicator_id`, `ranked`.`country_code`, `ranked`.`date`, `ranked`.`value` 
FROM (SELECT `latest_world_bank`.`indicator_id` AS `indicator_id`, `latest_world_bank`.`country_code` AS `country_code`, `latest_world_bank`.`date` AS `date`, `latest_world_bank`.`value` AS `value`, row_number() OVER (PARTITION BY `latest_world_bank`.`indicator_id`, `latest_world_bank`.`country_code` ORDER BY `latest_world_bank`.`date` DESC) AS `_date_rank` 
FROM (SELECT `world_bank_versions`.`indicator_id` AS `indicator_id`, `world_bank_versions`.`country_code` AS `country_code`, `world_bank_versions`.`date` AS `date`, `world_bank_versions`.`value` AS `value` 
FROM (SELECT `world_bank`.`indicator_id` AS `indicator_id`, `world_bank`.`country_code` AS `country_code`, `world_bank`.`date` AS `date`, `world_bank`.`value` AS `value`, row_number() OVER (PARTITION BY `world_bank`.`id` ORDER BY `world_bank`.`ingested_at` IS NULL ASC, `world_bank`.`ingested_at` DESC NULLS LAST) AS `_version_rank` 
FROM `world_bank` 
WHERE `world_bank`.`date` >= @since) AS `world_bank_versions` 
WHERE `world_bank_versions`.`_version_rank` = 1) AS `latest_world_bank`) AS `ranked` 
WHERE `ranked`.`_date_rank` = 1 ORDER BY `ranked`.`indicator_id`, `ranked`.`country_code`
