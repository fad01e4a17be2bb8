-- duplicate_of is NULL on every field-node row and on most central rows, and is only looked
-- up by value (the copies of an original). A full index made every stored record write an
-- index entry for its NULL (on a gateway, a WAL page per message); this one keeps the
-- non-NULL values only, and serves `duplicate_of = ?` as before.
drop index "cluster_data_duplicate_of_index";
create index "cluster_data_duplicate_of_index" on "cluster_data" ("duplicate_of") where "duplicate_of" is not null;
