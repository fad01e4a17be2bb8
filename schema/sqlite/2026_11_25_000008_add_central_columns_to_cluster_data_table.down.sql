-- DROP COLUMN (SQLite 3.35+) refuses an indexed column: the index goes first.
drop index "cluster_data_duplicate_of_index";
alter table "cluster_data" drop column "duplicate_of";
alter table "cluster_data" drop column "received_from";
