// mqtt_subscriber: one libmosquitto client per connection, each driven by a network thread
// of our own (see the header for why the PUBACK waits for the handler).
//
// Each thread runs its own network loop, with mosquitto_threaded_set(true), rather than
// mosquitto_loop_start(): the library's loop thread ends for good on some errors (TLS,
// authentication, a failed DNS lookup, a protocol error) and says nothing; ours sees every
// return code, logs it and reconnects with its own capped, jittered exponential backoff
// until stop(). With threaded_set(true) the library queues every packet (the PUBACK
// included) instead of writing it at once; it leaves only when we call
// mosquitto_loop_write().
//
// The loop is mosquitto_loop() taken apart (poll(), mosquitto_loop_read(),
// mosquitto_loop_write(), mosquitto_loop_misc()) so that the reads and the writes can be
// separated: on_message only copies the message into the link's batch; the loop reads
// while the socket holds more (FIONREAD), then hands the batch to the handler, and only
// after the handler has returned writes the queued PUBACKs. mosquitto_loop() itself would
// write the PUBACK of a message right after reading it, in the same call.
#include "opendms/field/mqtt_subscriber.hpp"

#include <mosquitto.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "opendms/log.hpp"

namespace opendms::field {
namespace {

constexpr const char* component = "mqtt";
// How long one mosquitto_loop() call may wait for traffic: bounds how soon stop() is seen.
constexpr int loop_timeout_ms = 250;
constexpr std::chrono::milliseconds first_store_retry{100};
constexpr std::chrono::milliseconds max_store_retry{5000};
constexpr std::chrono::milliseconds disconnect_grace{2000};
// EX_TEMPFAIL: stopped while a message could not be stored (see the header).
constexpr int exit_unstored = 75;

void init_library() {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
}

/// A libmosquitto return code as text; `saved_errno` is errno right after the call.
std::string error_text(int rc, int saved_errno) {
    if (rc == MOSQ_ERR_ERRNO) return std::strerror(saved_errno);
    return mosquitto_strerror(rc);
}

std::string seconds_text(std::chrono::milliseconds d) {
    long long ms = d.count();
    return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s";
}

}  // namespace

struct mqtt_subscriber::impl {
    struct link {
        impl* owner = nullptr;
        int index = 0;
        std::string client_id;
        std::vector<std::string> filters;  // what is subscribed, $share/ prefix included
        mosquitto* mosq = nullptr;
        std::thread thread;
        // Used by the link's own network thread only.
        bool accepted = false;  // the broker accepted this connection (CONNACK 0)
        bool subscribed = false;
        int subscribe_mid = -1;
        int failures = 0;  // connection attempts since the last successful subscription
        std::string last_problem;
        std::vector<mqtt_message> batch;  // read, not yet handed over (PUBACKs queued)
        std::size_t batch_bytes = 0;

        link() = default;
        link(const link&) = delete;
        link& operator=(const link&) = delete;
        ~link() {
            if (mosq != nullptr) mosquitto_destroy(mosq);
        }
        void run();
        int pump();
        int step(int timeout_ms);
        int read_available();
        void close();
        std::chrono::milliseconds next_delay();
    };

    mqtt_options options;
    batch_handler handler;
    std::vector<std::unique_ptr<link>> links;
    bool started = false;
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> handled{0};
    std::atomic<int> subscribed{0};
    std::mutex mutex;
    std::condition_variable wake;  // interrupts waits when stop() is called
    std::mt19937 jitter{std::random_device{}()};

    impl(mqtt_options o, batch_handler h) : options(std::move(o)), handler(std::move(h)) {}

    /// Sleeps for `d` or until stop(); true when stopping.
    bool pause(std::chrono::milliseconds d) {
        std::unique_lock<std::mutex> lock(mutex);
        return wake.wait_for(lock, d, [this] { return stopping.load(); });
    }

    status create(link& l);

