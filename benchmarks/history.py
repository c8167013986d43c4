"""The before/after table of docs/benchmarks.md, from benchmarks/results/history/*.json.

python -m benchmarks.history
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

HISTORY = Path(__file__).resolve().parent / "results" / "history"
STEPS = {
    "before": "before: one pool, keep-alive 20",
    "h2": "HTTP/2 (httpx, one client)",
    "h2b": "HTTP/2 again, with request counts",
    "watchpool": "watches on a pool of their own",
    "watchpool-jitter": "+ renewals spread, echo not re-parsed",
    "pool8": "requests on 8 connections",
    "sem": "+ a semaphore of 8",
    "sem32": "32 connections and a semaphore",
    "lender": "kept: one connection per lent client (32 requests at once)",
    "lender128": "kept: up to 128 requests at once",
    "idle8": "closing idle connections beyond 8 (undone)",
    "final": "the results above (one connection per client, 128 at once)",
}


def cell(run: dict[str, Any]) -> str:
    if run["error"]:
        return str(run["error"])
    cpu = statistics.median(run["cpu"]) * 100
    handshakes = statistics.median(run["handshakes_per_min"])
    text = f"{cpu:.1f}% · {run['hwm'] / 2**20:.0f} MiB · {handshakes:.0f} hs/min"
    requests = run.get("requests_per_min")
    if requests:
        text += f" · {sum(requests.values()):.0f} req/min · lost {run['lost']}"
    return text


def main() -> None:
    sizes = (10, 100, 1000)
    print("| step | " + " | ".join(f"{n} elections" for n in sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for path in sorted(HISTORY.glob("*.json")):
        step = path.stem.split("-", 1)[1]
        runs = {r["n"]: r for r in json.loads(path.read_text())["scale"] if r["kind"] == "trio"}
        cells = [cell(runs[n]) if n in runs else "-" for n in sizes]
        print(f"| {STEPS.get(step, step)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
