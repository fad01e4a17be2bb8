-- (topic, id): a topic's records in id order (the API's listing and paging);
-- (duck_id): one device's records; (created_at): time ranges and retention.
create index "cluster_data_topic_id_index" on "cluster_data" ("topic", "id");
create index "cluster_data_duck_id_index" on "cluster_data" ("duck_id");
create index "cluster_data_created_at_index" on "cluster_data" ("created_at");
