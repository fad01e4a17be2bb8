-- Mesh duplicates: each further copy of a message already stored (same DeviceID,
-- MessageID and payload within the duplicate window) is counted here instead of becoming
-- a second record. Deleting the record deletes its duplicates. The duplicate lookup
-- itself uses cluster_data_duck_id_message_id_created_at_index (see schema/README.md).
create table "mesh_duplicates" ("id" integer primary key autoincrement not null, "cluster_data_id" integer not null, "received_at" datetime not null, "hops" integer, foreign key("cluster_data_id") references "cluster_data"("id") on delete cascade);
create index "mesh_duplicates_cluster_data_id_index" on "mesh_duplicates" ("cluster_data_id");
