-- Messages that could not become a record, kept byte for byte with the reason, so that
-- nothing received is ever dropped silently. received_at is datetime (see the outbox).
create table `quarantine` (`id` bigint unsigned not null auto_increment primary key, `received_at` datetime not null, `topic` varchar(255) not null, `raw` longblob not null, `reason` text not null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
