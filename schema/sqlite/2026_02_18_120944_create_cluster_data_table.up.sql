-- The Laravel OpenDMS seed's table, as Laravel 11's SQLite grammar creates it.
create table "cluster_data" ("id" integer primary key autoincrement not null, "created_at" datetime, "updated_at" datetime, "duck_id" varchar not null, "topic" varchar not null, "message_id" varchar not null, "payload" text not null, "path" text, "hops" integer not null, "duck_type" integer not null);
