drop table if exists `push_state`;
