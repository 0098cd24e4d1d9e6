SELECT TIMESTAMP_BUCKET(`latest_events`.`mentioned_at`, INTERVAL 15 MINUTE, TIMESTAMP '1970-01-01 00:00:00+00') AS `bucket_start`, avg(`latest_events`.`risk_score`) AS `avg_risk`, max(`latest_events`.`risk_score`) AS `max_risk`, count(*) AS `event_count` 
FROM (SELECT `events_versions`.`mentioned_at` AS `mentioned_at`, `events_versions`.`event_type` AS `event_type`, `events_versions`.`risk_score` AS `risk_score` 
FROM (SELECT `events`.`mentioned_at` AS `mentioned_at`, `events`.`event_type` AS `event_type`, `events`.`risk_score` AS `risk_score`, row_number() OVER (PARTITION BY `events`.`id` ORDER BY `events`.`created_at` IS NULL ASC, `events`.`created_at` DESC NULLS LAST) AS `_version_rank` 
FROM `events` 
WHERE `events`.`mentioned_at` >= @start AND `events`.`mentioned_at` < @end) AS `events_versions` 
WHERE `events_versions`.`_version_rank` = 1) AS `latest_events` 
WHERE CAST(@event_type AS STRING) IS NULL OR `latest_events`.`event_type` = @event_type GROUP BY `bucket_start` ORDER BY `bucket_start`