    // libmosquitto's callbacks, on the link's network thread; `obj` is the link.
    static link& link_of(void* obj);
    static void mark_subscribed(link& l);
    static void on_connect(mosquitto* mosq, void* obj, int rc, int flags);
    static void on_subscribe(mosquitto* mosq, void* obj, int mid, int count, const int* granted);
    static void on_disconnect(mosquitto* mosq, void* obj, int rc);
    static void on_message(mosquitto* mosq, void* obj, const mosquitto_message* msg);
    static void on_library_log(mosquitto* mosq, void* obj, int level, const char* text);
    void deliver(link& l, std::vector<mqtt_message>& batch);
    std::vector<status> call_handler(int index, const std::vector<mqtt_message>& batch);
    void store_alone(link& l, std::vector<mqtt_message>& one);
};

mqtt_subscriber::impl::link& mqtt_subscriber::impl::link_of(void* obj) {
    return *static_cast<link*>(obj);
}

void mqtt_subscriber::impl::on_connect(mosquitto* mosq, void* obj, int rc, int flags) {
    auto& l = link_of(obj);
    const mqtt_options& o = l.owner->options;
    if (rc != 0) {
        l.last_problem =
            std::string("the broker refused the connection: ") + mosquitto_connack_string(rc);
        OPENDMS_LOG(
            error, component,
            "connection " << l.index << " (client id " << l.client_id << "): " << l.last_problem);
        return;
    }
    l.accepted = true;
    OPENDMS_LOG(info, component,
                "connection " << l.index << " (client id " << l.client_id << ") connected to "
                              << o.host << ":" << o.port
                              << (o.tls_ca_file.empty() ? "" : " over TLS")
                              << ", session present: " << ((flags & 1) ? "yes" : "no"));
    // A kept session still holds the subscriptions, and the broker sends what it queued
    // for them before it answers a new SUBSCRIBE (after the whole backlog): count the
    // connection as subscribed now. Subscribing again anyway is harmless and repairs a
    // session the broker lost or a changed MQTT_TOPIC.
    if ((flags & 1) != 0) mark_subscribed(l);
    std::vector<char*> filters;
    for (std::string& f : l.filters) filters.push_back(f.data());
    int sub = mosquitto_subscribe_multiple(mosq, &l.subscribe_mid, static_cast<int>(filters.size()),
                                           filters.data(), 1, 0, nullptr);
    if (sub != MOSQ_ERR_SUCCESS) {
        l.last_problem = std::string("cannot subscribe: ") + mosquitto_strerror(sub);
        OPENDMS_LOG(error, component, "connection " << l.index << ": " << l.last_problem);
        mosquitto_disconnect(mosq);
    }
}

void mqtt_subscriber::impl::mark_subscribed(link& l) {
    if (!l.subscribed) {
        l.subscribed = true;
        l.owner->subscribed.fetch_add(1);
    }
    l.failures = 0;
}

void mqtt_subscriber::impl::on_subscribe(mosquitto* mosq, void* obj, int mid, int count,
                                         const int* granted) {
    auto& l = link_of(obj);
    if (mid != l.subscribe_mid) return;
    std::string names;
    for (const std::string& f : l.filters) names += (names.empty() ? "" : ", ") + f;
    for (int i = 0; i < count; ++i) {
        if (granted[i] > 2) {
            l.last_problem = "the broker refused the subscription to " + names +
                             " (check its ACL for this user)";
            OPENDMS_LOG(error, component, "connection " << l.index << ": " << l.last_problem);
            mosquitto_disconnect(mosq);
            return;
        }
    }
    mark_subscribed(l);
    l.last_problem.clear();
    OPENDMS_LOG(info, component,
                "connection " << l.index << " subscribed to " << names << " at QoS 1");
}

void mqtt_subscriber::impl::on_disconnect(mosquitto*, void* obj, int rc) {
    auto& l = link_of(obj);
    if (l.subscribed) {
        l.subscribed = false;
        l.owner->subscribed.fetch_sub(1);
    }
    bool was_up = l.accepted;
    l.accepted = false;
    if (rc == 0) {
        OPENDMS_LOG(info, component, "connection " << l.index << " disconnected");
        return;
    }
    if (l.last_problem.empty()) l.last_problem = mosquitto_strerror(rc);
    // A connection attempt that failed is reported once, by the retry line of run().
    if (was_up) {
        OPENDMS_LOG(warning, component,
                    "connection " << l.index << " lost: " << mosquitto_strerror(rc));
    }
}

// Only copies the message: it is handed over with the rest of its batch by step(), before
// the PUBACK that libmosquitto has just queued for it can be written.
void mqtt_subscriber::impl::on_message(mosquitto*, void* obj, const mosquitto_message* msg) {
    auto& l = link_of(obj);
    mqtt_message m;
    if (msg->topic != nullptr) m.topic = msg->topic;
    if (msg->payload != nullptr && msg->payloadlen > 0) {
        m.payload.assign(static_cast<const char*>(msg->payload),
                         static_cast<std::size_t>(msg->payloadlen));
    }
    l.batch_bytes += m.payload.size();
    l.batch.push_back(std::move(m));
}

void mqtt_subscriber::impl::on_library_log(mosquitto*, void* obj, int level, const char* text) {
    if (level != MOSQ_LOG_ERR && level != MOSQ_LOG_WARNING) return;
    OPENDMS_LOG(warning, component,
                "connection " << link_of(obj).index << ": libmosquitto: " << text);
}

status mqtt_subscriber::impl::create(link& l) {
    l.mosq = mosquitto_new(l.client_id.c_str(), false, &l);
    if (l.mosq == nullptr) {
        return status(errc::internal,
                      std::string("mqtt.start: mosquitto_new: ") + std::strerror(errno));
    }
    mosquitto* m = l.mosq;
    mosquitto_threaded_set(m, true);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);  // PUBACKs are tiny: do not delay them
    if (!options.username.empty()) {
        const char* pw = options.password.empty() ? nullptr : options.password.c_str();
        if (int rc = mosquitto_username_pw_set(m, options.username.c_str(), pw); rc != 0) {
            return status(errc::invalid_argument,
                          std::string("mqtt.start: MQTT_USERNAME: ") + mosquitto_strerror(rc));
        }
    }
    if (!options.tls_ca_file.empty()) {
        int rc =
            mosquitto_tls_set(m, options.tls_ca_file.c_str(), nullptr, nullptr, nullptr, nullptr);
        if (rc != MOSQ_ERR_SUCCESS) {
            return status(errc::invalid_argument, "mqtt.start: MQTT_TLS_CA_FILE '" +
                                                      options.tls_ca_file +
                                                      "': " + mosquitto_strerror(rc));
        }
        mosquitto_tls_insecure_set(m, false);  // the broker's name must match its certificate
    }
    mosquitto_connect_with_flags_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_log_callback_set(m, on_library_log);
    return status::ok();
}

