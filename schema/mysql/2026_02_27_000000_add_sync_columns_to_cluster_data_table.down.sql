-- Dropping the column drops its index too.
alter table `cluster_data` drop `synced`, drop `synced_at`;
