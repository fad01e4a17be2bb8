// The record's sync state, equality, and the UUIDv7 generator that gives records their
// permanent identity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "opendms/record.hpp"
#include "opendms/uuid.hpp"

using namespace opendms;

namespace {

cluster_data sample_record() {
    cluster_data r;
    r.id = 7;
    r.duck_id = "DUCK0001";
    r.topic = "status";
    r.message_id = "A1B2";
    r.payload = "aGVsbG8=";  // "hello"
    r.payload_encoding = "base64";
    r.path = "DUCK0001,PAPA0001";
    r.origin = "DUCK0001";
    r.destination = "PAPA0001";
    r.hops = 2;
    r.duck_type = 3;
    r.created_at = 1772186400;
    r.updated_at = 1772186401;
    r.synced = sync_state::synced;
    r.synced_at = 1772186402;
    r.uuid = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
    r.source_node = "node-1";
    return r;
}

int always_fail(unsigned char*, int) { return 0; }

int fill_zeros(unsigned char* buf, int len) {
    std::memset(buf, 0, static_cast<std::size_t>(len));
    return 1;
}

unsigned hex_digit(char c) {
    return static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
}

}  // namespace

TEST_CASE("each sync state maps to its column value and back", "[unit]") {
    CHECK(to_column(sync_state::not_applicable) == std::nullopt);
    CHECK(to_column(sync_state::pending) == std::optional<bool>(false));
    CHECK(to_column(sync_state::synced) == std::optional<bool>(true));

    CHECK(sync_state_from_column(std::nullopt) == sync_state::not_applicable);
    CHECK(sync_state_from_column(false) == sync_state::pending);
    CHECK(sync_state_from_column(true) == sync_state::synced);

    for (auto s : {sync_state::not_applicable, sync_state::pending, sync_state::synced})
        CHECK(sync_state_from_column(to_column(s)) == s);
}

TEST_CASE("sync states have stable names", "[unit]") {
    CHECK(std::string(sync_state_name(sync_state::not_applicable)) == "not_applicable");
    CHECK(std::string(sync_state_name(sync_state::pending)) == "pending");
    CHECK(std::string(sync_state_name(sync_state::synced)) == "synced");
}

TEST_CASE("a new record is not applicable to sync and has no optional values", "[unit]") {
    const cluster_data r;
    CHECK(r.synced == sync_state::not_applicable);
    CHECK_FALSE(r.id);
    CHECK_FALSE(r.payload);
    CHECK_FALSE(r.payload_encoding);
    CHECK_FALSE(r.created_at);
    CHECK_FALSE(r.uuid);
}

TEST_CASE("records are equal only when every field is equal", "[unit]") {
    const cluster_data base = sample_record();
    CHECK(base == sample_record());
    CHECK_FALSE(base != sample_record());

    using change = std::function<void(cluster_data&)>;
    const std::vector<std::pair<const char*, change>> changes = {
        {"id", [](cluster_data& r) { r.id.reset(); }},
        {"duck_id", [](cluster_data& r) { r.duck_id = "DUCK0002"; }},
        {"topic", [](cluster_data& r) { r.topic = "alert"; }},
        {"message_id", [](cluster_data& r) { r.message_id = "ZZZZ"; }},
        {"payload", [](cluster_data& r) { r.payload = std::string("aGVsbG8=\0", 9); }},
        {"payload_encoding", [](cluster_data& r) { r.payload_encoding.reset(); }},
        {"path", [](cluster_data& r) { r.path.reset(); }},
        {"origin", [](cluster_data& r) { r.origin = ""; }},
        {"destination", [](cluster_data& r) { r.destination.reset(); }},
        {"hops", [](cluster_data& r) { r.hops = 3; }},
        {"duck_type", [](cluster_data& r) { r.duck_type.reset(); }},
        {"created_at", [](cluster_data& r) { r.created_at = 0; }},
        {"updated_at", [](cluster_data& r) { r.updated_at.reset(); }},
        {"synced", [](cluster_data& r) { r.synced = sync_state::pending; }},
        {"synced_at", [](cluster_data& r) { r.synced_at = 1; }},
        {"uuid", [](cluster_data& r) { r.uuid.reset(); }},
        {"source_node", [](cluster_data& r) { r.source_node = "node-2"; }},
    };
    for (const auto& [field, apply] : changes) {
        cluster_data other = base;
        apply(other);
        INFO("changed field: " << field);
        CHECK(base != other);
        CHECK_FALSE(base == other);
    }
}

