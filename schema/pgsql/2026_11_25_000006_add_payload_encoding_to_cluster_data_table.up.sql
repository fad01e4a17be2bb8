-- How to read payload: NULL = text, as the seed stores it; 'base64' = the payload is the
-- gateway's base64 of binary data (or of bytes that are not valid UTF-8), kept as sent.
alter table "cluster_data" add column "payload_encoding" varchar(16) null;
