-- The seed's sync columns, as Laravel 11's SQLite grammar adds them (SQLite ignores ->after()).
alter table "cluster_data" add column "synced" tinyint(1);
alter table "cluster_data" add column "synced_at" datetime;
create index "cluster_data_synced_index" on "cluster_data" ("synced");
