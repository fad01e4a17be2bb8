drop table if exists `mesh_duplicates`;
