// The pusher's decisions, as pure functions: what each answer means, the backoff schedule
// with its jitter, Retry-After, and the rate cap.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <set>

#include "opendms/field/push_policy.hpp"
#include "opendms/timefmt.hpp"

using namespace opendms::field;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

backoff_schedule seed_schedule(double jitter) {
    return backoff_schedule{{seconds(30), seconds(60), seconds(120), seconds(300), seconds(600)},
                            jitter};
}

}  // namespace

TEST_CASE("every status has the meaning the wire format gives it, batch and single", "[unit]") {
    struct row {
        unsigned status;
        answer_kind batch, single;
    };
    const row rows[] = {
        {200, answer_kind::accepted, answer_kind::accepted},
        {201, answer_kind::accepted, answer_kind::accepted},
        {204, answer_kind::accepted, answer_kind::accepted},
        {401, answer_kind::auth_refused, answer_kind::auth_refused},
        {403, answer_kind::auth_refused, answer_kind::auth_refused},
        {408, answer_kind::retry_later, answer_kind::retry_later},
        {429, answer_kind::retry_later, answer_kind::retry_later},
        {500, answer_kind::retry_later, answer_kind::retry_later},
        {502, answer_kind::retry_later, answer_kind::retry_later},
        {503, answer_kind::retry_later, answer_kind::retry_later},
        {504, answer_kind::retry_later, answer_kind::retry_later},
        {413, answer_kind::too_large, answer_kind::too_large},
        {422, answer_kind::batch_unsupported, answer_kind::record_rejected},
        {400, answer_kind::batch_unsupported, answer_kind::record_rejected},
        {415, answer_kind::batch_unsupported, answer_kind::misdirected},
        {404, answer_kind::misdirected, answer_kind::misdirected},
        {405, answer_kind::misdirected, answer_kind::misdirected},
        {301, answer_kind::misdirected, answer_kind::misdirected},
        {302, answer_kind::misdirected, answer_kind::misdirected},
        {100, answer_kind::misdirected, answer_kind::misdirected},
        {409, answer_kind::misdirected, answer_kind::misdirected},
        {418, answer_kind::misdirected, answer_kind::misdirected},
    };
    for (const row& r : rows) {
        INFO("HTTP " << r.status);
        CHECK(classify_answer(r.status, true) == r.batch);
        CHECK(classify_answer(r.status, false) == r.single);
    }
}

TEST_CASE("without jitter the schedule is the seed's 30 s, 60 s, 2 min, 5 min, then 10 min",
          "[unit]") {
    backoff_schedule s = seed_schedule(0.0);
    const std::map<int, milliseconds> expected = {
        {1, seconds(30)},  {2, seconds(60)},  {3, seconds(120)},  {4, seconds(300)},
        {5, seconds(600)}, {6, seconds(600)}, {100, seconds(600)}, {0, seconds(30)}};
    for (const auto& [failures, delay] : expected) {
        INFO(failures << " failures");
        for (double unit : {0.0, 0.3, 0.999}) CHECK(s.delay(failures, unit) == delay);
    }
}

TEST_CASE("jitter spreads each wait uniformly within +/- the fraction, never beyond", "[unit]") {
    backoff_schedule s = seed_schedule(0.2);
    CHECK(s.delay(1, 0.0) == seconds(24));
    CHECK(s.delay(1, 0.5) == seconds(30));
    CHECK(s.delay(1, 1.0) == seconds(36));
    CHECK(s.delay(5, 0.0) == seconds(480));
    CHECK(s.delay(5, 1.0) == seconds(720));
    // A hundred gateways with their own random numbers come back spread over the window,
    // not in the same second.
    std::set<long long> distinct_seconds;
    for (int g = 0; g < 100; ++g) {
        const double unit = (g * 0.6180339887) - static_cast<int>(g * 0.6180339887);
        milliseconds d = s.delay(5, unit);
        CHECK(d >= seconds(480));
        CHECK(d <= seconds(720));
        distinct_seconds.insert(d.count() / 1000);
    }
    CHECK(distinct_seconds.size() >= 90);
}

TEST_CASE("Retry-After in seconds or as an HTTP date, clamped, and junk ignored", "[unit]") {
    const std::int64_t now = *opendms::parse_time("2026-10-21 07:28:00");
    CHECK(parse_retry_after("120", now) == milliseconds(120'000));
    CHECK(parse_retry_after(" 5 ", now) == milliseconds(5'000));
    CHECK(parse_retry_after("0", now) == milliseconds(0));
    CHECK(parse_retry_after("Wed, 21 Oct 2026 07:30:00 GMT", now) == milliseconds(120'000));
    CHECK(parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now) == milliseconds(0));  // past
    CHECK(parse_retry_after("99999999", now) == milliseconds(24LL * 3600 * 1000));
    CHECK(parse_retry_after("99999999999999999999999", now) == milliseconds(24LL * 3600 * 1000));
    CHECK_FALSE(parse_retry_after("-5", now));
    CHECK_FALSE(parse_retry_after("soon", now));
    CHECK_FALSE(parse_retry_after("", now));
    CHECK_FALSE(parse_retry_after("Wed, 21 Foo 2026 07:30:00 GMT", now));
    CHECK_FALSE(parse_retry_after("1.5", now));
}

TEST_CASE("a Retry-After is honoured, never earlier, with up to the jitter added", "[unit]") {
    backoff_schedule s = seed_schedule(0.2);
    CHECK(retry_delay(s, 1, milliseconds(5000), 0.0) == milliseconds(5000));
    CHECK(retry_delay(s, 1, milliseconds(5000), 1.0) == milliseconds(6000));
    CHECK(retry_delay(s, 5, milliseconds(900'000), 0.5) == milliseconds(990'000));
    // Without one, the schedule.
    CHECK(retry_delay(s, 2, std::nullopt, 0.5) == seconds(60));
}

TEST_CASE("the rate cap lets a second's worth through, then paces", "[unit]") {
    pacer p(100.0);  // 100 records per second
    CHECK(p.capped());
    CHECK(p.max_batch(500) == 100);
    CHECK(p.wait_ms(0, 100) == 0);
    p.sent(0, 100);
    CHECK(p.wait_ms(0, 100) == 1000);
    CHECK(p.wait_ms(500, 100) == 500);
    CHECK(p.wait_ms(1000, 100) == 0);
    p.sent(1000, 50);
    CHECK(p.wait_ms(1000, 100) == 500);
    // Over a long run the average stays at the cap.
    pacer q(250.0);
    std::int64_t now = 0;
    std::size_t sent = 0;
    while (now < 60'000) {
        now += q.wait_ms(now, q.max_batch(500));
        q.sent(now, q.max_batch(500));
        sent += q.max_batch(500);
    }
    CHECK(sent >= 250 * 60);
    CHECK(sent <= 250 * 61 + 250);
    pacer none(0);
    CHECK_FALSE(none.capped());
    CHECK(none.max_batch(500) == 500);
    CHECK(none.wait_ms(0, 1'000'000) == 0);
}
