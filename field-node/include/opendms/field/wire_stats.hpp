// wire_stats: how many bytes a TCP connection has carried, from the kernel (TCP_INFO).
#pragma once

#include <cstdint>

namespace opendms::field {

struct tcp_byte_counts {
    std::uint64_t sent = 0;      // payload bytes sent (retransmissions included when the
                                 // kernel reports them: tcpi_bytes_sent, Linux 4.19+;
                                 // else tcpi_bytes_acked)
    std::uint64_t received = 0;  // payload bytes received (tcpi_bytes_received)
};

/// Reads the counts of the connected TCP socket `fd`; zeros when the kernel cannot say.
tcp_byte_counts read_tcp_byte_counts(int fd) noexcept;

}  // namespace opendms::field
