#include "test_pki.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace opendms::test {

void run_or_throw(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
        throw std::runtime_error("command failed: " + command);
    }
}

test_pki::test_pki(std::string d, const std::string& san) : dir(std::move(d)) {
    run_or_throw("mkdir -p " + dir);
    run_or_throw("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=opendms-test-ca "
                 "-keyout " + dir + "/ca.key -out " + ca_pem());
    run_or_throw("openssl req -newkey rsa:2048 -nodes -subj /CN=opendms-test-server -keyout " +
                 key_pem() + " -out " + dir + "/server.csr");
    std::ofstream(dir + "/ext.cnf") << "subjectAltName=" << san << "\n";
    run_or_throw("openssl x509 -req -in " + dir + "/server.csr -CA " + ca_pem() + " -CAkey " + dir +
                 "/ca.key -CAcreateserial -days 2 -extfile " + dir + "/ext.cnf -out " + cert_pem());
    // Servers that drop root privileges (Mosquitto, nginx workers) must read the files.
    run_or_throw("chmod 0644 " + key_pem() + " " + cert_pem() + " " + ca_pem());
    run_or_throw("chmod 0755 " + dir);
}

}  // namespace opendms::test
