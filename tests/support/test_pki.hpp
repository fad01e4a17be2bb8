// test_pki: a private CA and a server certificate it signs, made with the openssl command
// for TLS tests (the MQTT broker, the central server, nginx). Keys are RSA 2048, valid two
// days; the files are world-readable so that servers that drop privileges can read them.
// Throws std::runtime_error when an openssl command fails.
#pragma once

#include <string>

namespace opendms::test {

struct test_pki {
    std::string dir;
    std::string ca_pem() const { return dir + "/ca.pem"; }
    std::string cert_pem() const { return dir + "/server.pem"; }
    std::string key_pem() const { return dir + "/server.key"; }

    /// Makes `d` and, in it, ca.key/ca.pem and server.key/server.pem for the subjectAltName
    /// `san` ("DNS:localhost", "IP:127.0.0.1", or both comma-separated).
    test_pki(std::string d, const std::string& san);
};

/// Runs a shell command quietly; throws with the command when it fails.
void run_or_throw(const std::string& command);

}  // namespace opendms::test
