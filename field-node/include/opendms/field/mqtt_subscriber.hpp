// mqtt_subscriber: receives gateway messages from the broker on libmosquitto, and
// acknowledges each only after the handler has made it durable.
//
// Why it is built this way (docs/architecture.md, FACTS in docs/gateway-messages.md):
// libmosquitto queues the PUBACK of a QoS 1 message before calling on_message; in threaded
// mode (mosquitto_threaded_set(true)) it is written only by a later loop write, never by
// the read that delivered the message.
// So: QoS 1, clean_session=false, a fixed client id, threaded mode, and the handler runs
// before any PUBACK of the messages it is given is written. Each connection runs its own
// thread and its own network loop (poll(), mosquitto_loop_read/_write/_misc), reconnecting
// with its own backoff (1 s doubling to reconnect_max_s, with jitter) on every error, so
// there is no library loop that can give up for good.
//
// Batches: the loop reads every message that has already arrived on the socket (at most
// max_batch_messages, max_batch_bytes), hands them to the handler together, and only then
// writes their PUBACKs. A burst is thus stored in a few transactions, one commit each,
// without a hand-off between threads; a message that arrives alone goes to the handler at
// once (no waiting for company). Order is kept: the handler gets the messages in the order
// the broker sent them.
//
// If the handler fails a message (its status is an error), nothing is acknowledged yet:
// the failed messages are handed over again, alone, with capped backoff until they succeed
// (the others are not handed over twice); if the subscriber is stopped meanwhile, the
// process ends with _exit(75) so that no PUBACK leaves and the broker redelivers the
// messages to the persistent session on restart.
//
// Several connections (`connections` > 1) share the topics through a shared subscription
// ($share/<group>/<topic>), each with its own network thread.
//
// Threads: start()/stop() from the owner's thread; the handler runs on the network
// threads (one per connection), concurrently when connections > 1.
#pragma once

#include <atomic>
#include <cstddef>
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

/// One received message, owned (libmosquitto frees its own copy when the read returns).
struct mqtt_message {
    std::string topic;
    std::string payload;
};

/// Stores `messages` (in the broker's order) and returns one status per message, in the
/// same order: ok once that message is durable, an error for "do not acknowledge". A
/// result of another size fails every message.
using batch_handler = std::function<std::vector<status>(int connection_index,
                                                         const std::vector<mqtt_message>& messages)>;

/// How many messages (and payload bytes) one batch takes at most; a single larger
/// message still goes alone.
constexpr std::size_t max_batch_messages = 256;
constexpr std::size_t max_batch_bytes = 1024 * 1024;

class mqtt_subscriber {
public:
    mqtt_subscriber(mqtt_options options, batch_handler handler);
    /// The handler is called once per message of each batch, in order.
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
