-- Messages that could not become a record, kept byte for byte with the reason, so that
-- nothing received is ever dropped silently.
create table "quarantine" ("id" bigserial not null primary key, "received_at" timestamp(0) without time zone not null, "topic" varchar(255) not null, "raw" bytea not null, "reason" text not null);
