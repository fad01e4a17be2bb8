// pusher: the delivery loop (contract in pusher.hpp).
#include "opendms/field/pusher.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>

#include "opendms/config/settings.hpp"
#include "opendms/gzip.hpp"
#include "opendms/log.hpp"

namespace opendms::field {
namespace {

constexpr const char* component = "push";
constexpr const char* ingest_path = "/api/ingest";
constexpr std::int64_t batch_recheck_interval_ms = 3600 * 1000;  // auto mode on a seed central
constexpr std::int64_t database_retry_ms = 1000;

std::string seconds_text(std::int64_t ms) { return config::format_seconds(ms) + " s"; }

/// t.post(p), timed for the request observer (set_request_observer).
result<http_answer> timed_post(http_transport& t, const http_post& p,
                               const std::function<void(double)>& observer) {
    const auto start = std::chrono::steady_clock::now();
    auto answer = t.post(p);
    if (observer) observer(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return answer;
}

}  // namespace

/// One round: the records taken, and what became of each.
struct pusher::round {
    std::vector<outbox_item>& items;
    settlement outcome;
};

pusher::pusher(push_options options, db::connection& c, const clock& clk, http_transport& client,
               std::function<double()> random_unit)
    : pusher(std::move(options), c, clk, std::vector<http_transport*>{&client},
             std::move(random_unit)) {}

pusher::pusher(push_options options, db::connection& c, const clock& clk,
               std::vector<http_transport*> clients, std::function<double()> random_unit)
    : options_(std::move(options)),
      c_(c),
      clock_(clk),
      clients_(std::move(clients)),
      slot_busy_(clients_.size(), false),
      random_unit_(std::move(random_unit)),
      outbox_(c, clk),
      schedule_{options_.backoff, options_.jitter},
      pacer_(options_.max_rate),
      token_(options_.token),
      batch_limit_(std::max<std::size_t>(1, options_.batch_size)) {
    if (clients_.empty()) throw std::invalid_argument("pusher: no transport");  // a bug
}

pusher::~pusher() {
    for (flight& f : flights_) {
        if (f.answer.valid()) f.answer.wait();
    }
}

status pusher::open() {
    auto st = outbox_.load_state();
    if (!st) return st.error();
    state_ = *st;
    wire_base_sent_ = state_.bytes_sent;
    wire_base_received_ = state_.bytes_received;
    // A restart is a fresh start: one attempt now, whatever the backoff said. The failure
    // count is kept, so a failure continues the schedule where it was.
    next_attempt_ms_ = 0;
    if (state_.protocol == std::optional<std::string>("single")) {
        batch_recheck_ms_ = clock_.now_ms() + batch_recheck_interval_ms;
    }
    auto adopted = outbox_.adopt_orphans();
    if (!adopted) return adopted.error();
    if (*adopted > 0) {
        OPENDMS_LOG(notice, component,
                    "queued " << *adopted
                              << " pending record(s) that had no outbox entry (a database made "
                                 "by the Laravel field node, or records set back to pending)");
    }
    if (options_.insecure_http) {
        OPENDMS_LOG(warning, component,
                    "CENTRAL_DMS_ALLOW_HTTP: records and the token go to "
                        << options_.client.endpoint.url() << " UNENCRYPTED");
    }
    return status::ok();
}

pusher_stats pusher::stats() const {
    pusher_stats out;
    out.requests = stats_.requests.load();
    out.delivered = stats_.delivered.load();
    out.parked = stats_.parked.load();
    out.failed_attempts = stats_.failed_attempts.load();
    out.splits = stats_.splits.load();
    return out;
}

push_protocol pusher::current_protocol() const {
    if (options_.protocol != push_protocol::automatic) return options_.protocol;
    if (state_.protocol == std::optional<std::string>("single") &&
        clock_.now_ms() < batch_recheck_ms_) {
        return push_protocol::single;
    }
    return push_protocol::batch;
}

void pusher::refresh_token() {
    if (options_.token_file.empty()) return;
    auto t = config::read_token_file(options_.token_file);
    if (!t) {
        OPENDMS_LOG(warning, component,
                    "CENTRAL_DMS_TOKEN_FILE: " << t.error().message() << "; using the token read before");
        return;
    }
    if (*t != token_) OPENDMS_LOG(notice, component, "CENTRAL_DMS_TOKEN_FILE: a new token was read");
    token_ = std::move(*t);
}

std::vector<std::pair<std::string, std::string>> pusher::headers(bool batch, bool gzip) const {
    std::vector<std::pair<std::string, std::string>> h = {
        {"Authorization", "Bearer " + token_},
        {"Content-Type", "application/json"},
        {"Accept", "application/json"},
        {"Accept-Encoding", "gzip"},
    };
    if (batch && gzip) h.emplace_back("Content-Encoding", "gzip");
    return h;
}

void pusher::record_wire_counts() {
    std::int64_t sent = 0, received = 0;
    for (const http_transport* t : clients_) {
        const wire_counts w = t->counts();
        sent += static_cast<std::int64_t>(w.bytes_sent);
        received += static_cast<std::int64_t>(w.bytes_received);
    }
    state_.bytes_sent = wire_base_sent_ + sent;
    state_.bytes_received = wire_base_received_ + received;
}

status pusher::settle(round& r) {
    record_wire_counts();
    r.outcome.state = state_;
    status s = outbox_.settle(r.outcome);
    if (s) {
        stats_.delivered += r.outcome.delivered.size();
        stats_.parked += r.outcome.parked.size();
        for (const auto& [item, reason] : r.outcome.parked) {
            OPENDMS_LOG(warning, component,
                        "parked record " << item->record.id.value_or(0) << " (uuid "
                                         << item->record.uuid.value_or("none") << "): " << reason
                                         << "; `opendms-field requeue` sends it again");
        }
    }
    return s;
}

result<step_result> pusher::on_success(round& r, std::int64_t now_ms) {
    if (state_.consecutive_failures > 0) {
        OPENDMS_LOG(notice, component,
                    "delivery resumed after " << state_.consecutive_failures << " failed attempt(s)");
    }
    if (state_.auth_alarm_at) {
        OPENDMS_LOG(notice, component, "the central server accepts our token again: auth alarm cleared");
    }
    state_.consecutive_failures = 0;
    state_.auth_alarm_at.reset();
    state_.last_attempt_at = now_ms / 1000;
    state_.last_success_at = now_ms / 1000;
    state_.next_attempt_at.reset();
    next_attempt_ms_ = 0;
    if (status s = settle(r); !s) return s;
    return step_result{step_result::sent, clock_.now_ms()};
}

result<step_result> pusher::on_failure(round& r, const std::string& error, answer_kind kind,
                                       std::optional<std::chrono::milliseconds> retry_after,
                                       std::int64_t now_ms, bool counts) {
    for (outbox_item& it : r.items) {
        bool settled = false;
        for (const outbox_item* d : r.outcome.delivered) settled = settled || d == &it;
        for (const auto& p : r.outcome.parked) settled = settled || p.first == &it;
        if (!settled) r.outcome.failed.push_back(&it);
    }
    r.outcome.error = error;
    if (!counts) {
        // A request sent before the failure that set the backoff: the same attempt.
        OPENDMS_LOG(info, component, "push failed as well (" << error << "); "
                                         << r.outcome.failed.size() << " record(s) kept");
        r.outcome.next_attempt_at = state_.next_attempt_at;
        if (status s = settle(r); !s) return s;
        return step_result{step_result::sent, std::max(next_attempt_ms_, now_ms)};
    }
    ++attempt_;
    const int failures = static_cast<int>(std::min<std::int64_t>(state_.consecutive_failures + 1, 1 << 30));
    const std::chrono::milliseconds delay =
        retry_delay(schedule_, failures, retry_after, random_unit_());
    next_attempt_ms_ = now_ms + delay.count();
    state_.consecutive_failures = failures;
    state_.last_attempt_at = now_ms / 1000;
    state_.last_error = error;
    state_.next_attempt_at = (next_attempt_ms_ + 999) / 1000;
    ++stats_.failed_attempts;
    const std::string when = "; " + std::to_string(r.outcome.failed.size()) +
                             " record(s) kept, next attempt in " + seconds_text(delay.count()) +
                             (retry_after ? " (Retry-After)" : "");
    if (kind == answer_kind::auth_refused) {
        if (!state_.auth_alarm_at) state_.auth_alarm_at = now_ms / 1000;
        OPENDMS_LOG(error, component,
                    "AUTH ALARM: the central server " << options_.client.endpoint.url()
                                                      << " refuses our token (" << error
                                                      << "); fix CENTRAL_DMS_TOKEN or "
                                                         "CENTRAL_DMS_TOKEN_FILE" << when);
    } else if (kind == answer_kind::misdirected) {
        OPENDMS_LOG(error, component,
                    "the central server " << options_.client.endpoint.url()
                                          << " answered as if CENTRAL_DMS_URL were wrong (" << error
                                          << ")" << when);
    } else {
        OPENDMS_LOG(warning, component,
                    "push failed (" << failures << " in a row): " << error << when);
    }
    r.outcome.next_attempt_at = state_.next_attempt_at;
    if (status s = settle(r); !s) return s;
    return step_result{step_result::sent, next_attempt_ms_};
}

status pusher::launch_batches(std::int64_t now_ms, std::int64_t& pace_wait_ms) {
    bool prepared = false;
    while (flights_.size() < clients_.size() && now_ms >= next_attempt_ms_ &&
           current_protocol() == push_protocol::batch) {
        const std::size_t limit = pacer_.max_batch(batch_limit_);
        if (std::int64_t wait = pacer_.wait_ms(now_ms, limit); wait > 0) {
            pace_wait_ms = wait;
            break;
        }
        if (!prepared) {
            auto demoted = outbox_.demote(now_ms / 1000 - options_.live_window_s);
            if (!demoted) return demoted.error();
            refresh_token();
            prepared = true;
        }
        std::vector<std::int64_t> in_flight;
        for (const flight& f : flights_) {
            for (const outbox_item& it : f.items) in_flight.push_back(it.outbox_id);
        }
        auto items = outbox_.next_batch(limit, in_flight);
        if (!items) return items.error();
        if (items->empty()) break;
        pacer_.sent(now_ms, items->size());

        http_post post;
        post.path = ingest_path;
        post.body = encode_batch(*items);
        const bool gzip = options_.gzip_level > 0;
        if (gzip) post.body = gzip_compress(post.body, options_.gzip_level);
        post.headers = headers(true, gzip);
        flight f;
        f.items = std::move(*items);
        f.attempt = attempt_;
        while (slot_busy_[f.slot]) ++f.slot;
        slot_busy_[f.slot] = true;
        http_transport* t = clients_[f.slot];
        // One transport: the request runs in finish (on this thread); several: each on its
        // own thread while this one prepares and settles the others.
        f.answer = std::async(clients_.size() > 1 ? std::launch::async : std::launch::deferred,
                              [t, p = std::move(post), o = &observer_] { return timed_post(*t, p, *o); });
        ++stats_.requests;
        flights_.push_back(std::move(f));
    }
    return status::ok();
}

result<step_result> pusher::finish_batch(flight& f, result<http_answer> answer) {
    std::vector<outbox_item>& items = f.items;
    const std::int64_t now_ms = clock_.now_ms();
    const bool counts = f.attempt == attempt_;
    round r{items, {}};
    if (!answer) {
        return on_failure(r, answer.error().message(), answer_kind::retry_later, std::nullopt, now_ms,
                          counts);
    }
    const answer_kind kind = classify_answer(answer->status, true);
    const auto retry_after = answer->retry_after
                                 ? parse_retry_after(*answer->retry_after, now_ms / 1000)
                                 : std::nullopt;
    switch (kind) {
        case answer_kind::accepted: {
            auto results = decode_batch_results(answer->body, items.size());
            if (!results) break;  // not our central's batch answer: see below
            for (std::size_t i = 0; i < items.size(); ++i) {
                const record_result& res = (*results)[i];
                if (res.verdict == record_verdict::delivered) {
                    r.outcome.delivered.push_back(&items[i]);
                } else {
                    r.outcome.parked.emplace_back(&items[i], res.reason);
                }
            }
            state_.protocol = "batch";
            return on_success(r, now_ms);
        }
        case answer_kind::too_large:
            if (items.size() == 1) {
                // That record was the cause: park it, and go back to full batches.
                r.outcome.parked.emplace_back(&items[0],
                                              reason_from_answer(answer->status, answer->body) +
                                                  " (the record alone is too large for the central server)");
                batch_limit_ = std::max<std::size_t>(1, options_.batch_size);
                return on_success(r, now_ms);
            }
            if (items.size() / 2 < batch_limit_) {  // requests sent together halve it once
                batch_limit_ = std::max<std::size_t>(1, items.size() / 2);
                ++stats_.splits;
                OPENDMS_LOG(notice, component,
                            "the central server refused " << items.size() << " records in one request (413); "
                                                          << "sending at most " << batch_limit_ << " from now on");
            }
            return step_result{step_result::sent, now_ms};
        case answer_kind::batch_unsupported:
            break;
        default:
            return on_failure(r, reason_from_answer(answer->status, answer->body), kind, retry_after,
                              now_ms, counts);
    }
    // A 2xx without per-record results, or 400/415/422 for the batch as a whole: the
    // central does not know the batch form (the Laravel seed answers 422 "The duck id field
    // is required."). Nothing was stored from it.
    const std::string why = reason_from_answer(answer->status, answer->body);
    if (options_.protocol == push_protocol::batch) {
        return on_failure(r, "the central server does not take batches (" + why +
                                 "); unset CENTRAL_DMS_PROTOCOL=batch to fall back to single records",
                          answer_kind::misdirected, std::nullopt, now_ms, counts);
    }
    if (state_.protocol != std::optional<std::string>("single") || now_ms >= batch_recheck_ms_) {
        OPENDMS_LOG(notice, component,
                    "the central server does not take batches ("
                        << why
                        << "): sending one record per request (the seed's form); batches are "
                           "tried again in an hour");
        state_.protocol = "single";
        batch_recheck_ms_ = now_ms + batch_recheck_interval_ms;
        if (status s = outbox_.save_state(state_); !s) return s;
    }
    return step_result{step_result::sent, now_ms};
}

result<step_result> pusher::send_singles(std::vector<outbox_item>& items, std::int64_t now_ms) {
    round r{items, {}};
    for (outbox_item& it : items) {
        http_post post;
        post.path = ingest_path;
        post.body = encode_single(it.record);
        post.headers = headers(false, false);
        ++stats_.requests;
        auto answer = timed_post(*clients_.front(), post, observer_);
        if (!answer) {
            return on_failure(r, answer.error().message(), answer_kind::retry_later, std::nullopt,
                              now_ms);
        }
        const answer_kind kind = classify_answer(answer->status, false);
        if (kind == answer_kind::accepted) {
            r.outcome.delivered.push_back(&it);
            continue;
        }
        if (kind == answer_kind::record_rejected || kind == answer_kind::too_large) {
            r.outcome.parked.emplace_back(&it, reason_from_answer(answer->status, answer->body));
            continue;
        }
        const auto retry_after = answer->retry_after
                                     ? parse_retry_after(*answer->retry_after, now_ms / 1000)
                                     : std::nullopt;
        return on_failure(r, reason_from_answer(answer->status, answer->body), kind, retry_after,
                          now_ms);
    }
    if (!state_.protocol) state_.protocol = "single";
    return on_success(r, now_ms);
}

result<step_result> pusher::step() {
    const std::int64_t now_ms = clock_.now_ms();
    if (flights_.empty() && current_protocol() == push_protocol::single) {
        if (now_ms < next_attempt_ms_) return step_result{step_result::waiting, next_attempt_ms_};
        const std::size_t limit = pacer_.max_batch(batch_limit_);
        if (std::int64_t wait = pacer_.wait_ms(now_ms, limit); wait > 0) {
            return step_result{step_result::waiting, now_ms + wait};
        }
        auto demoted = outbox_.demote(now_ms / 1000 - options_.live_window_s);
        if (!demoted) return demoted.error();
        auto items = outbox_.next_batch(limit);
        if (!items) return items.error();
        if (items->empty()) return step_result{step_result::idle, now_ms + options_.poll_interval.count()};
        refresh_token();
        pacer_.sent(now_ms, items->size());
        return send_singles(*items, now_ms);
    }
    std::int64_t pace_wait_ms = 0;
    if (status s = launch_batches(now_ms, pace_wait_ms); !s) return s;
    if (flights_.empty()) {
        if (now_ms < next_attempt_ms_) return step_result{step_result::waiting, next_attempt_ms_};
        if (pace_wait_ms > 0) return step_result{step_result::waiting, now_ms + pace_wait_ms};
        return step_result{step_result::idle, now_ms + options_.poll_interval.count()};
    }
    flight f = std::move(flights_.front());
    flights_.pop_front();
    result<http_answer> answer = f.answer.get();
    slot_busy_[f.slot] = false;
    return finish_batch(f, std::move(answer));
}

void pusher::run() {
    OPENDMS_LOG(info, component,
                "delivering to " << options_.client.endpoint.url() << ingest_path
                                 << (options_.client.proxy ? " through proxy " + options_.client.proxy->url() : "")
                                 << ", " << push_protocol_name(options_.protocol) << " protocol, up to "
                                 << options_.batch_size << " records a request");
    for (http_transport* t : clients_) t->reset_cancel();
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopping_) break;
            notified_ = false;
        }
        auto r = step();
        std::int64_t due_ms = 0;
        bool idle = false;
        if (!r) {
            OPENDMS_LOG(error, component,
                        "the outbox cannot be read or written (" << r.error().message()
                                                                 << "); trying again in 1 s");
            due_ms = clock_.now_ms() + database_retry_ms;
        } else {
            due_ms = r->due_ms;
            idle = r->kind == step_result::idle;
        }
        const std::int64_t wait = due_ms - clock_.now_ms();
        if (wait <= 0) continue;
        std::unique_lock<std::mutex> lock(mutex_);
        waiting_idle_ = idle;
        wake_.wait_for(lock, std::chrono::milliseconds(wait),
                       [&] { return stopping_ || (idle && notified_); });
        waiting_idle_ = false;
    }
    for (flight& f : flights_) {
        if (f.answer.valid()) (void)f.answer.get();  // cancelled: returns at once
    }
    flights_.clear();
    std::fill(slot_busy_.begin(), slot_busy_.end(), false);
    for (http_transport* t : clients_) t->close();
}

void pusher::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    for (http_transport* t : clients_) t->cancel();
    wake_.notify_all();
}

void pusher::notify() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (notified_) return;  // told already, not yet seen
        notified_ = true;
        // Busy or backing off: run() sees notified_ when it next waits idle. Waking it for
        // nothing costs two context switches per message on a gateway's few cores.
        if (!waiting_idle_) return;
    }
    wake_.notify_all();
}

}  // namespace opendms::field
