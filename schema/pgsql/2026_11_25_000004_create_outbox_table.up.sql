-- The field node's outbox: one row per record still to be delivered to the central server.
-- lane: 0 live, 1 backlog. parked_at is set when delivery stopped for a reason an operator
-- must see (parked_reason); the (parked_at, lane, id) index serves "next unparked row in
-- order". Deleting a record deletes its outbox row.
create table "outbox" ("id" bigserial not null primary key, "cluster_data_id" bigint not null, "lane" smallint not null default 0, "created_at" timestamp(0) without time zone not null, "attempts" integer not null default 0, "next_attempt_at" timestamp(0) without time zone null, "last_attempt_at" timestamp(0) without time zone null, "last_error" text null, "parked_at" timestamp(0) without time zone null, "parked_reason" text null);
alter table "outbox" add constraint "outbox_cluster_data_id_unique" unique ("cluster_data_id");
alter table "outbox" add constraint "outbox_cluster_data_id_foreign" foreign key ("cluster_data_id") references "cluster_data" ("id") on delete cascade;
create index "outbox_parked_at_lane_id_index" on "outbox" ("parked_at", "lane", "id");