std::vector<status> mqtt_subscriber::impl::call_handler(int index,
                                                       const std::vector<mqtt_message>& batch) {
    status failed;
    try {
        std::vector<status> r = handler(index, batch);
        if (r.size() == batch.size()) return r;
        failed = status(errc::internal, "message handler returned " + std::to_string(r.size()) +
                                            " results for " + std::to_string(batch.size()) +
                                            " messages");
    } catch (const std::exception& e) {
        failed = status(errc::internal, std::string("message handler threw: ") + e.what());
    } catch (...) {
        failed = status(errc::internal, "message handler threw an unknown exception");
    }
    return std::vector<status>(batch.size(), failed);
}

// Hands the batch over; a message the handler fails is offered again alone (after the
// rest of its batch) until it is stored. Returns only when every message of the batch is
// durable (or ends the process).
void mqtt_subscriber::impl::deliver(link& l, std::vector<mqtt_message>& batch) {
    if (batch.empty()) return;
    std::vector<status> results = call_handler(l.index, batch);
    std::uint64_t ok = 0;
    for (const status& r : results) ok += r ? 1 : 0;
    handled.fetch_add(ok);
    if (ok == batch.size()) return;
    std::vector<mqtt_message> one(1);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (results[i]) continue;
        one[0] = std::move(batch[i]);
        store_alone(l, one);
    }
}