TEST_CASE("a UUIDv7 matches RFC 9562's example vector", "[unit]") {
    // RFC 9562 appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
    const uuid_random_bits bits = {0x0C, 0xC3, 0x18, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
    CHECK(make_uuid_v7(0x017F22E279B0, bits) == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

TEST_CASE("the version and variant bits override whatever the random bytes hold", "[unit]") {
    uuid_random_bits ones;
    ones.fill(0xFF);
    CHECK(make_uuid_v7(0, ones) == "00000000-0000-7fff-bfff-ffffffffffff");
    const uuid_random_bits zeros{};
    CHECK(make_uuid_v7(0, zeros) == "00000000-0000-7000-8000-000000000000");
}

TEST_CASE("times outside the 48-bit range are clamped, not wrapped", "[unit]") {
    const uuid_random_bits zeros{};
    CHECK(make_uuid_v7(-5, zeros).substr(0, 13) == "00000000-0000");
    CHECK(make_uuid_v7(std::int64_t{1} << 48, zeros).substr(0, 13) == "ffffffff-ffff");
    CHECK(make_uuid_v7((std::int64_t{1} << 48) - 1, zeros).substr(0, 13) == "ffffffff-ffff");
}

TEST_CASE("a new UUIDv7 is lower-case 8-4-4-4-12 with version 7 and variant 10", "[unit]") {
    for (int i = 0; i < 100; ++i) {
        const std::string u = new_uuid_v7();
        INFO(u);
        REQUIRE(is_uuid(u));
        CHECK(u[14] == '7');
        CHECK((hex_digit(u[19]) & 0xC) == 0x8);
        for (char c : u) CHECK_FALSE((c >= 'A' && c <= 'F'));
    }
}

TEST_CASE("the time prefix carries the given milliseconds big-endian", "[unit]") {
    const std::string u = new_uuid_v7(0x0123456789AB);
    CHECK(u.substr(0, 13) == "01234567-89ab");
}

TEST_CASE("10000 UUIDs made in the same millisecond are all different", "[unit]") {
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) seen.insert(new_uuid_v7(1772186400000));
    CHECK(seen.size() == 10000);
}

TEST_CASE("UUIDs made at increasing times sort in time order", "[unit]") {
    std::vector<std::string> made;
    for (unix_ms ms = 1772186400000; ms < 1772186400000 + 2000; ms += 7)
        made.push_back(new_uuid_v7(ms));
    for (std::size_t i = 1; i < made.size(); ++i) {
        INFO(made[i - 1] << " then " << made[i]);
        CHECK(made[i - 1] < made[i]);
    }
}

TEST_CASE("the system clock overload stamps the current time", "[unit]") {
    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const std::string u = new_uuid_v7();
    const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::string hex = u.substr(0, 8) + u.substr(9, 4);
    const auto stamped = static_cast<unix_ms>(std::stoull(hex, nullptr, 16));
    CHECK(stamped >= before);
    CHECK(stamped <= after);
}

TEST_CASE("random bits come from the primary source when it succeeds", "[unit]") {
    const uuid_random_bits bits = detail::draw_uuid_random_bits(&fill_zeros);
    CHECK(bits == uuid_random_bits{});
}

TEST_CASE("the kernel source fills every byte it is asked for, differently each time", "[unit]") {
    std::set<std::vector<unsigned char>> seen;
    for (int i = 0; i < 100; ++i) {
        std::vector<unsigned char> b(300, 0);  // more than one getrandom() guarantees
        REQUIRE(detail::fill_from_kernel(b.data(), static_cast<int>(b.size())) == 1);
        seen.insert(b);
    }
    CHECK(seen.size() == 100);
    // All-zero tails would mean a short read was taken for a full one.
    std::vector<unsigned char> big(4096, 0);
    REQUIRE(detail::fill_from_kernel(big.data(), static_cast<int>(big.size())) == 1);
    CHECK(std::count(big.end() - 64, big.end(), 0) < 8);
}

TEST_CASE("a failing primary random source falls back to varying bits", "[unit][fault]") {
    // A constant fallback would make every UUID of a millisecond collide.
    std::set<uuid_random_bits> seen;
    for (int i = 0; i < 100; ++i) seen.insert(detail::draw_uuid_random_bits(&always_fail));
    CHECK(seen.size() == 100);
    std::set<uuid_random_bits> without_source;
    for (int i = 0; i < 100; ++i) without_source.insert(detail::draw_uuid_random_bits(nullptr));
    CHECK(without_source.size() == 100);
}

TEST_CASE("is_uuid accepts the canonical form in either case and rejects the rest", "[unit]") {
    CHECK(is_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"));
    CHECK(is_uuid("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"));
    CHECK(is_uuid("550e8400-e29b-41d4-a716-446655440000"));  // v4 is a UUID too
    CHECK_FALSE(is_uuid(""));
    CHECK_FALSE(is_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398"));    // 35 chars
    CHECK_FALSE(is_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f0"));  // 37 chars
    CHECK_FALSE(is_uuid("017f22e279b07cc398c4dc0c0c07398f"));       // no dashes
    CHECK_FALSE(is_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398g"));   // not hex
    CHECK_FALSE(is_uuid("017f22e2_79b0-7cc3-98c4-dc0c0c07398f"));   // wrong separator
    CHECK_FALSE(is_uuid("017f22e-279b0-7cc3-98c4-dc0c0c07398f"));   // dash misplaced
    CHECK_FALSE(is_uuid("{17f22e2-79b0-7cc3-98c4-dc0c0c07398f}"));
    CHECK_FALSE(is_uuid(std::string("017f22e2-79b0-7cc3-98c4-dc0c0c07398\0", 36)));
}
