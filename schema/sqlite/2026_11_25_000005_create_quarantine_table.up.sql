-- Messages that could not become a record, kept byte for byte with the reason, so that
-- nothing received is ever dropped silently.
create table "quarantine" ("id" integer primary key autoincrement not null, "received_at" datetime not null, "topic" varchar not null, "raw" blob not null, "reason" text not null);
