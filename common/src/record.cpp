#include "opendms/record.hpp"

#include <tuple>

namespace opendms {

std::optional<bool> to_column(sync_state s) noexcept {
    switch (s) {
        case sync_state::not_applicable:
            return std::nullopt;
        case sync_state::pending:
            return false;
        case sync_state::synced:
            return true;
    }
    return std::nullopt;
}

sync_state sync_state_from_column(std::optional<bool> v) noexcept {
    if (!v) return sync_state::not_applicable;
    return *v ? sync_state::synced : sync_state::pending;
}

const char* sync_state_name(sync_state s) noexcept {
    switch (s) {
        case sync_state::not_applicable:
            return "not_applicable";
        case sync_state::pending:
            return "pending";
        case sync_state::synced:
            return "synced";
    }
    return "unknown";
}

namespace {

auto as_tuple(const cluster_data& r) {
    return std::tie(r.id, r.duck_id, r.topic, r.message_id, r.payload, r.payload_encoding, r.path,
                    r.origin, r.destination, r.hops, r.duck_type, r.created_at, r.updated_at,
                    r.synced, r.synced_at, r.uuid, r.source_node);
}

}  // namespace

bool cluster_data::operator==(const cluster_data& o) const {
    return as_tuple(*this) == as_tuple(o);
}

}  // namespace opendms
