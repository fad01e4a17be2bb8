-- The field node's pusher: one row (id 1) with the state of delivery to the central server,
-- so that `opendms-field status` (another process) can show it and a restart keeps it.
-- auth_alarm_at: set while the central refuses our token (401/403), since when. protocol:
-- 'batch' or 'single', as last detected. bytes_*: TCP payload bytes (HTTP and TLS
-- included) sent and received since the row was made.
create table "push_state" ("id" integer primary key not null, "protocol" varchar(16), "consecutive_failures" integer not null default 0, "last_attempt_at" datetime, "last_success_at" datetime, "last_error" text, "next_attempt_at" datetime, "auth_alarm_at" datetime, "bytes_sent" bigint not null default 0, "bytes_received" bigint not null default 0, "updated_at" datetime);