// The message failed in its batch (or was not offered: see the message_handler adapter):
// offered alone, at once and then with capped backoff, until it is stored.
void mqtt_subscriber::impl::store_alone(link& l, std::vector<mqtt_message>& one) {
    const std::string& topic = one[0].topic;
    std::chrono::milliseconds delay = first_store_retry;
    for (int attempt = 1;; ++attempt) {
        status s = call_handler(l.index, one)[0];
        if (s) {
            handled.fetch_add(1);
            if (attempt > 1) {
                OPENDMS_LOG(notice, component,
                            "connection " << l.index << ": message on " << topic << " stored after "
                                          << attempt << " attempts");
            }
            return;
        }
        if (stopping.load()) {
            // Returning would acknowledge a message that is not stored: end the process
            // instead; the broker redelivers it to the kept session.
            OPENDMS_LOG(error, component,
                        "connection " << l.index << ": stopping while a message on " << topic
                                      << " cannot be stored (" << s.message()
                                      << "); exiting without acknowledging it (exit "
                                      << exit_unstored << "), the broker keeps it");
            ::_exit(exit_unstored);
        }
        if (attempt == 1) {
            OPENDMS_LOG(error, component,
                        "connection " << l.index << ": cannot store a message on " << topic << ": "
                                      << s.to_string() << "; not acknowledged, retrying");
        } else {
            OPENDMS_LOG(warning, component,
                        "connection " << l.index << ": still cannot store a message on " << topic
                                      << " (attempt " << attempt << "): " << s.to_string()
                                      << "; retrying in " << seconds_text(delay));
        }
        pause(delay);
        delay = std::min(delay * 2, max_store_retry);
    }
}

std::chrono::milliseconds mqtt_subscriber::impl::link::next_delay() {
    const mqtt_options& o = owner->options;
    long long max_ms = std::max(o.reconnect_max_s, 1) * 1000LL;
    long long ms = std::max(o.reconnect_min_s, 1) * 1000LL << std::min(failures, 16);
    ms = std::min(ms, max_ms);
    ++failures;
    // Up to a quarter less, so that several clients do not retry in step.
    std::lock_guard<std::mutex> lock(owner->mutex);
    std::uniform_int_distribution<long long> cut(0, ms / 4);
    return std::chrono::milliseconds(ms - cut(owner->jitter));
}

int mqtt_subscriber::impl::link::pump() {
    while (!owner->stopping.load()) {
        int rc = step(loop_timeout_ms);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
    }
    return MOSQ_ERR_SUCCESS;
}

// One turn of the network loop: what mosquitto_loop() does, except that every message
// read is handed over (stored) before any PUBACK is written.
int mqtt_subscriber::impl::link::step(int timeout_ms) {
    const int fd = mosquitto_socket(mosq);
    if (fd < 0) return MOSQ_ERR_NO_CONN;
    pollfd p{fd, POLLIN, 0};
    if (mosquitto_want_write(mosq)) p.events |= POLLOUT;
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0) return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
    if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const int rc = read_available();
        const int saved_errno = errno;
        // What was read is stored even when the read then failed: the broker redelivers
        // it (no PUBACK left), and the copy becomes a mesh duplicate, not a second record;
        // a broker that lost it meanwhile cannot take it from us.
        owner->deliver(*this, batch);
        batch.clear();
        batch_bytes = 0;
        errno = saved_errno;
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(mosq) < 0) return rc;
    }
    if (mosquitto_want_write(mosq)) {
        const int rc = mosquitto_loop_write(mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(mosq) < 0) return rc;
    }
    return mosquitto_loop_misc(mosq);
}

// Reads packets while the socket holds more bytes, up to one batch; on_message collects
// the messages in `batch`. mosquitto_loop_read() reads one packet a call (a TLS record's
// worth more); FIONREAD tells whether the next is already here, so a message that arrives
// alone is handed over at once.
int mqtt_subscriber::impl::link::read_available() {
    for (;;) {
        const int rc = mosquitto_loop_read(mosq, 1);
        const int fd = mosquitto_socket(mosq);
        if (rc != MOSQ_ERR_SUCCESS || fd < 0) return rc;
        if (batch.size() >= max_batch_messages || batch_bytes >= max_batch_bytes) return rc;
        int waiting = 0;
        if (::ioctl(fd, FIONREAD, &waiting) != 0 || waiting <= 0) return rc;
    }
}

