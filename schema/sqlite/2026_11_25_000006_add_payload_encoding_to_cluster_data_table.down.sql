-- Not indexed, so DROP COLUMN (SQLite 3.35+) needs nothing dropped first. Rows whose
-- payload was base64 keep their base64 text, now without the marker.
alter table "cluster_data" drop column "payload_encoding";
