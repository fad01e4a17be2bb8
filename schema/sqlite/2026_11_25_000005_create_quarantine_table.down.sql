drop table if exists "quarantine";
