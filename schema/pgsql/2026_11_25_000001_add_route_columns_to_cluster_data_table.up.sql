-- Adds origin/destination (route packets) and makes payload, hops and duck_type nullable
-- (route packets carry no Message; legacy gateways send no hops/duckType).
alter table "cluster_data"
    add column "origin" varchar(32) null,
    add column "destination" varchar(32) null,
    alter column "payload" drop not null,
    alter column "hops" drop not null,
    alter column "duck_type" drop not null;
