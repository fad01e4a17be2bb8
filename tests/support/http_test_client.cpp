#include "http_test_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace opendms::test {
namespace {

using steady = std::chrono::steady_clock;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

int remaining_ms(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    return static_cast<int>(std::clamp<long long>(left.count(), 0, 1000));
}

bool has_header(const header_list& headers, std::string_view name) {
    return std::any_of(headers.begin(), headers.end(),
                       [&](const auto& h) { return iequals(h.first, name); });
}

/// The parsed head of a response: status line and headers; `size` bytes long.
struct head {
    http_response response;
    std::size_t size = 0;
};

bool parse_head(const std::string& buf, std::size_t end, head& out) {
    std::size_t line_end = buf.find("\r\n");
    std::string_view line(buf.data(), line_end);
    if (line.substr(0, 7) != "HTTP/1.") return false;
    std::size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || line.size() < sp1 + 4) return false;
    out.response.version = std::string(line.substr(0, sp1));
    std::string code(line.substr(sp1 + 1, 3));
    if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    out.response.status = static_cast<unsigned>(std::stoi(code));
    if (line.size() > sp1 + 5) out.response.reason = std::string(line.substr(sp1 + 5));
    std::size_t at = line_end + 2;
    while (at < end) {
        std::size_t e = buf.find("\r\n", at);
        std::string_view h(buf.data() + at, e - at);
        std::size_t colon = h.find(':');
        if (colon == std::string_view::npos) return false;
        out.response.headers.emplace_back(std::string(h.substr(0, colon)),
                                          trim(h.substr(colon + 1)));
        at = e + 2;
    }
    out.size = end + 4;
    return true;
}

enum class body_state { complete, need_more, malformed };

/// Decodes a chunked body starting at `at`; on completion `consumed` is the end offset.
body_state decode_chunked(const std::string& buf, std::size_t at, std::string& body,
                          std::size_t& consumed) {
    body.clear();
    for (;;) {
        std::size_t e = buf.find("\r\n", at);
        if (e == std::string::npos) return body_state::need_more;
        std::string size_line = buf.substr(at, e - at);
        size_line = size_line.substr(0, size_line.find(';'));
        if (size_line.empty() || size_line.size() > 15 ||
            size_line.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            return body_state::malformed;
        }
        std::size_t n = std::stoul(size_line, nullptr, 16);
        at = e + 2;
        if (n == 0) {
            // Trailers, then an empty line.
            for (;;) {
                std::size_t t = buf.find("\r\n", at);
                if (t == std::string::npos) return body_state::need_more;
                bool empty = t == at;
                at = t + 2;
                if (empty) {
                    consumed = at;
                    return body_state::complete;
                }
            }
        }
        if (buf.size() < at + n + 2) return body_state::need_more;
        body.append(buf, at, n);
        at += n + 2;
    }
}

}  // namespace

// ---- http_response / http_result ----------------------------------------------------------

std::string http_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (iequals(k, name)) return v;
    }
    return "";
}

bool http_response::has_header(std::string_view name) const {
    return header_count(name) > 0;
}

std::size_t http_response::header_count(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(
        headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); }));
}

const char* outcome_name(http_outcome o) noexcept {
    switch (o) {
        case http_outcome::response:
            return "response";
        case http_outcome::closed:
            return "closed";
        case http_outcome::timeout:
            return "timeout";
        case http_outcome::malformed:
            return "malformed";
    }
    return "?";
}

std::string http_result::describe() const {
    if (ok()) {
        std::string body =
            response.body.size() > 600 ? response.body.substr(0, 600) + "..." : response.body;
        return std::to_string(response.status) + " " + body;
    }
    return std::string(outcome_name(outcome)) + ": " + detail;
}

