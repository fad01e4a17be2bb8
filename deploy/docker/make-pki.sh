#!/bin/sh
# A private CA and a certificate for central.example.org, for the compose setup only (the
# field node trusts the CA through CENTRAL_DMS_CA_FILE, as a native node with a private CA
# would). Writes TRUST/ca.pem and TLS/fullchain.pem + TLS/privkey.pem (the paths certbot
# uses, which deploy/nginx/opendms-central.conf names); keeps existing files.
#   make-pki.sh TRUST_DIR TLS_DIR
set -eu
trust=$1 tls=$2
if [ -s "$trust/ca.pem" ] && [ -s "$tls/fullchain.pem" ] && [ -s "$tls/privkey.pem" ]; then
    echo "make-pki: certificates already there"
    exit 0
fi
work=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=opendms-compose-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=central.example.org \
    -keyout "$work/privkey.pem" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:central.example.org\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 825 -extfile "$work/ext.cnf" -out "$work/fullchain.pem" 2>/dev/null
install -m 0644 "$work/ca.pem" "$trust/ca.pem"
install -m 0644 "$work/fullchain.pem" "$tls/fullchain.pem"
install -m 0600 "$work/privkey.pem" "$tls/privkey.pem"
rm -rf "$work"  # the CA key goes: nothing else is ever signed with it
echo "make-pki: made a CA and a certificate for central.example.org"
