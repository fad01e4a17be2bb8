// common gzip: what the field node sends and the central server inflates.
#include <catch2/catch.hpp>

#include <string>

#include "opendms/gzip.hpp"

using opendms::gunzip_error;
using opendms::gzip_compress;
using opendms::gzip_decompress;

namespace {

std::string sample(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; s.size() < n; ++i) {
        s += R"({"duck_id":"DUCK)" + std::to_string(i % 97) + R"(","payload":"x)" +
             std::to_string(i * 7919) + "\"},";
    }
    s.resize(n);
    return s;
}

}  // namespace

TEST_CASE("gzip round-trips text, binary and empty input at every level", "[unit]") {
    std::string binary;
    for (int i = 0; i < 5000; ++i) binary.push_back(static_cast<char>((i * 131) & 0xff));
    for (const std::string& in : {sample(100000), binary, std::string()}) {
        for (int level : {1, 6, 9}) {
            std::string packed = gzip_compress(in, level);
            REQUIRE(packed.size() >= 18);  // a gzip header and trailer at least
            CHECK(static_cast<unsigned char>(packed[0]) == 0x1f);
            CHECK(static_cast<unsigned char>(packed[1]) == 0x8b);
            std::string out;
            auto r = gzip_decompress(packed, out, in.size() + 1);
            REQUIRE(r.error == gunzip_error::none);
            CHECK(out == in);
        }
    }
}

TEST_CASE("repetitive JSON shrinks to a small fraction", "[unit]") {
    std::string in = sample(200000);
    CHECK(gzip_compress(in, 6).size() * 5 < in.size());
}

TEST_CASE("a body that inflates past the cap is too_large, at the cap it is whole", "[unit][fault]") {
    std::string in(1 << 20, 'a');
    std::string packed = gzip_compress(in);
    std::string out;
    CHECK(gzip_decompress(packed, out, in.size() - 1).error == gunzip_error::too_large);
    CHECK(out.size() <= in.size());  // never more than cap + 1 bytes held
    REQUIRE(gzip_decompress(packed, out, in.size()).error == gunzip_error::none);
    CHECK(out == in);
}

TEST_CASE("truncated, corrupt and empty streams are told apart", "[unit][fault]") {
    std::string packed = gzip_compress(sample(5000));
    std::string out;
    for (std::size_t cut = 1; cut < packed.size(); cut += 7) {
        INFO("cut at " << cut);
        auto r = gzip_decompress(packed.substr(0, cut), out, 1 << 20);
        CHECK((r.error == gunzip_error::truncated || r.error == gunzip_error::corrupt));
    }
    std::string bad = packed;
    bad[12] = static_cast<char>(bad[12] ^ 0x55);
    CHECK(gzip_decompress(bad, out, 1 << 20).error != gunzip_error::none);
    auto r = gzip_decompress("not gzip at all", out, 1 << 20);
    CHECK(r.error == gunzip_error::corrupt);
    CHECK_FALSE(r.detail.empty());
    CHECK(gzip_decompress("", out, 1 << 20).error == gunzip_error::empty);
}

TEST_CASE("concatenated gzip members inflate to the concatenation", "[unit]") {
    std::string two = gzip_compress("hello, ") + gzip_compress("world");
    std::string out;
    REQUIRE(gzip_decompress(two, out, 100).error == gunzip_error::none);
    CHECK(out == "hello, world");
}
