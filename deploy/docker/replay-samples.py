#!/usr/bin/env python3
"""Replays sample gateway messages (tests/data/samples.jsonl) to an MQTT broker, as a
PapaDuck gateway would publish them: each sample's exact bytes ("raw", or "raw_b64" for
bytes that are not UTF-8) on its own topic ("mqtt_topic"), at QoS 1, with mosquitto_pub.

    replay-samples.py SAMPLES.jsonl

Environment: MQTT_HOST (127.0.0.1), MQTT_PORT (1883), REPLAY_ROUNDS (1; later rounds send the
same messages again, which the field node records as mesh duplicates), REPLAY_INTERVAL
(seconds between messages, 0.2), REPLAY_TOPIC_PREFIX (prepended as "PREFIX/topic"; tests).
Exits 1 when a publish fails. The docker compose "publisher" service runs it; so does
tests/ops/compose_test.sh, against a real broker.
"""
import base64
import json
import os
import subprocess
import sys
import time


def samples(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                s = json.loads(line)
                payload = s["raw"].encode("utf-8") if "raw" in s else base64.b64decode(s["raw_b64"])
                yield s["id"], s["mqtt_topic"], payload


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    host = os.environ.get("MQTT_HOST", "127.0.0.1")
    port = os.environ.get("MQTT_PORT", "1883")
    rounds = int(os.environ.get("REPLAY_ROUNDS", "1"))
    interval = float(os.environ.get("REPLAY_INTERVAL", "0.2"))
    prefix = os.environ.get("REPLAY_TOPIC_PREFIX", "")
    sent = 0
    for _ in range(rounds):
        for sample_id, topic, payload in samples(sys.argv[1]):
            if prefix:
                topic = prefix + "/" + topic
            cmd = ["mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-i",
                   "opendms-replay-%d" % os.getpid(), "-t", topic, "-s"]
            done = subprocess.run(cmd, input=payload, capture_output=True, timeout=30)
            if done.returncode != 0:
                print("replay: %s on %s failed: %s" % (sample_id, topic,
                      done.stderr.decode(errors="replace").strip()), file=sys.stderr)
                return 1
            sent += 1
            time.sleep(interval)
    print("replay: published %d message(s) to %s:%s" % (sent, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
