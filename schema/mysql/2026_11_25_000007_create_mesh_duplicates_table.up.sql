-- Mesh duplicates: each further copy of a message already stored (same DeviceID,
-- MessageID and payload within the duplicate window) is counted here instead of becoming
-- a second record. Deleting the record deletes its duplicates. The duplicate lookup
-- itself uses cluster_data_duck_id_message_id_created_at_index (see schema/README.md).
-- received_at is datetime (see the outbox).
create table `mesh_duplicates` (`id` bigint unsigned not null auto_increment primary key, `cluster_data_id` bigint unsigned not null, `received_at` datetime not null, `hops` int null, index `mesh_duplicates_cluster_data_id_index`(`cluster_data_id`), constraint `mesh_duplicates_cluster_data_id_foreign` foreign key (`cluster_data_id`) references `cluster_data` (`id`) on delete cascade) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