std::string format_request(std::string_view method, std::string_view target,
                           const header_list& headers, std::string_view body,
                           std::string_view version) {
    std::string out;
    out.reserve(256 + body.size());
    out.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
    if (!has_header(headers, "Host")) out.append("Host: 127.0.0.1\r\n");
    for (const auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
    bool bodyless_method = method == "GET" || method == "HEAD" || method == "DELETE";
    if (!has_header(headers, "Content-Length") && !has_header(headers, "Transfer-Encoding") &&
        !(bodyless_method && body.empty())) {
        out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    out.append("\r\n").append(body);
    return out;
}

// ---- http_connection ----------------------------------------------------------------------

http_connection::http_connection(unsigned short port, ms default_timeout)
    : timeout_(default_timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw std::runtime_error("http_connection: socket: " + std::string(strerror(errno)));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::string why = strerror(errno);
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error("http_connection: connect 127.0.0.1:" + std::to_string(port) +
                                 ": " + why);
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

http_connection::~http_connection() {
    if (fd_ >= 0) ::close(fd_);
}

bool http_connection::send_raw(std::string_view bytes, ms timeout) {
    auto deadline = steady::now() + timeout;
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (steady::now() >= deadline) return false;
            pollfd p{fd_, POLLOUT, 0};
            ::poll(&p, 1, remaining_ms(deadline));
            if ((p.revents & (POLLERR | POLLHUP)) != 0) return false;
            continue;
        }
        return false;  // EPIPE, ECONNRESET: the server closed
    }
    return true;
}

bool http_connection::readable_now() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

std::size_t http_connection::send_slowly(std::string_view bytes, std::size_t piece, ms pause) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        if (readable_now()) break;
        std::size_t n = std::min(piece, bytes.size() - sent);
        if (!send_raw(bytes.substr(sent, n), timeout_)) break;
        sent += n;
        if (sent < bytes.size()) std::this_thread::sleep_for(pause);
    }
    return sent;
}

std::size_t http_connection::stream_body(std::string_view head, std::size_t total,
                                         std::string_view pattern, bool chunked, ms timeout) {
    auto deadline = steady::now() + timeout;
    if (!send_raw(head, timeout)) return 0;
    std::string piece(pattern);
    if (chunked) {
        char size_line[32];
        std::snprintf(size_line, sizeof size_line, "%zx\r\n", pattern.size());
        piece = size_line + piece + "\r\n";
    }
    std::size_t sent = 0;
    while (sent < total) {
        if (readable_now() || steady::now() >= deadline) return sent;
        std::size_t n = chunked ? pattern.size() : std::min(pattern.size(), total - sent);
        std::string_view out = chunked ? std::string_view(piece) : pattern.substr(0, n);
        // Wait for room in short steps, so an answer from the server is noticed early.
        pollfd p{fd_, POLLOUT | POLLIN, 0};
        ::poll(&p, 1, remaining_ms(deadline));
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) return sent;
        if ((p.revents & POLLOUT) == 0) continue;
        if (!send_raw(out, std::chrono::duration_cast<ms>(deadline - steady::now()))) return sent;
        sent += n;
    }
    if (chunked) send_raw("0\r\n\r\n", timeout);
    return sent;
}

http_connection::fill_result http_connection::fill(steady::time_point deadline) {
    if (eof_) return fill_result::eof;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            buffer_.append(buf, static_cast<std::size_t>(n));
            return fill_result::data;
        }
        if (n == 0) {
            eof_ = true;
            return fill_result::eof;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            eof_ = true;  // ECONNRESET and the like
            return fill_result::eof;
        }
        if (steady::now() >= deadline) return fill_result::timeout;
        pollfd p{fd_, POLLIN, 0};
        ::poll(&p, 1, remaining_ms(deadline));
    }
}

