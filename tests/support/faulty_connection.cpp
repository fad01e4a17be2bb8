#include "faulty_connection.hpp"

#include <utility>

namespace opendms::test {

faulty_connection::faulty_connection(db::connection& inner, fault f)
    : inner_(inner), fault_(std::move(f)) {}

void faulty_connection::arm(fault f) {
    fault_ = std::move(f);
    armed_ = true;
    calls_ = 0;
    failures_ = 0;
    log_.clear();
}

void faulty_connection::disarm() {
    armed_ = false;
}

bool faulty_connection::should_fail(const char* operation, std::string_view sql) {
    ++calls_;
    log_.push_back({operation, std::string(sql)});
    if (!armed_ || fault_.at == 0) return false;
    const bool hit = fault_.sticky ? calls_ >= fault_.at : calls_ == fault_.at;
    if (hit) ++failures_;
    return hit;
}

status faulty_connection::injected(const char* operation) const {
    return status(fault_.code, std::string("faulty.") + operation + ": " + fault_.message +
                                   " (injected at call " + std::to_string(calls_) + ")");
}

// Runs `call` on the real connection unless this call is to fail before it; reports the
// injected failure in place of its result when the call is to fail.
template <typename T, typename Call>
T faulty_connection::counted(const char* operation, std::string_view sql, Call&& call) {
    if (!should_fail(operation, sql)) return call();
    if (fault_.timing == fault_timing::after) (void)call();
    return T(injected(operation));
}

status faulty_connection::execute_script(std::string_view sql) {
    return counted<status>("execute_script", sql, [&] { return inner_.execute_script(sql); });
}

result<std::int64_t> faulty_connection::exec(std::string_view sql,
                                             const std::vector<db::value>& params) {
    return counted<result<std::int64_t>>("exec", sql, [&] { return inner_.exec(sql, params); });
}

result<db::rows> faulty_connection::query(std::string_view sql,
                                          const std::vector<db::value>& params) {
    return counted<result<db::rows>>("query", sql, [&] { return inner_.query(sql, params); });
}

result<std::int64_t> faulty_connection::insert(std::string_view sql,
                                               const std::vector<db::value>& params) {
    return counted<result<std::int64_t>>("insert", sql, [&] { return inner_.insert(sql, params); });
}

status faulty_connection::begin() {
    return counted<status>("begin", {}, [&] { return inner_.begin(); });
}

status faulty_connection::commit() {
    return counted<status>("commit", {}, [&] { return inner_.commit(); });
}

status faulty_connection::rollback() {
    return inner_.rollback();
}

result<bool> faulty_connection::table_exists(std::string_view table) {
    return counted<result<bool>>("table_exists", {}, [&] { return inner_.table_exists(table); });
}

result<bool> faulty_connection::column_exists(std::string_view table, std::string_view column) {
    return counted<result<bool>>("column_exists", {},
                                 [&] { return inner_.column_exists(table, column); });
}

}  // namespace opendms::test
