// libFuzzer target: parse_gateway_message (field-node/include/opendms/field/
// gateway_message_parser.hpp) on arbitrary bytes.
//
// Input: the MQTT topic, a newline, then the message bytes ("hub/event\n{...}"); an input
// without a newline is a message on hub/event. The seeds are tests/fuzz/corpus/
// gateway_parser/ (the sample gateway messages of tests/data/samples.jsonl).
//
// Besides the sanitizers' findings, the contract is checked; a breach aborts (a crash the
// fuzzer keeps):
//  - a rejection carries a reason, an accepted message none;
//  - an accepted record has a DeviceID of 1..32 characters, a MessageID and an event type;
//  - an accepted record, stamped as the field store stamps it and sent as the pusher sends
//    it (to_json, wire form), is read back identically by the central (record_from_json)
//    and passes the central's validation (record_validator): a record the field node
//    stores and the central refuses would be parked for ever.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "opendms/central/record_validator.hpp"
#include "opendms/field/gateway_message_parser.hpp"
#include "opendms/record_json.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_gateway_parser: %s: %.*s\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string_view topic = "hub/event";
    std::string_view message = input;
    if (const auto nl = input.find('\n'); nl != std::string_view::npos) {
        topic = input.substr(0, nl);
        message = input.substr(nl + 1);
    }

    opendms::field::parse_result r = opendms::field::parse_gateway_message(topic, message);
    if (!r.ok) {
        if (r.reason.empty()) fail("rejected without a reason", message);
        return 0;
    }
    if (!r.reason.empty()) fail("accepted with a reason", r.reason);
    const opendms::cluster_data& rec = r.record;
    if (rec.duck_id.empty() || rec.duck_id.size() > 32 * 4) fail("bad duck_id", rec.duck_id);
    if (rec.message_id.empty()) fail("empty message_id", message);
    if (rec.topic.empty()) fail("empty topic", message);

    // As ingest_store stamps it, and as push_batch encodes it.
    opendms::cluster_data stamped = rec;
    stamped.created_at = 1764028800;
    stamped.updated_at = 1764028800;
    stamped.uuid = "01900000-0000-7000-8000-000000000000";
    stamped.source_node = "fuzz-node";
    const std::string wire = opendms::to_json(stamped, opendms::json_fields::wire);

    opendms::field_errors decode_errors;
    auto back = opendms::record_from_json(wire, &decode_errors);
    if (!back) fail("the central cannot decode the pushed record", wire);
    opendms::cluster_data expected = stamped;
    expected.updated_at.reset();  // not part of the wire form
    if (*back != expected) fail("the pushed record reads back differently", wire);
    const auto errors = opendms::central::validate_record(*back, decode_errors);
    if (!errors.empty()) {
        fail("the central would reject the record",
             opendms::central::validation_error_body(errors) + " for " + wire);
    }
    return 0;
}
