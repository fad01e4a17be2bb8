-- Dropping the columns drops their constraint and indexes too.
alter table "cluster_data" drop column "uuid", drop column "source_node";
