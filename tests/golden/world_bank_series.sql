SELECT `latest_world_bank`.`date`, `latest_world_bank`.`value` 
FROM (SELECT `world_bank_versions`.`date` AS `date`, `world_bank_versions`.`value` AS `value` 
FROM (SELECT `world_bank`.`date` AS `date`, `world_bank`.`value` AS `value`, row_number() OVER (PARTITION BY `world_bank`.`id` ORDER BY `world_bank`.`ingested_at` IS NULL ASC, `world_bank`.`ingested_at` DESC NULLS LAST) AS `_version_rank` 
FROM `world_bank` 
WHERE `world_bank`.`date` >= @start AND `world_bank`.`date` < @end AND `world_bank`.`indicator_id` = @indicator_id AND `world_bank`.`country_code` = @country_code) AS `world_bank_versions` 
WHERE `world_bank_versions`.`_version_rank` = 1) AS `latest_world_bank` ORDER BY `latest_world_bank`.`date`
