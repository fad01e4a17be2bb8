-- Adds origin/destination (route packets) and makes payload, hops and duck_type nullable
-- (route packets carry no Message; legacy gateways send no hops/duckType). One statement,
-- so that a failure leaves the table as it was.
alter table `cluster_data` add `origin` varchar(32) null, add `destination` varchar(32) null, modify `payload` text null, modify `hops` int null, modify `duck_type` int null;
