-- SQLite refuses to drop an indexed column: indexes first.
drop index if exists "cluster_data_duck_id_message_id_created_at_index";
drop index if exists "cluster_data_uuid_unique";
alter table "cluster_data" drop column "source_node";
alter table "cluster_data" drop column "uuid";
