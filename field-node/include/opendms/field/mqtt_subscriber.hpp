// mqtt_subscriber: receives gateway messages from the broker on libmosquitto, and
// acknowledges each only after the handler has made it durable.
//
// Why it is built this way (docs/architecture.md, FACTS in docs/gateway-messages.md):
// libmosquitto queues the PUBACK of a QoS 1 message before calling on_message, and in
// threaded mode (mosquitto_threaded_set(true)) writes it only after on_message returns.
// So: QoS 1, clean_session=false, a fixed client id, threaded mode, and the handler runs
// inside on_message. Each connection runs its own thread calling mosquitto_loop() and
// reconnecting with its own backoff (1 s doubling to reconnect_max_s, with jitter) on
// every error, so there is no library loop that can give up for good. If the handler fails, on_message does not return: it retries the
// handler with capped backoff until it succeeds; if the subscriber is stopped meanwhile,
// the process ends with _exit(75) so that the PUBACK never leaves and the broker
// redelivers the message to the persistent session on restart.
//
// Several connections (`connections` > 1) share the topics through a shared subscription
// ($share/<group>/<topic>), each with its own network thread, so a slow store does not
// cap the rate at 1/(time per message).
//
// Threads: start()/stop() from the owner's thread; the handler runs on the network
// threads (one per connection), concurrently when connections > 1.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/status.hpp"

namespace opendms::field {

struct mqtt_options {
    std::string host = "127.0.0.1";
    int port = 1883;
    std::string username;
    std::string password;
    std::string tls_ca_file;                      // TLS when set
    std::vector<std::string> topics{"hub/event"};
    std::string client_id;                        // stable; connection i > 0 gets "-i"
    int keepalive_s = 30;
    int reconnect_min_s = 1;
    int reconnect_max_s = 30;
    int connections = 1;                          // > 1: shared subscription
    std::string share_group = "opendms";
};

/// Returns ok once the message is durable; any error means "do not acknowledge".
/// `connection_index` tells which connection (0..connections-1) delivered it.
using message_handler =
    std::function<status(int connection_index, std::string_view topic, std::string_view payload)>;

class mqtt_subscriber {
public:
    mqtt_subscriber(mqtt_options options, message_handler handler);
    ~mqtt_subscriber();
    mqtt_subscriber(const mqtt_subscriber&) = delete;
    mqtt_subscriber& operator=(const mqtt_subscriber&) = delete;

    /// Starts the network threads; connecting happens in the background and is retried
    /// forever. Fails only on a setting libmosquitto rejects (bad TLS file, ...).
    status start();
    /// Disconnects and joins the threads. Idempotent.
    void stop();

    /// Messages handled successfully since start, over all connections.
    std::uint64_t handled() const;
    /// Connections currently connected and subscribed.
    int connected() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace opendms::field
