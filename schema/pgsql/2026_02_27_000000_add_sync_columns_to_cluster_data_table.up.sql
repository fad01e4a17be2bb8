-- The seed's sync columns, as Laravel 11's PostgreSQL grammar adds them (->after() is
-- MySQL-only).
alter table "cluster_data" add column "synced" boolean null, add column "synced_at" timestamp(0) without time zone null;
create index "cluster_data_synced_index" on "cluster_data" ("synced");
