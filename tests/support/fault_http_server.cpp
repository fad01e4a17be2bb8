#include "fault_http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <cstring>
#include <stdexcept>

#include "opendms/gzip.hpp"

namespace opendms::test {
namespace {

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

int listen_on_loopback(unsigned short& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
        ::close(fd);
        throw std::runtime_error("bind/listen: " + std::string(std::strerror(errno)));
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return fd;
}

/// Waits until fd is readable or `stopping`; false when stopping.
bool wait_readable(int fd, const std::atomic<bool>& stopping) {
    while (!stopping.load()) {
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, 100);
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
    return false;
}

bool send_all(int fd, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

const char* reason_phrase(unsigned status) {
    switch (status) {
        case 200:
            return "OK";
        case 401:
            return "Unauthorized";
        case 413:
            return "Payload Too Large";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Status";
    }
}

std::string format_answer(const fault_action& a) {
    std::string out = "HTTP/1.1 " + std::to_string(a.status) + " " + reason_phrase(a.status) + "\r\n";
    out += "Content-Type: application/json\r\n";
    out += "Content-Length: " + std::to_string(a.body.size()) + "\r\n";
    for (const auto& [k, v] : a.headers) out += k + ": " + v + "\r\n";
    out += "\r\n";
    return out;
}

void reset_connection(int fd) {
    linger l{1, 0};  // close() now sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

std::string recorded_request::header(const std::string& name) const {
    const std::string want = lower(name);
    for (const auto& [k, v] : headers) {
        if (lower(k) == want) return v;
    }
    return {};
}

bool recorded_request::is_batch() const {
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    return !d.HasParseError() && d.IsObject() && d.HasMember("records");
}

std::vector<std::string> recorded_request::payloads() const {
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    std::vector<std::string> out;
    if (d.HasParseError() || !d.IsObject()) return out;
    auto payload_of = [](const rapidjson::Value& r) {
        return r.HasMember("payload") && r["payload"].IsString() ? std::string(r["payload"].GetString())
                                                                 : std::string();
    };
    if (d.HasMember("records") && d["records"].IsArray()) {
        for (const auto& r : d["records"].GetArray()) out.push_back(payload_of(r));
    } else {
        out.push_back(payload_of(d));
    }
    return out;
}

fault_action batch_answer(const recorded_request& r, const std::set<std::string>& rejected,
                          long first_id) {
    std::string results;
    long id = first_id;
    for (const std::string& p : r.payloads()) {
        if (!results.empty()) results += ',';
        if (rejected.count(p)) {
            results += R"({"status":"rejected","message":"The payload field is not allowed here.",)"
                       R"("errors":{"payload":["The payload field is not allowed here."]}})";
        } else {
            results += R"({"status":"stored","id":)" + std::to_string(id++) + "}";
        }
    }
    fault_action a;
    a.body = R"({"message":"Batch processed","results":[)" + results + "]}";
    return a;
}

fault_action single_answer(long id) {
    fault_action a;
    a.body = R"({"message":"Record ingested","id":)" + std::to_string(id) + "}";
    return a;
}

fault_action status_answer(unsigned status, const std::string& body) {
    fault_action a;
    a.status = status;
    a.body = body;
    return a;
}

fault_http_server::fault_http_server(handler h) : handler_(std::move(h)) {
    listen_fd_ = listen_on_loopback(port_);
    acceptor_ = std::thread([this] { accept_loop(); });
}

fault_http_server::~fault_http_server() {
    stopping_.store(true);
    if (acceptor_.joinable()) acceptor_.join();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) {
        if (t.joinable()) t.join();
    }
    ::close(listen_fd_);
}

void fault_http_server::set_handler(handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(h);
}

std::vector<recorded_request> fault_http_server::requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
}

std::size_t fault_http_server::request_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.size();
}

void fault_http_server::accept_loop() {
    while (wait_readable(listen_fd_, stopping_)) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        connections_.fetch_add(1);
        std::lock_guard<std::mutex> lock(mutex_);
        open_fds_.push_back(fd);
        workers_.emplace_back([this, fd] { serve(fd); });
    }
}

