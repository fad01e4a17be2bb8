-- Drops origin/destination and makes payload, hops and duck_type NOT NULL again. Rows with
-- a NULL in any of those three cannot go back: outside strict mode MySQL would silently
-- turn them into '' and 0. The guard makes this rollback fail first, with nothing changed
-- ("Column 'refused_rows_with_null_payload_hops_or_duck_type' cannot be null": a one-row
-- INSERT of NULL into a NOT NULL column fails in every sql_mode).
drop temporary table if exists `opendms_guard`;
create temporary table `opendms_guard` (`refused_rows_with_null_payload_hops_or_duck_type` int not null);
insert into `opendms_guard` values ((select case when exists (select 1 from `cluster_data` where `payload` is null or `hops` is null or `duck_type` is null) then null else 1 end));
drop temporary table `opendms_guard`;
alter table `cluster_data` drop `origin`, drop `destination`, modify `payload` text not null, modify `hops` int not null, modify `duck_type` int not null;
