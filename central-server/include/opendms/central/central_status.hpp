// `opendms-central status [--json]`: record counts, in one read.
//   records total, originals (duplicate_of IS NULL), mesh duplicates, per received_from
//   node (records, originals, newest created_at), and the migration state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

struct node_counts {
    std::string node;  // received_from; "(unknown)" for NULL (rows from before our server)
    std::int64_t records = 0;
    std::int64_t originals = 0;
    std::optional<std::string> newest_created_at;  // "YYYY-MM-DD HH:MM:SS"
};

struct central_status {
    std::int64_t records = 0;
    std::int64_t originals = 0;
    std::int64_t mesh_duplicates = 0;
    std::vector<node_counts> nodes;  // ordered by node name
};

result<central_status> read_central_status(db::connection& c);
std::string to_json(const central_status& s);
std::string to_text(const central_status& s);

}  // namespace opendms::central
