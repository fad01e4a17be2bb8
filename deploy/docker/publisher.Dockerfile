# The gateway stand-in: replays tests/data/samples.jsonl to the broker, each message's exact
# bytes on its own topic at QoS 1 (deploy/docker/replay-samples.py). Build context: the
# repository root.
FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 mosquitto-clients \
 && rm -rf /var/lib/apt/lists/*
COPY tests/data/samples.jsonl /opt/opendms/samples.jsonl
COPY deploy/docker/replay-samples.py /opt/opendms/replay-samples.py
CMD ["python3", "/opt/opendms/replay-samples.py", "/opt/opendms/samples.jsonl"]
