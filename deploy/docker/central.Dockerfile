# syntax=docker/dockerfile:1
# opendms-central: the central server, installed from the project's own Debian package (the
# same .deb as on a native machine: deploy/packaging.cmake). Build context: the repository
# root (deploy/docker/docker-compose.yml sets it).
#
# Stage 1 (identical in field.Dockerfile and central.Dockerfile, so it is built once and
# cached): Debian 12, the build dependencies from deploy/install-deps.sh, a Release build
# and both packages (cpack).
FROM debian:12 AS build
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN deploy/install-deps.sh build \
 && apt-get install -y -qq --no-install-recommends dpkg-dev file \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN BUILD_DIR=/build deploy/build.sh -DOPENDMS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
 && cd /build && cpack -G DEB -B /packages

# Stage 2: a slim Debian 12 with the package (its postinst makes the opendms user and
# /var/lib/opendms, as on a native install).
FROM debian:12-slim
COPY --from=build /packages/opendms-central_*.deb /tmp/
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends /tmp/opendms-central_*.deb ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /tmp/*.deb
USER opendms
WORKDIR /var/lib/opendms
# As the systemd unit (migrations are a separate step: the compose "central-migrate").
CMD ["opendms-central", "--env-file", "/etc/opendms/central.env", "serve"]
