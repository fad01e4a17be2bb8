-- SQLite refuses to drop an indexed column, so the index goes first (the seed's own
-- down fails here on SQLite). DROP COLUMN needs SQLite 3.35 (Debian 12 has 3.40).
drop index if exists "cluster_data_synced_index";
alter table "cluster_data" drop column "synced_at";
alter table "cluster_data" drop column "synced";
