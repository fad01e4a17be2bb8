-- Drops origin/destination and makes payload, hops and duck_type NOT NULL again. Rows with
-- a NULL in any of those three cannot go back; rather than invent values or drop rows,
-- this rollback fails and changes nothing.
do $$
begin
    if exists (select 1 from "cluster_data" where "payload" is null or "hops" is null or "duck_type" is null) then
        raise exception 'cluster_data has rows with a NULL payload, hops or duck_type, which the old schema cannot hold: refusing to roll back (no row was changed)';
    end if;
end
$$;
alter table "cluster_data"
    drop column "origin",
    drop column "destination",
    alter column "payload" set not null,
    alter column "hops" set not null,
    alter column "duck_type" set not null;
