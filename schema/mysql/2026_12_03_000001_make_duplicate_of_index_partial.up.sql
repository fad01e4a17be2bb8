-- MySQL has no partial indexes: cluster_data_duplicate_of_index stays a whole-column index
-- there. The migration exists so that every dialect has the same list (schema/README.md).
do 0;
