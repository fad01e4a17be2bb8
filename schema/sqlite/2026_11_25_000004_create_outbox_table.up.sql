-- The field node's outbox: one row per record still to be delivered to the central server.
-- lane: 0 live, 1 backlog. parked_at is set when delivery stopped for a reason an operator
-- must see (parked_reason); the (parked_at, lane, id) index serves "next unparked row in
-- order". Deleting a record deletes its outbox row.
create table "outbox" ("id" integer primary key autoincrement not null, "cluster_data_id" integer not null, "lane" smallint not null default 0, "created_at" datetime not null, "attempts" integer not null default 0, "next_attempt_at" datetime, "last_attempt_at" datetime, "last_error" text, "parked_at" datetime, "parked_reason" text, foreign key("cluster_data_id") references "cluster_data"("id") on delete cascade);
create unique index "outbox_cluster_data_id_unique" on "outbox" ("cluster_data_id");
create index "outbox_parked_at_lane_id_index" on "outbox" ("parked_at", "lane", "id");
