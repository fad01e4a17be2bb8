// The wall clock jumping, told apart from time passing.
#include <catch2/catch.hpp>

#include "opendms/field/clock_watch.hpp"

using opendms::field::clock_watch;

TEST_CASE("time passing is no jump, however long the pause", "[unit]") {
    clock_watch w;
    CHECK_FALSE(w.observe(1'000'000, 50));
    CHECK_FALSE(w.observe(1'000'500, 550));
    CHECK_FALSE(w.observe(1'000'500 + 86'400'000, 550 + 86'400'000));  // a day idle
    CHECK_FALSE(w.observe(1'000'500 + 86'401'500, 550 + 86'400'000));  // 1.5 s drift: tolerated
}

TEST_CASE("a clock set back or forward is reported with its size and sign", "[unit]") {
    clock_watch w;
    CHECK_FALSE(w.observe(5'000'000'000, 1'000));
    auto back = w.observe(5'000'000'000 - 3'600'000 + 1'000, 2'000);  // an hour back, 1 s later
    REQUIRE(back);
    CHECK(*back == -3'600'000);
    auto forward = w.observe(5'000'000'000 + 7'200'000 + 3'000, 4'000);  // NTP sets it ahead
    REQUIRE(forward);
    CHECK(*forward == 10'800'000);
    CHECK_FALSE(w.observe(5'000'000'000 + 7'200'000 + 4'000, 5'000));
    // A gateway that booted in 1970 and then got the real time.
    clock_watch boot;
    CHECK_FALSE(boot.observe(60'000, 60'000));
    auto ntp = boot.observe(1'764'028'800'000, 61'000);
    REQUIRE(ntp);
    CHECK(*ntp > 1'700'000'000'000);
}
