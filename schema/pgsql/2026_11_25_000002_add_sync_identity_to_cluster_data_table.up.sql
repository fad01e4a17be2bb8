-- The permanent sync identity: uuid is given by the node that first stored the record and
-- never changes (the idempotency key of every push); source_node names the node that sent
-- it. The (duck_id, message_id, created_at) index lets the central server recognise a
-- retried POST from a seed field node, which sends no uuid.
alter table "cluster_data" add column "uuid" varchar(36) null, add column "source_node" varchar(64) null;
alter table "cluster_data" add constraint "cluster_data_uuid_unique" unique ("uuid");
create index "cluster_data_duck_id_message_id_created_at_index" on "cluster_data" ("duck_id", "message_id", "created_at");
