-- Dropping the column drops its index too.
alter table "cluster_data" drop column "synced", drop column "synced_at";
