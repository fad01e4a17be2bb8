#include "opendms/central/http_types.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace opendms::central {

std::string message_body(const std::string& text) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("message");
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

http_reply json_message(unsigned status, const std::string& text) {
    http_reply r;
    r.status = status;
    r.body = message_body(text);
    return r;
}

}  // namespace opendms::central
