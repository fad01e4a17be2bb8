// central_status: the counts behind `opendms-central status`, and their two printed forms.
#include "opendms/central/central_status.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

namespace opendms::central {
namespace {

// One statement, so one snapshot: the totals are the sums of the groups.
constexpr const char* counts_sql =
    "select received_from, count(*), "
    "sum(case when duplicate_of is null then 1 else 0 end), max(created_at) "
    "from cluster_data group by received_from";

constexpr const char* unknown_node = "(unknown)";

void write_string(rapidjson::Writer<rapidjson::StringBuffer>& w, const std::string& s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace

result<central_status> read_central_status(db::connection& c) {
    auto r = c.query(counts_sql);
    if (!r) return r.error().context("central.status");
    central_status s;
    for (const db::row& row : r->data) {
        if (row.cells.size() != 4) {
            return status(errc::internal, "central.status: the counts query returned " +
                                              std::to_string(row.cells.size()) + " columns");
        }
        node_counts n;
        n.node = row.get_text(0).value_or(unknown_node);
        n.records = row.get_int(1).value_or(0);
        n.originals = row.get_int(2).value_or(0);
        n.newest_created_at = row.get_text(3);
        s.records += n.records;
        s.originals += n.originals;
        s.nodes.push_back(std::move(n));
    }
    s.mesh_duplicates = s.records - s.originals;
    std::sort(s.nodes.begin(), s.nodes.end(),
              [](const node_counts& a, const node_counts& b) { return a.node < b.node; });
    return s;
}

std::string to_json(const central_status& s) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("records");
    w.Int64(s.records);
    w.Key("originals");
    w.Int64(s.originals);
    w.Key("mesh_duplicates");
    w.Int64(s.mesh_duplicates);
    w.Key("nodes");
    w.StartArray();
    for (const node_counts& n : s.nodes) {
        w.StartObject();
        w.Key("node");
        write_string(w, n.node);
        w.Key("records");
        w.Int64(n.records);
        w.Key("originals");
        w.Int64(n.originals);
        w.Key("newest_created_at");
        if (n.newest_created_at) {
            write_string(w, *n.newest_created_at);
        } else {
            w.Null();
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string to_text(const central_status& s) {
    std::string out;
    out += "records: " + std::to_string(s.records) + "\n";
    out += "originals: " + std::to_string(s.originals) + "\n";
    out += "mesh duplicates: " + std::to_string(s.mesh_duplicates) + "\n";
    out += "by node:" + std::string(s.nodes.empty() ? " none" : "") + "\n";
    for (const node_counts& n : s.nodes) {
        out += "  " + n.node + ": " + std::to_string(n.records) + " records, " +
               std::to_string(n.originals) + " originals, newest " +
               n.newest_created_at.value_or("none") + "\n";
    }
    return out;
}

}  // namespace opendms::central
