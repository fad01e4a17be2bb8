drop index "cluster_data_duplicate_of_index";
create index "cluster_data_duplicate_of_index" on "cluster_data" ("duplicate_of");
