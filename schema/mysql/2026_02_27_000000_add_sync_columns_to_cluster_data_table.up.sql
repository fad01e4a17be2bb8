-- The seed's sync columns. Laravel 11 emits the same clauses as two statements (the
-- columns, then the index); one ALTER TABLE gives the same table and, since MySQL DDL
-- is not transactional, leaves nothing half-done when it fails.
alter table `cluster_data` add `synced` tinyint(1) null after `duck_type`, add `synced_at` timestamp null after `synced`, add index `cluster_data_synced_index`(`synced`);
