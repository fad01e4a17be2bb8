-- The field node's pusher: one row (id 1) with the state of delivery to the central server,
-- so that `opendms-field status` (another process) can show it and a restart keeps it.
-- auth_alarm_at: set while the central refuses our token (401/403), since when. protocol:
-- 'batch' or 'single', as last detected. bytes_*: TCP payload bytes (HTTP and TLS
-- included) sent and received since the row was made. Times are datetime (see the outbox).
create table `push_state` (`id` int not null primary key, `protocol` varchar(16) null, `consecutive_failures` int not null default 0, `last_attempt_at` datetime null, `last_success_at` datetime null, `last_error` text null, `next_attempt_at` datetime null, `auth_alarm_at` datetime null, `bytes_sent` bigint not null default 0, `bytes_received` bigint not null default 0, `updated_at` datetime null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
