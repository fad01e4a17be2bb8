#!/usr/bin/env bash
# Installs the Debian 12 packages this project needs, only those missing.
#   deploy/install-deps.sh build    compilers and libraries (the demo needs these + mosquitto)
#   deploy/install-deps.sh test     the above plus PostgreSQL and MariaDB servers for tests,
#                                   and the operations tools the tests check deploy/ with:
#                                   nginx, openssl, systemd (systemd-analyze), docker-compose
#                                   (only `config`: no container engine is needed),
#                                   dpkg-dev (dpkg-shlibdeps for the packages), adduser, and
#                                   faketime (the clock-jump scenario of tests/system);
#                                   clang, libclang-rt-14-dev and llvm: libFuzzer and
#                                   llvm-symbolizer for tests/fuzz/run_fuzz.sh
# Uses sudo when not root. Debian's archive is the only source.
set -euo pipefail

want=(build-essential cmake ninja-build pkg-config ccache
      libboost-dev libboost-system-dev libssl-dev zlib1g-dev
      libsqlite3-dev sqlite3 libpq-dev libmariadb-dev rapidjson-dev catch2
      libmosquitto-dev mosquitto mosquitto-clients python3 iproute2)
if [[ "${1:-build}" == test ]]; then
    want+=(postgresql mariadb-server mariadb-client
           nginx openssl systemd docker-compose dpkg-dev adduser faketime)
    want+=(clang libclang-rt-14-dev llvm)
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
