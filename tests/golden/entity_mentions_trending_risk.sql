SELECT `latest_entity_mentions`.`entity_id`, coalesce(sum(exp(((-ln(2)) * (TIMESTAMP_DIFF(@as_of, `latest_entity_mentions`.`mentioned_at`, MICROSECOND) / 1000000)) / CAST(@half_life_seconds AS FLOAT64)) * `latest_events`.`risk_score`), 0.0) AS `score`, count(*) AS `mentions` 
FROM (SELECT `entity_mentions_versions`.`entity_id` AS `entity_id`, `entity_mentions_versions`.`event_id` AS `event_id`, `entity_mentions_versions`.`mentioned_at` AS `mentioned_at` 
FROM (SELECT `entity_mentions`.`entity_id` AS `entity_id`, `entity_mentions`.`event_id` AS `event_id`, `entity_mentions`.`mentioned_at` AS `mentioned_at`, row_number() OVER (PARTITION BY `entity_mentions`.`id` ORDER BY `entity_mentions`.`mentioned_at` DESC) AS `_version_rank` 
FROM `entity_mentions` 
WHERE `entity_mentions`.`mentioned_at` >= @window_start AND `entity_mentions`.`mentioned_at` <= @as_of) AS `entity_mentions_versions` 
WHERE `entity_mentions_versions`.`_version_rank` = 1) AS `latest_entity_mentions` LEFT OUTER JOIN (SELECT `events_versions`.`id` AS `id`, `events_versions`.`risk_score` AS `risk_score` 
FROM (SELECT `events`.`id` AS `id`, `events`.`risk_score` AS `risk_score`, row_number() OVER (PARTITION BY `events`.`id` ORDER BY `events`.`created_at` IS NULL ASC, `events`.`created_at` DESC NULLS LAST) AS `_version_rank` 
FROM `events` 
WHERE `events`.`mentioned_at` >= @events_start AND `events`.`mentioned_at` < @events_end) AS `events_versions` 
WHERE `events_versions`.`_version_rank` = 1) AS `latest_events` ON `latest_events`.`id` = `latest_entity_mentions`.`event_id` GROUP BY `latest_entity_mentions`.`entity_id` ORDER BY `score` DESC, `latest_entity_mentions`.`entity_id`
 LIMIT @limit
