#!/usr/bin/env python3
"""Renders the correctness matrix (docs/reliability.md) from the rows the system tests
append to a results file (tests/support/system_rig.hpp, one JSON object a line).

    tests/system/reliability_table.py RESULTS.jsonl [--into docs/reliability.md]

Prints the Markdown table; with --into, replaces the text between the markers
<!-- matrix:begin --> and <!-- matrix:end --> in that file. When a scenario ran more than
once, its last row counts.
"""
import json
import sys
from datetime import datetime, timezone

BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def table(rows):
    latest = {}
    for r in rows:
        latest[r["scenario"]] = r
    out = [
        "| scenario | injected | times | published | stored (field) | delivered | duplicated | lost | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in latest.values():
        out.append(
            "| {scenario} | {injected} | {times} | {published} | {stored} | {delivered} | "
            "{duplicated} | {lost} | {note} |".format(**r)
        )
    scales = sorted({r.get("scale", "bounded") for r in latest.values()})
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append("")
    out.append(f"Generated {stamp} from {len(latest)} scenario(s), scale: {', '.join(scales)}.")
    return "\n".join(out)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    text = table(rows)
    if len(argv) >= 4 and argv[2] == "--into":
        with open(argv[3], encoding="utf-8") as f:
            doc = f.read()
        if BEGIN not in doc or END not in doc:
            print(f"{argv[3]} has no {BEGIN} ... {END} markers", file=sys.stderr)
            return 1
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(argv[3], "w", encoding="utf-8") as f:
            f.write(head + BEGIN + "\n" + text + "\n" + END + tail)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
