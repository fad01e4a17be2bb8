# nginx from Debian 12 (1.22, as on a native central server) for the compose setup. The
# configuration is the shipped deploy/nginx/opendms-central.conf, mounted unchanged into
# sites-enabled by docker-compose.yml. openssl for the compose "pki" service, curl for the
# health check.
FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends nginx openssl curl ca-certificates \
 && rm -f /etc/nginx/sites-enabled/default \
 && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
