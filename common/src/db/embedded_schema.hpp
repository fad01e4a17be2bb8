// The schema's SQL files as compiled into the binary (internal to opendms_common).
//
// embedded_schema() is defined in the source that common/embed_schema.cmake generates
// from schema/<dialect>/<name>.{up,down}.sql; the struct below must stay token for token
// identical to the one written there.
#pragma once

#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"

namespace opendms::db::detail {

// The same line as in the generated source.
// clang-format off
struct embedded_sql { const char* dialect; const char* name; const char* direction; const char* sql; };
// clang-format on

const std::vector<embedded_sql>& embedded_schema();

/// Builds dialect d's catalog from the embedded files, sorted by name. The files of
/// every dialect are checked, not only d's: each migration must have a non-empty up and
/// down in every dialect, and every dialect must hold the same names. Any breach is a
/// bug in schema/ and throws std::logic_error naming every offending file.
std::vector<migration> build_catalog(const std::vector<embedded_sql>& files, dialect d);

}  // namespace opendms::db::detail
