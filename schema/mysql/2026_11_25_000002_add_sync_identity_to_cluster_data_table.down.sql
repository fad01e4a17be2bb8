-- Dropping the columns drops the uuid index; the composite index goes explicitly.
alter table `cluster_data` drop index `cluster_data_duck_id_message_id_created_at_index`, drop `uuid`, drop `source_node`;
