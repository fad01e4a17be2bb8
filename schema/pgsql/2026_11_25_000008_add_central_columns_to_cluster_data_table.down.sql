-- Dropping the columns drops the index with them.
alter table "cluster_data" drop column "duplicate_of", drop column "received_from";
