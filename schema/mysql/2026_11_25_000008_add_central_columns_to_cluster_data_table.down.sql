-- One statement: a failure leaves the table as it was.
alter table `cluster_data` drop index `cluster_data_duplicate_of_index`, drop `duplicate_of`, drop `received_from`;
