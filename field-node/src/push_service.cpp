// push_service: the pusher's resources and thread (see push_service.hpp).
#include "opendms/field/push_service.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <random>

#include "opendms/clock.hpp"
#include "opendms/log.hpp"

namespace opendms::field {

result<std::unique_ptr<push_service>> push_service::open(const field_settings& s) {
    std::unique_ptr<push_service> svc(new push_service());
    const std::string lock_path = s.common.db.database + ".push.lock";
    if (s.common.db.database != ":memory:") {
        svc->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (svc->lock_fd_ < 0) {
            return status(errc::io_error, "push: cannot open the lock file " + lock_path + ": " +
                                              std::strerror(errno));
        }
        if (::flock(svc->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            return status(errc::conflict,
                          "push: another opendms-field process is already delivering this "
                          "database (" + lock_path + " is locked); stop it first");
        }
    }
    auto c = db::open(s.common.db);
    if (!c) return c.error().context("push: open the database");
    svc->connection_ = std::move(*c);
    auto clients = https_client::create_pool(s.push.client, s.push.concurrency);
    if (!clients) return clients.error().context("CENTRAL_DMS_CA_FILE");
    svc->clients_ = std::move(*clients);
    std::vector<http_transport*> transports;
    for (const auto& client : svc->clients_) transports.push_back(client.get());
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    auto unit = [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
    svc->pusher_ = std::make_unique<pusher>(s.push, *svc->connection_, real_clock(),
                                            std::move(transports), unit);
    if (status st = svc->pusher_->open(); !st) return st.context("push");
    return svc;
}

push_service::~push_service() {
    stop();
    pusher_.reset();
    clients_.clear();
    connection_.reset();
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void push_service::start() {
    if (!thread_.joinable()) thread_ = std::thread([this] { pusher_->run(); });
}

void push_service::stop() {
    if (pusher_) pusher_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace opendms::field
