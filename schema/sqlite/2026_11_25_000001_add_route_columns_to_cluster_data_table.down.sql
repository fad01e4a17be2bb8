-- Reverses the rebuild: drops origin/destination and makes payload, hops and duck_type
-- NOT NULL again. Rows with a NULL in any of those three cannot go back; rather than
-- invent values or drop rows, this rollback fails and changes nothing. Delete or fix
-- those rows first if the rollback is really wanted.
create temp table "opendms_guard" ("failed" text);
create temp trigger "opendms_guard_shape" before insert on "opendms_guard" when new."failed" = 'shape' begin
    select raise(abort, 'cluster_data does not have the columns and indexes this rollback expects (a later migration applied, or a hand-made change): roll back the later migrations or remove the extra columns/indexes first');
end;
create temp trigger "opendms_guard_nulls" before insert on "opendms_guard" when new."failed" = 'nulls' begin
    select raise(abort, 'cluster_data has rows with a NULL payload, hops or duck_type, which the old schema cannot hold: refusing to roll back (no row was changed)');
end;
insert into "opendms_guard" ("failed")
select 'shape' where
    (select count(*) from pragma_table_info('cluster_data')) <> 14
    or (select count(*) from pragma_table_info('cluster_data') where name in
        ('id', 'created_at', 'updated_at', 'duck_id', 'topic', 'message_id', 'payload', 'path',
         'hops', 'duck_type', 'synced', 'synced_at', 'origin', 'destination')) <> 14
    or exists (select 1 from sqlite_master where type = 'index' and tbl_name = 'cluster_data'
               and name not like 'sqlite_autoindex%' and name <> 'cluster_data_synced_index');
insert into "opendms_guard" ("failed")
select 'nulls' where exists (select 1 from "cluster_data"
    where "payload" is null or "hops" is null or "duck_type" is null);
drop table "opendms_guard";

create table "cluster_data_old" ("id" integer primary key autoincrement not null, "created_at" datetime, "updated_at" datetime, "duck_id" varchar not null, "topic" varchar not null, "message_id" varchar not null, "payload" text not null, "path" text, "hops" integer not null, "duck_type" integer not null, "synced" tinyint(1), "synced_at" datetime);

insert into "cluster_data_old" ("id", "created_at", "updated_at", "duck_id", "topic", "message_id", "payload", "path", "hops", "duck_type", "synced", "synced_at")
select "id", "created_at", "updated_at", "duck_id", "topic", "message_id", "payload", "path", "hops", "duck_type", "synced", "synced_at" from "cluster_data";

insert into "sqlite_sequence" ("name", "seq")
select 'cluster_data_old', 0 where not exists (select 1 from "sqlite_sequence" where "name" = 'cluster_data_old');
update "sqlite_sequence" set "seq" = max("seq", coalesce((select "seq" from "sqlite_sequence" where "name" = 'cluster_data'), 0))
where "name" = 'cluster_data_old';

drop table "cluster_data";
alter table "cluster_data_old" rename to "cluster_data";
create index "cluster_data_synced_index" on "cluster_data" ("synced");
