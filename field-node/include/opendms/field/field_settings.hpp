// The field node's own settings, on top of the shared ones (docs/configuration.md):
//   MQTT_HOST (127.0.0.1), MQTT_PORT (1883), MQTT_USERNAME, MQTT_PASSWORD,
//   MQTT_TLS_CA_FILE (TLS when set; must be readable), MQTT_TOPIC (hub/event; comma list
//   of topic filters), MQTT_CLIENT_ID (opendms-field-<FIELD_NODE_ID>), MQTT_KEEPALIVE (30 s),
//   MQTT_RECONNECT_MAX (30 s), MQTT_CONNECTIONS (1; >1 uses a shared subscription),
//   FIELD_NODE_ID (the host name; [A-Za-z0-9._-]{1,64}), MESH_DUPLICATE_WINDOW (600 s; 0
//   disables), MQTT_MAX_MESSAGE_BYTES (16384), LOG_LEVEL (info), FIELD_METRICS_LISTEN (off;
//   field_metrics.hpp); and the CENTRAL_DMS_* delivery settings of push_settings.hpp.
#pragma once

#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "opendms/field/field_metrics.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/mqtt_subscriber.hpp"
#include "opendms/field/push_settings.hpp"
#include "opendms/log.hpp"

namespace opendms::field {

struct field_settings {
    config::settings common;
    mqtt_options mqtt;
    std::string node_id;
    std::int64_t duplicate_window_s = 600;
    std::size_t max_message_bytes = 16 * 1024;
    log::level log_level = log::level::info;
    push_options push;  // delivery to the central server (hybrid mode): push_settings.hpp
    metrics_options metrics;  // FIELD_METRICS_LISTEN: field_metrics.hpp

    /// The store's options derived from the above.
    ingest_options ingest() const;
};

/// Reads and validates the field settings; appends a problem per invalid value (naming
/// the variable and the fix). `common` is the already-loaded shared settings.
field_settings load_field_settings(const config::env_map& env, const config::settings& common,
                                   std::vector<config::problem>& problems);

/// NAME=value (origin) lines for check-config, secrets masked.
std::vector<std::string> describe(const field_settings& s, const config::env_map& env);

}  // namespace opendms::field