void mqtt_subscriber::impl::link::run() {
    const mqtt_options& o = owner->options;
    while (!owner->stopping.load()) {
        last_problem.clear();
        int rc = mosquitto_connect_async(mosq, o.host.c_str(), o.port, o.keepalive_s);
        int saved_errno = errno;
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = pump();
            saved_errno = errno;
            if (owner->stopping.load()) break;
        }
        std::string why = !last_problem.empty() ? last_problem : error_text(rc, saved_errno);
        std::chrono::milliseconds delay = next_delay();
        OPENDMS_LOG(warning, component,
                    "connection " << index << ": not connected to " << o.host << ":" << o.port
                                  << " (" << why << "); retrying in " << seconds_text(delay));
        if (owner->pause(delay)) break;
    }
    close();
}

void mqtt_subscriber::impl::link::close() {
    if (mosquitto_socket(mosq) < 0) return;
    // Sends what is queued (the last PUBACKs) and then DISCONNECT, so that the broker
    // keeps the session without waiting for the keepalive to run out. A message that
    // arrives meanwhile is stored before its PUBACK, as always.
    mosquitto_disconnect(mosq);
    auto deadline = std::chrono::steady_clock::now() + disconnect_grace;
    while (std::chrono::steady_clock::now() < deadline) {
        if (step(100) != MOSQ_ERR_SUCCESS) break;
        if (mosquitto_socket(mosq) < 0) break;
    }
}

mqtt_subscriber::mqtt_subscriber(mqtt_options options, batch_handler handler)
    : impl_(std::make_unique<impl>(std::move(options), std::move(handler))) {}

// Message by message, in order; after the first failure the rest of the batch is failed
// too (not offered), so that they are then offered alone in their order.
mqtt_subscriber::mqtt_subscriber(mqtt_options options, message_handler handler)
    : mqtt_subscriber(std::move(options),
                      batch_handler([h = std::move(handler)](
                                        int index, const std::vector<mqtt_message>& batch) {
                          std::vector<status> out;
                          out.reserve(batch.size());
                          for (const mqtt_message& m : batch) {
                              if (!out.empty() && !out.back()) {
                                  out.push_back(out.back());
                                  continue;
                              }
                              out.push_back(h(index, m.topic, m.payload));
                          }
                          return out;
                      })) {}

mqtt_subscriber::~mqtt_subscriber() {
    stop();
}

status mqtt_subscriber::start() {
    if (impl_->started) return status(errc::conflict, "mqtt.start: already started");
    init_library();
    const mqtt_options& o = impl_->options;
    if (o.connections < 1 || o.topics.empty()) {
        return status(errc::invalid_argument, "mqtt.start: needs a topic and a connection");
    }
    for (int i = 0; i < o.connections; ++i) {
        auto l = std::make_unique<impl::link>();
        l->owner = impl_.get();
        l->index = i;
        l->client_id = i == 0 ? o.client_id : o.client_id + "-" + std::to_string(i);
        for (const std::string& t : o.topics) {
            l->filters.push_back(o.connections > 1 ? "$share/" + o.share_group + "/" + t : t);
        }
        if (status s = impl_->create(*l); !s) {
            impl_->links.clear();  // no thread runs yet
            return s;
        }
        impl_->links.push_back(std::move(l));
    }
    impl_->started = true;
    for (auto& l : impl_->links) {
        impl::link* p = l.get();
        p->thread = std::thread([p] { p->run(); });
    }
    return status::ok();
}

void mqtt_subscriber::stop() {
    if (!impl_ || !impl_->started) return;
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->stopping.store(true);
    }
    impl_->wake.notify_all();
    for (auto& l : impl_->links) {
        if (l->thread.joinable()) l->thread.join();
    }
}

std::uint64_t mqtt_subscriber::handled() const {
    return impl_->handled.load();
}

int mqtt_subscriber::connected() const {
    return impl_->subscribed.load();
}

}  // namespace opendms::field