void fault_http_server::serve(int fd) {
    std::string buffer;
    char chunk[65536];
    for (;;) {
        // The head.
        std::size_t head_end;
        while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
            if (!wait_readable(fd, stopping_)) goto done;
            ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) goto done;
            buffer.append(chunk, static_cast<std::size_t>(n));
        }
        {
            recorded_request r;
            const std::string head = buffer.substr(0, head_end);
            std::size_t line_end = head.find("\r\n");
            const std::string request_line = head.substr(0, line_end);
            std::size_t sp1 = request_line.find(' ');
            std::size_t sp2 = request_line.find(' ', sp1 + 1);
            r.method = request_line.substr(0, sp1);
            r.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
            std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
            while (pos < head.size()) {
                std::size_t e = head.find("\r\n", pos);
                if (e == std::string::npos) e = head.size();
                const std::string line = head.substr(pos, e - pos);
                std::size_t colon = line.find(':');
                if (colon != std::string::npos) {
                    std::string v = line.substr(colon + 1);
                    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
                    r.headers.emplace_back(line.substr(0, colon), v);
                }
                pos = e + 2;
            }
            const std::string length = r.header("Content-Length");
            const std::size_t body_size = length.empty() ? 0 : std::stoul(length);
            buffer.erase(0, head_end + 4);
            while (buffer.size() < body_size) {
                if (!wait_readable(fd, stopping_)) goto done;
                ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
                if (n <= 0) goto done;
                buffer.append(chunk, static_cast<std::size_t>(n));
            }
            std::string body = buffer.substr(0, body_size);
            buffer.erase(0, body_size);
            r.wire_body_bytes = body.size();
            if (lower(r.header("Content-Encoding")) == "gzip") {
                std::string out;
                if (gzip_decompress(body, out, 256 << 20).error == gunzip_error::none) body = out;
            }
            r.body = std::move(body);

            handler h;
            std::size_t index;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                index = requests_.size();
                requests_.push_back(r);
                h = handler_;
            }
            const fault_action a = h(r, index);
            switch (a.kind) {
                case fault_action::never_answer:
                    while (!stopping_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    goto done;
                case fault_action::close_silently:
                    goto done;
                case fault_action::reset_mid_response:
                    send_all(fd, format_answer(a) + a.body.substr(0, a.body.size() / 2));
                    reset_connection(fd);
                    goto done;
                case fault_action::respond:
                    if (!send_all(fd, format_answer(a) + a.body) || a.close_after) goto done;
                    break;
            }
        }
    }
done:
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = open_fds_.begin(); it != open_fds_.end(); ++it) {
            if (*it == fd) {
                open_fds_.erase(it);
                break;
            }
        }
    }
    ::close(fd);
}

// ---- connect_proxy ---------------------------------------------------------------------

connect_proxy::connect_proxy() {
    listen_fd_ = listen_on_loopback(port_);
    acceptor_ = std::thread([this] { accept_loop(); });
}

connect_proxy::~connect_proxy() {
    stopping_.store(true);
    if (acceptor_.joinable()) acceptor_.join();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) {
        if (t.joinable()) t.join();
    }
    ::close(listen_fd_);
}

std::vector<std::string> connect_proxy::targets() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return targets_;
}

std::vector<std::string> connect_proxy::authorizations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return authorizations_;
}

void connect_proxy::accept_loop() {
    while (wait_readable(listen_fd_, stopping_)) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        open_fds_.push_back(fd);
        workers_.emplace_back([this, fd] { tunnel(fd); });
    }
}

void connect_proxy::tunnel(int client) {
    std::string head;
    char chunk[65536];
    int upstream = -1;
    while (head.find("\r\n\r\n") == std::string::npos) {
        if (!wait_readable(client, stopping_)) goto done;
        ssize_t n = ::recv(client, chunk, 1, 0);  // byte by byte: nothing past the head
        if (n <= 0) goto done;
        head.append(chunk, static_cast<std::size_t>(n));
    }
    {
        std::size_t sp1 = head.find(' ');
        std::size_t sp2 = head.find(' ', sp1 + 1);
        const std::string method = head.substr(0, sp1);
        const std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
        std::string authorization;
        std::size_t at = lower(head).find("\r\nproxy-authorization: ");
        if (at != std::string::npos) {
            std::size_t start = at + 23;
            authorization = head.substr(start, head.find("\r\n", start) - start);
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            targets_.push_back(target);
            authorizations_.push_back(authorization);
        }
        std::size_t colon = target.rfind(':');
        const std::string host = target.substr(0, colon);
        if (method != "CONNECT" || colon == std::string::npos ||
            (host != "127.0.0.1" && host != "localhost")) {
            send_all(client, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
            goto done;
        }
        upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<unsigned short>(std::stoi(target.substr(colon + 1))));
        if (::connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            goto done;
        }
        send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
        while (!stopping_.load()) {
            pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
            int n = ::poll(p, 2, 100);
            if (n < 0 && errno != EINTR) break;
            bool closed = false;
            for (int i = 0; i < 2 && !closed; ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t got = ::recv(p[i].fd, chunk, sizeof chunk, 0);
                if (got <= 0 || !send_all(i == 0 ? upstream : client,
                                          std::string(chunk, static_cast<std::size_t>(got)))) {
                    closed = true;
                }
            }
            if (closed) break;
        }
    }
done:
    if (upstream >= 0) ::close(upstream);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = open_fds_.begin(); it != open_fds_.end(); ++it) {
            if (*it == client) {
                open_fds_.erase(it);
                break;
            }
        }
    }
    ::close(client);
}

}  // namespace opendms::test
