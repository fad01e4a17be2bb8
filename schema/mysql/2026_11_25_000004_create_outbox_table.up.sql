-- The field node's outbox: one row per record still to be delivered to the central server.
-- lane: 0 live, 1 backlog. parked_at is set when delivery stopped for a reason an operator
-- must see (parked_reason); the (parked_at, lane, id) index serves "next unparked row in
-- order". Deleting a record deletes its outbox row. Times are datetime, not timestamp:
-- no session time-zone conversion, no 2038 limit, and no implicit
-- DEFAULT/ON UPDATE CURRENT_TIMESTAMP when explicit_defaults_for_timestamp is off.
create table `outbox` (`id` bigint unsigned not null auto_increment primary key, `cluster_data_id` bigint unsigned not null, `lane` smallint not null default 0, `created_at` datetime not null, `attempts` int not null default 0, `next_attempt_at` datetime null, `last_attempt_at` datetime null, `last_error` text null, `parked_at` datetime null, `parked_reason` text null, unique `outbox_cluster_data_id_unique`(`cluster_data_id`), index `outbox_parked_at_lane_id_index`(`parked_at`, `lane`, `id`), constraint `outbox_cluster_data_id_foreign` foreign key (`cluster_data_id`) references `cluster_data` (`id`) on delete cascade) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
