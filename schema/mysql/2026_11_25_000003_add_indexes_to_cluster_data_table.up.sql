-- (topic, id): a topic's records in id order (the API's listing and paging);
-- (duck_id): one device's records; (created_at): time ranges and retention.
alter table `cluster_data` add index `cluster_data_topic_id_index`(`topic`, `id`), add index `cluster_data_duck_id_index`(`duck_id`), add index `cluster_data_created_at_index`(`created_at`);