http_result http_connection::read_response(ms timeout) {
    auto deadline = steady::now() + timeout;
    http_result r;
    for (;;) {
        std::size_t end = buffer_.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (buffer_.size() >= 5 && buffer_.compare(0, 5, "HTTP/") != 0) {
                r.outcome = http_outcome::malformed;
                r.detail = "not an HTTP response: " + buffer_.substr(0, 80);
                return r;
            }
            fill_result f = fill(deadline);
            if (f == fill_result::data) continue;
            r.outcome = f == fill_result::eof ? http_outcome::closed : http_outcome::timeout;
            r.detail = (f == fill_result::eof ? "connection closed after " : "timed out after ") +
                       std::to_string(buffer_.size()) + " bytes of a response head";
            return r;
        }
        head h;
        if (!parse_head(buffer_, end, h)) {
            r.outcome = http_outcome::malformed;
            r.detail = "bad response head: " + buffer_.substr(0, std::min<std::size_t>(end, 200));
            return r;
        }
        if (h.response.status >= 100 && h.response.status < 200) {
            buffer_.erase(0, h.size);
            continue;
        }
        // The body: chunked, Content-Length, none, or until the server closes.
        std::size_t consumed = 0;
        for (;;) {
            body_state st = body_state::need_more;
            std::string te = h.response.header("Transfer-Encoding");
            if (!te.empty() && iequals(te, "chunked")) {
                st = decode_chunked(buffer_, h.size, h.response.body, consumed);
            } else if (h.response.has_header("Content-Length")) {
                std::size_t n = std::stoul(h.response.header("Content-Length"));
                if (buffer_.size() >= h.size + n) {
                    h.response.body = buffer_.substr(h.size, n);
                    consumed = h.size + n;
                    st = body_state::complete;
                }
            } else if (h.response.status == 204 || h.response.status == 304) {
                consumed = h.size;
                st = body_state::complete;
            } else if (eof_) {
                h.response.body = buffer_.substr(h.size);
                consumed = buffer_.size();
                st = body_state::complete;
            }
            if (st == body_state::malformed) {
                r.outcome = http_outcome::malformed;
                r.detail = "bad chunked body";
                return r;
            }
            if (st == body_state::complete) break;
            fill_result f = fill(deadline);
            if (f == fill_result::data) continue;
            if (f == fill_result::eof && !h.response.has_header("Content-Length") && te.empty()) {
                continue;  // read until close: now complete
            }
            r.outcome = f == fill_result::eof ? http_outcome::closed : http_outcome::timeout;
            r.detail = "status " + std::to_string(h.response.status) + " but the body was cut (" +
                       std::to_string(buffer_.size() - h.size) + " bytes)";
            return r;
        }
        buffer_.erase(0, consumed);
        r.outcome = http_outcome::response;
        r.response = std::move(h.response);
        return r;
    }
}

http_result http_connection::request(std::string_view method, std::string_view target,
                                     const header_list& headers, std::string_view body) {
    return request(method, target, headers, body, timeout_);
}

http_result http_connection::request(std::string_view method, std::string_view target,
                                     const header_list& headers, std::string_view body,
                                     ms timeout) {
    send_raw(format_request(method, target, headers, body), timeout);
    return read_response(timeout);
}

bool http_connection::wait_closed(ms timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        fill_result f = fill(deadline);
        if (f == fill_result::eof) return true;
        if (f == fill_result::timeout) return false;
    }
}

void http_connection::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

// ---- free functions -----------------------------------------------------------------------

http_result http_request_once(unsigned short port, std::string_view method, std::string_view target,
                              const header_list& headers, std::string_view body,
                              std::chrono::milliseconds timeout) {
    return http_raw_once(port, format_request(method, target, headers, body), timeout);
}

http_result http_raw_once(unsigned short port, std::string_view bytes,
                          std::chrono::milliseconds timeout) {
    try {
        http_connection c(port, timeout);
        c.send_raw(bytes, timeout);
        return c.read_response(timeout);
    } catch (const std::runtime_error& e) {
        http_result r;
        r.outcome = http_outcome::closed;
        r.detail = e.what();
        return r;
    }
}

std::string gzip_compress(std::string_view data) {
    z_stream z{};
    // 15 + 16: a gzip wrapper rather than zlib's.
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("gzip_compress: deflateInit2 failed");
    }
    std::string out;
    out.resize(deflateBound(&z, static_cast<uLong>(data.size())) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&z, Z_FINISH);
    std::size_t produced = out.size() - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("gzip_compress: deflate failed");
    out.resize(produced);
    return out;
}

}  // namespace opendms::test
