// wire_stats: TCP_INFO byte counters. Its own file: <linux/tcp.h> (which has the 64-bit
// byte counters) conflicts with <netinet/tcp.h>, which Asio includes.
#include "opendms/field/wire_stats.hpp"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace opendms::field {

tcp_byte_counts read_tcp_byte_counts(int fd) noexcept {
    tcp_info info{};
    socklen_t size = sizeof info;
    tcp_byte_counts out;
    if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return out;
    auto covers = [size](std::size_t end) { return static_cast<std::size_t>(size) >= end; };
    if (covers(offsetof(tcp_info, tcpi_bytes_sent) + sizeof info.tcpi_bytes_sent)) {
        out.sent = info.tcpi_bytes_sent;
    } else if (covers(offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)) {
        out.sent = info.tcpi_bytes_acked;
    }
    if (covers(offsetof(tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)) {
        out.received = info.tcpi_bytes_received;
    }
    return out;
}

}  // namespace opendms::field
