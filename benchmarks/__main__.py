"""Run the benchmarks: `python -m benchmarks` (or `nox -s bench`); `--help` for the options.

Starts one real control plane (etcd + kube-apiserver on loopback), runs every phase against
it with this library, client-go and the `kubernetes` Python client, and writes
`<out>/<tag>.json`, `<out>/<tag>.md` (the tables) and `<out>/<tag>.png` (the plot).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from trio_election.testing import ControlPlane

from . import _report
from ._handover import Samples, run_startup, run_stream
from ._load import baseline, run_load
from ._procs import KINDS, REPO, Timing, clientgo_binary
from ._scale import run_scale
from ._shards import own_writes, run_shards
from ._storm import run_storm

PHASES = ("startup", "handover", "storm", "load", "scale", "shards")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(PHASES), help="phases, comma-separated")
    parser.add_argument("--kinds", default=",".join(KINDS), help=",".join(KINDS))
    parser.add_argument("--samples", type=int, default=20, help="handovers of each kind")
    parser.add_argument("--timings", default="15/10/2,4/3/1", help="handover timings")
    parser.add_argument(
        "--streams",
        type=int,
        default=2,
        help="Leases measured at once per kind and mode (at lease >= 10 s)",
    )
    parser.add_argument("--scale-n", default="10,100,1000", help="elections per process")
    parser.add_argument("--scale-windows", default="3x10", help="COUNTxSECONDS of measuring")
    parser.add_argument("--load-candidates", default="1,3,10")
    parser.add_argument("--load-windows", default="3x20", help="COUNTxSECONDS of measuring")
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--shards-s", default="16,256", help="shard counts of the shards phase")
    parser.add_argument("--shards-n", default="3,10", help="member processes of a shard group")
    parser.add_argument(
        "--shards-windows", default="2x10", help="COUNTxSECONDS of measuring Lease writes"
    )
    parser.add_argument("--storm-n", default="10,100", help="followers of the storm phase")
    parser.add_argument(
        "--storm-handovers", type=int, default=5, help="graceful handovers at each N"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--tag", default="latest", help="name of the result files")
    parser.add_argument("--base", type=Path, help="a JSON result whose other phases to keep")
    parser.add_argument("--report", type=Path, help="only write the tables and plot of a JSON")
    options = parser.parse_args()
    if options.report is not None:
        loaded = json.loads(options.report.read_text())
        stem = options.report.with_suffix("")
        stem.with_suffix(".md").write_text(_report.markdown(loaded))
        _report.plot(loaded, stem.with_suffix(".png"))
        print(stem.with_suffix(".md").read_text())
        return
    phases = options.only.split(",")
    kinds = [k for k in options.kinds.split(",") if k]
    if "clientgo" in kinds:
        clientgo_binary()
    began = time.monotonic()
    results: dict[str, Any] = {"meta": _meta(options)}
    if options.base is not None:  # phases not run now come from an earlier run
        earlier = json.loads(options.base.read_text())
        results = {**earlier, "meta": {**results["meta"], "earlier": earlier["meta"]}}
    folder = Path(tempfile.mkdtemp(prefix="trio-election-bench-"))
    print(f"logs in {folder}", flush=True)
    with ControlPlane.start() as cp:
        results["meta"]["apiserver"] = cp.http_client().get("/version").json()["gitVersion"]
        if "startup" in phases:
            results["startup"] = {}
            for kind in kinds:
                found = run_startup(cp, folder, kind, options.startup_repeats, Timing())
                results["startup"][kind] = found
                print(f"startup {kind}: {_report.brief(found)}", flush=True)
        if "handover" in phases:
            now = {tuple(int(x) for x in text.split("/")) for text in options.timings.split(",")}
            results["handover"] = [
                h
                for h in results.get("handover", [])
                if (h["timing"]["lease"], h["timing"]["renew"], h["timing"]["retry"]) not in now
            ]
            for text in options.timings.split(","):
                lease, renew, retry = (int(x) for x in text.split("/"))
                timing = Timing(lease, renew, retry)
                samples = _handovers(cp, folder, kinds, timing, options)
                results["handover"] += [dataclasses.asdict(s) for s in samples]
        if "storm" in phases:
            results["storm"] = []
            for n in (int(x) for x in options.storm_n.split(",")):
                storm = run_storm(cp, folder, n, options.storm_handovers, timing=Timing())
                results["storm"].append(dataclasses.asdict(storm))
                print(_report.storm_line(storm), flush=True)
        if "load" in phases:
            loads: list[dict[str, Any]] = []
            results["load"] = loads
            count, seconds = _windows(options.load_windows)
            results["load_baseline"] = baseline(cp, windows=count, window=seconds)
            print(f"load baseline: {results['load_baseline']}", flush=True)
            for kind in kinds:
                for n in (int(x) for x in options.load_candidates.split(",")):
                    load = run_load(
                        cp, folder, kind, n, timing=Timing(), windows=count, window=seconds
                    )
                    loads.append(dataclasses.asdict(load))
                    print(
                        f"load {kind} x{n}: {_report.brief(load.totals(), 'req/min')}", flush=True
                    )
        if "scale" in phases:
            scales: list[dict[str, Any]] = []
            results["scale"] = scales
            count, seconds = _windows(options.scale_windows)
            for n in (int(x) for x in options.scale_n.split(",")):
                for kind in kinds:
                    scale = run_scale(
                        cp,
                        folder,
                        kind,
                        n,
                        timing=Timing(),
                        windows=count,
                        window=seconds,
                        log=folder / f"scale-{kind}-{n}.log",
                    )
                    scales.append(dataclasses.asdict(scale))
                    print(_report.scale_line(scale), flush=True)
        if "shards" in phases:
            results["shards"] = []
            count, seconds = _windows(options.shards_windows)
            own = own_writes(cp, window=20.0)
            results["shards_own_writes_per_min"] = own
            print(f"shards: the apiserver's own Lease writes: {own:.1f}/min", flush=True)
            for s in (int(x) for x in options.shards_s.split(",")):
                for n in (int(x) for x in options.shards_n.split(",")):
                    run = run_shards(
                        cp, folder, s, n, timing=Timing(), windows=count, window=seconds,
                        own_per_min=own,
                    )  # fmt: skip
                    results["shards"].append(dataclasses.asdict(run))
                    print(_report.shards_line(run), flush=True)
    results["meta"]["seconds"] = round(time.monotonic() - began)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / f"{options.tag}.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = _report.markdown(results)
    (options.out / f"{options.tag}.md").write_text(markdown)
    _report.plot(results, options.out / f"{options.tag}.png")
    print(markdown)
    print(
        f"written: {options.out}/{options.tag}.{{json,md,png}}; took {results['meta']['seconds']} s"
    )


def _windows(text: str) -> tuple[int, float]:
    count, _, seconds = text.partition("x")
    return int(count), float(seconds)


def _handovers(
    cp: ControlPlane, folder: Path, kinds: list[str], timing: Timing, options: argparse.Namespace
) -> list[Samples]:
    streams = options.streams if timing.lease >= 10 else 1
    samples: list[Samples] = []
    threads: list[threading.Thread] = []
    stop = threading.Event()
    for kind in kinds:
        for mode in ("graceful", "crash"):
            out = Samples(kind, mode, timing)
            samples.append(out)
            # a graceful handover of ours takes milliseconds: one Lease at a time is enough
            parallel = 1 if mode == "graceful" and kind != "kubepy" else streams
            for i in range(parallel):
                count = options.samples // parallel + (i < options.samples % parallel)
                thread = threading.Thread(
                    target=run_stream,
                    args=(cp, folder, kind, mode, timing, count, out, stop),
                    daemon=True,
                )
                threads.append(thread)
    for thread in threads:
        thread.start()
        time.sleep(0.5)
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    for out in samples:
        print(
            f"handover {timing.label} {out.kind} {out.mode}: "
            f"{_report.brief(out.after_signal, 's')}",
            flush=True,
        )
    return samples


def _meta(options: argparse.Namespace) -> dict[str, Any]:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    import os

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "trio_election": version("trio-election"),
        "commit": commit,
        "kubernetes_python": version("kubernetes"),
        "httpx": version("httpx"),
        "clientgo": "v0.36.3",
        "options": {k: str(v) for k, v in vars(options).items()},
        "argv": sys.argv[1:],
    }


if __name__ == "__main__":
    main()
