-- The central server's bookkeeping: received_from names the node whose token delivered the
-- row ("default" for the shared CENTRAL_DMS_TOKEN); duplicate_of links a mesh duplicate
-- (the same packet heard and sent by another field node) to the original row, so it is kept
-- but not counted twice. Both stay NULL on field nodes.
alter table "cluster_data" add column "received_from" varchar(64) null, add column "duplicate_of" bigint null;
create index "cluster_data_duplicate_of_index" on "cluster_data" ("duplicate_of");
