-- Laravel: Schema::dropIfExists('cluster_data').
drop table if exists "cluster_data";
