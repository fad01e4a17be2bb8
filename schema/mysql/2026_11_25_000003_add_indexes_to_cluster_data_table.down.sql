alter table `cluster_data` drop index `cluster_data_created_at_index`, drop index `cluster_data_duck_id_index`, drop index `cluster_data_topic_id_index`;
