-- Adds origin/destination (route packets) and makes payload, hops and duck_type nullable
-- (route packets carry no Message; legacy gateways send no hops/duckType).
--
-- SQLite cannot change a column's nullability, so the table is rebuilt the way SQLite's
-- ALTER TABLE documentation prescribes: create the new table, copy every row with its id,
-- drop the old one, rename the new one, recreate the indexes. The runner turns
-- foreign_keys off around this migration (a DROP TABLE would otherwise cascade into
-- outbox) and runs PRAGMA foreign_key_check before it commits.
--
-- Guard: the copy below names the columns it knows. If cluster_data has any other column
-- or index (a later migration applied, or a hand-made change), stop rather than lose it.
create temp table "opendms_guard" ("failed" text);
create temp trigger "opendms_guard_shape" before insert on "opendms_guard" when new."failed" = 'shape' begin
    select raise(abort, 'cluster_data does not have the columns and indexes this migration expects (a later migration applied, or a hand-made change): roll back the later migrations or remove the extra columns/indexes first');
end;
insert into "opendms_guard" ("failed")
select 'shape' where
    (select count(*) from pragma_table_info('cluster_data')) <> 12
    or (select count(*) from pragma_table_info('cluster_data') where name in
        ('id', 'created_at', 'updated_at', 'duck_id', 'topic', 'message_id', 'payload', 'path',
         'hops', 'duck_type', 'synced', 'synced_at')) <> 12
    or exists (select 1 from sqlite_master where type = 'index' and tbl_name = 'cluster_data'
               and name not like 'sqlite_autoindex%' and name <> 'cluster_data_synced_index');
drop table "opendms_guard";

create table "cluster_data_new" ("id" integer primary key autoincrement not null, "created_at" datetime, "updated_at" datetime, "duck_id" varchar not null, "topic" varchar not null, "message_id" varchar not null, "payload" text, "path" text, "hops" integer, "duck_type" integer, "synced" tinyint(1), "synced_at" datetime, "origin" varchar(32), "destination" varchar(32));

insert into "cluster_data_new" ("id", "created_at", "updated_at", "duck_id", "topic", "message_id", "payload", "path", "hops", "duck_type", "synced", "synced_at")
select "id", "created_at", "updated_at", "duck_id", "topic", "message_id", "payload", "path", "hops", "duck_type", "synced", "synced_at" from "cluster_data";

-- AUTOINCREMENT never reuses an id: carry the old table's high-water mark over (it may be
-- above max(id) when the newest rows were deleted, and there is no row at all when the
-- table is empty).
insert into "sqlite_sequence" ("name", "seq")
select 'cluster_data_new', 0 where not exists (select 1 from "sqlite_sequence" where "name" = 'cluster_data_new');
update "sqlite_sequence" set "seq" = max("seq", coalesce((select "seq" from "sqlite_sequence" where "name" = 'cluster_data'), 0))
where "name" = 'cluster_data_new';

drop table "cluster_data";
alter table "cluster_data_new" rename to "cluster_data";
create index "cluster_data_synced_index" on "cluster_data" ("synced");
