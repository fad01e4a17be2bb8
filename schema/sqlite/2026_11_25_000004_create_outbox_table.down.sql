drop table if exists "outbox";
