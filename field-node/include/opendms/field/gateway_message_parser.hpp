// gateway_message_parser: one MQTT message from a ClusterDuck gateway -> a record, or
// the reason it cannot be one. A pure function: no I/O, no clock, no globals.
//
// Shapes understood (see docs/gateway-messages.md, and the samples in tests/data):
//  - the 5.x envelope {"eventType","MessageID","payload":{"DeviceID","hops","duckType",
//    "Message", optional "origin","destination","path","encoding"}} on any topic;
//  - route packets whose route is JSON text inside "Message" (stock ESP32 gateway);
//  - legacy flat objects {"DeviceID","MessageID","Payload",...} with the event type taken
//    from the MQTT topic (iot-2/evt/<type>/fmt/json, owl/device/<thing>/evt/<type>, a bare
//    type, or "status" when the topic names none);
//  - CDP 4.2: "messageTopic", numeric "messageId", payload.deviceType / payload.deviceId.
// Tolerated: raw control bytes and invalid UTF-8 inside JSON strings (never a reason to
// reject); "path" as array, JSON array in a string, comma string or absent (stored
// comma-joined); "ERROR: Non-printable character" as NULL; numbers given as strings.
// A Message that is base64 ("encoding":"base64") is decoded when the bytes are printable
// UTF-8 text, else kept as the original base64 with payload_encoding "base64"; a Message
// whose bytes are not valid UTF-8 (or hold NUL) is stored base64-encoded the same way.
// A bad hop count, duckType, path, origin or destination becomes NULL: it never costs the
// message. Rejected is only what leaves no meaningful record: no usable DeviceID (1..32
// characters), MessageID or eventType; invalid JSON; a shape that is not a gateway's; the
// size cap (every reason: docs/gateway-messages.md).
// Thread safety: none needed (no shared state); call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "opendms/record.hpp"

namespace opendms::field {

struct parse_limits {
    std::size_t max_bytes = 16 * 1024;  // larger messages are rejected (kept in quarantine)
};

struct parse_result {
    bool ok = false;
    /// When ok: duck_id, topic, message_id, payload, payload_encoding, path, origin,
    /// destination, hops, duck_type. Times, ids and sync state are the store's.
    /// When not ok: only the identity fields (topic, message_id, duck_id) that could be
    /// read, possibly none, for the log line; never to be stored.
    cluster_data record;
    /// When not ok: why, in one short sentence ("invalid JSON at offset 181: ..."); the
    /// full list is in docs/gateway-messages.md. Empty when ok.
    std::string reason;
};

parse_result parse_gateway_message(std::string_view mqtt_topic, std::string_view bytes,
                                   const parse_limits& limits = {});

}  // namespace opendms::field
