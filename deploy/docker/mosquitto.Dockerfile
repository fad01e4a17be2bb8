# Mosquitto 2.0 from Debian 12 for the compose setup, run from the shipped
# deploy/mosquitto/field-broker.conf (mounted as /etc/mosquitto/mosquitto.conf, as its
# comments say to install it). It drops to the "mosquitto" user, which owns
# /var/lib/mosquitto (the persistence directory, a volume).
FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients \
 && rm -rf /var/lib/apt/lists/*
CMD ["mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]
