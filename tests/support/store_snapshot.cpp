#include "store_snapshot.hpp"

#include <catch2/catch.hpp>

namespace opendms::test {

const std::vector<std::string>& store_tables() {
    static const std::vector<std::string> t = {"cluster_data", "outbox", "quarantine",
                                               "mesh_duplicates", "push_state"};
    return t;
}

db::rows query_ok(db::connection& c, const std::string& sql, const std::vector<db::value>& p) {
    auto r = c.query(sql, p);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

std::int64_t count(db::connection& c, const std::string& table) {
    return query_ok(c, "select count(*) from " + table)[0].get_int(0).value();
}

std::map<std::string, std::int64_t> counts(db::connection& c) {
    std::map<std::string, std::int64_t> out;
    for (const auto& t : store_tables()) out[t] = count(c, t);
    return out;
}

snapshot dump_all(db::connection& c) {
    snapshot out;
    std::vector<std::string> sqls;
    for (const auto& t : store_tables()) sqls.push_back("select * from " + t + " order by id");
    sqls.push_back("select name, seq from sqlite_sequence order by name");
    for (const auto& sql : sqls) {
        out.push_back({sql});
        for (const auto& row : query_ok(c, sql).data) {
            std::vector<std::optional<std::string>> cells;
            for (std::size_t i = 0; i < row.cells.size(); ++i) cells.push_back(row.get_text(i));
            out.push_back(std::move(cells));
        }
    }
    return out;
}

}  // namespace opendms::test
