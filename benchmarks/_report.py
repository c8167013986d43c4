"""Tables, targets and the plot from one run's results."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ._procs import KINDS, LABELS, OURS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ._scale import ScaleResult
    from ._shards import ShardRun
    from ._storm import StormResult

MIB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (q=0.95: the value 95 % of the samples do not exceed)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def brief(values: list[float], unit: str = "") -> str:
    if not values:
        return "no samples"
    return (
        f"median {statistics.median(values):.4g}{unit} p95 {pct(values, 0.95):.4g}{unit} "
        f"range {min(values):.4g}-{max(values):.4g} (n={len(values)})"
    )


def scale_line(s: ScaleResult) -> str:
    if s.error:
        return f"scale {s.kind} x{s.n}: {s.error}"
    return (
        f"scale {s.kind} x{s.n}: CPU {statistics.median(s.cpu) * 100:.1f}% of a core, "
        f"peak RSS {s.hwm / MIB:.0f} MiB, {s.threads} threads, "
        f"{statistics.median(s.handshakes_per_min):.0f} TLS handshakes/min, "
        f"{s.connections} connections, start {s.startup:.1f} s, lost {s.lost} "
        f"({s.lost_starting} starting), "
        f"{sum(s.requests_per_min.values()):.0f} requests/min, "
        f"server CPU {s.server_cpu * 100:.0f}%"
    )


def shards_line(run: ShardRun) -> str:
    """One run of the shards phase in one line, for the log."""
    head = f"shards S={run.shards} N={run.members}"
    if run.error:
        head += f" ({run.error})"
    writes = ", ".join(f"{w:.0f}" for w in run.writes_per_min) or "-"
    return (
        f"{head}: start {_secs(run.start)}, SIGTERM {_secs(run.sigterm)}, "
        f"join {_secs(run.join)}, SIGKILL {_secs(run.sigkill)}; Lease writes/min {writes} "
        f"(expected {run.expected_per_min:.0f}); CPU members {run.members_cpu * 100:.0f}%, "
        f"server {run.server_cpu * 100:.0f}%; terms lost {run.lost}; "
        f"two holders at once {run.overlaps}"
    )


def _secs(value: float | None) -> str:
    """A time that may be missing: ``-``, milliseconds below a second, else seconds."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values) * 1000:.0f} / {pct(values, 0.95) * 1000:.0f} ms "
        f"({min(values) * 1000:.0f}-{max(values) * 1000:.0f}, n={len(values)})"
    )


def _s(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values):.2f} / {pct(values, 0.95):.2f} s "
        f"({min(values):.2f}-{max(values):.2f}, n={len(values)})"
    )


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    mid = fmt.format(statistics.median(values))
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _kinds(results: dict[str, Any]) -> list[str]:
    named = results["meta"]["options"]["kinds"].split(",")
    return [k for k in KINDS if k in named]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    kinds = _kinds(results)
    head = "| measure | " + " | ".join(LABELS[k] for k in kinds) + " |"
    rule = "| --- |" + " --- |" * len(kinds)
    out = [
        f"Run {meta['date']} on {meta['machine']}; Python {meta['python']}; "
        f"trio-election {meta['trio_election']} ({meta['commit']}, httpx {meta['httpx']}); "
        f"client-go {meta['clientgo']}; kubernetes (Python) {meta['kubernetes_python']}; "
        f"kube-apiserver {meta.get('apiserver', '?')}; took {meta.get('seconds', '?')} s. "
        f"Command: `python -m benchmarks {' '.join(meta['argv'])}`.",
        "",
    ]
    if "earlier" in meta:
        e = meta["earlier"]
        out[-1:-1] = [
            "",
            f"The phases not run then come from the run of {e['date']} "
            f"(trio-election {e['commit']}; took {e.get('seconds', '?')} s; command "
            f"`python -m benchmarks {' '.join(e['argv'])}`).",
        ]
    if "startup" in results:
        out += [
            "### Startup: process start to leading (free Lease; median (range))",
            "",
            head,
            rule,
        ]
        row: list[str] = [_spread(results["startup"].get(k, []), "{:.2f} s") for k in kinds]
        out += ["| start to leading | " + " | ".join(row) + " |", ""]
    if "handover" in results:
        out += [
            "### Handover: signal to the successor's work (median / p95 (range, n))",
            "",
            head,
            rule,
        ]
        by = {(h["kind"], h["mode"], _timing(h)): h for h in results["handover"]}
        timings = sorted({_timing(h) for h in results["handover"]}, reverse=True)
        for timing in timings:
            for mode, name in (("graceful", "SIGTERM"), ("crash", "SIGKILL")):
                row = []
                for k in kinds:
                    h = by.get((k, mode, timing))
                    values: list[float] = h["after_signal"] if h else []
                    fails = f", {len(h['failures'])} failed" if h and h["failures"] else ""
                    row.append(
                        (
                            _ms(values)
                            if mode == "graceful" and values and statistics.median(values) < 1
                            else _s(values)
                        )
                        + fails
                    )
                out.append(f"| {name} → next leader, {timing} | " + " | ".join(row) + " |")
            row = []
            for k in kinds:
                h = by.get((k, "crash", timing))
                lease = float(timing.split("/")[0])
                after = [v - lease for v in h["after_renew"]] if h else []
                row.append(_s(after).replace(" s", " s", 1) if after else "-")
            out.append(
                f"| SIGKILL: last renew → next leader, minus the lease, {timing} | "
                + " | ".join(row)
                + " |"
            )
        out.append("")
    if "load" in results:
        base = _baseline(results)
        if base:
            shown = ", ".join(
                f"{verb} {value:.1f}" for verb, value in sorted(base.items()) if value
            )
            out += [f"The apiserver's own requests on Leases ({shown} a minute, measured with no "
                    "candidate running) are subtracted below.", ""]  # fmt: skip
        out += [
            "### API requests per minute on one Lease (apiserver_request_total; "
            "15/10/2 s; median (range) over the windows)",
            "",
            head,
            rule,
        ]
        load: dict[tuple[str, int], dict[str, Any]] = {
            (r["kind"], r["candidates"]): r for r in results["load"]
        }
        counts = sorted({n for _, n in load})
        for n in counts:
            row = []
            for k in kinds:
                r = load.get((k, n))
                if r is None:
                    row.append("-")
                    continue
                windows = load_windows(results, r)
                totals = [sum(w.values()) for w in windows]
                verbs: dict[str, list[float]] = defaultdict(list)
                for window in windows:
                    for verb, value in window.items():
                        verbs[verb].append(value)
                detail = ", ".join(
                    f"{verb} {statistics.median(v):.1f}"
                    for verb, v in sorted(verbs.items())
                    if max(v) > 0
                )
                row.append(f"{_spread(totals)}: {detail}")
            out.append(f"| {n} candidate{'s' if n > 1 else ''} | " + " | ".join(row) + " |")
        row = []
        for k in kinds:
            one, ten = load.get((k, counts[0])), load.get((k, counts[-1]))
            if one and ten:
                a = statistics.median([sum(w.values()) for w in load_windows(results, one)])
                b = statistics.median([sum(w.values()) for w in load_windows(results, ten)])
                row.append(f"{b / a:.2f}" if a else "-")
            else:
                row.append("-")
        out += [f"| {counts[-1]} ÷ {counts[0]} | " + " | ".join(row) + " |", ""]
    if "scale" in results:
        out += [
            "### Many elections in one process, all leading (15/10/2 s; median (range) "
            "over the windows)",
            "",
            head,
            rule,
        ]
        scale = {(s["kind"], s["n"]): s for s in results["scale"]}
        ns = sorted({n for _, n in scale})
        rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
            ("CPU, % of a core", lambda s: _spread([c * 100 for c in s["cpu"]])),
            ("peak RSS, MiB", lambda s: f"{s['hwm'] / MIB:.0f}"),
            ("threads", lambda s: f"{s['threads']}"),
            ("TLS handshakes / min", lambda s: _spread(s["handshakes_per_min"], "{:.0f}")),
            ("open connections", lambda s: f"{s['connections']}"),
            ("start to all leading, s", lambda s: f"{s['startup']:.1f}"),
            (
                "terms lost while measuring (while starting)",
                lambda s: f"{s['lost']} ({s.get('lost_starting', '?')})",
            ),
            ("API requests / min", lambda s: f"{sum(s.get('requests_per_min', {}).values()):.0f}"),
            ("CPU per API request, ms", _cpu_per_request),
            (
                "etcd + kube-apiserver CPU, % of a core",
                lambda s: f"{s.get('server_cpu', 0) * 100:.0f}",
            ),
        ]
        for n in ns:
            for label, fn in rows:
                row = []
                for k in kinds:
                    s = scale.get((k, n))
                    row.append("-" if s is None else (s["error"] or fn(s)))
                out.append(f"| {n} elections: {label} | " + " | ".join(row) + " |")
        base = ns[0]
        for n in ns[1:]:
            row = []
            for k in kinds:
                per = _per_election(scale, k, base, n)
                row.append("-" if per is None else f"{per / 1024:.0f} KiB")
            out.append(f"| RSS growth per election, {base} → {n} | " + " | ".join(row) + " |")
        out.append("")
    if "shards" in results:
        out += _shards_table(results), ""
    if results.get("storm"):
        out += _storm_table(results), ""
    out += ["### Targets", "", *(f"- {line}" for line in targets(results)), ""]
    return "\n".join(out)


def _shards_table(results: dict[str, Any]) -> str:
    runs: list[dict[str, Any]] = results["shards"]
    timings = sorted({_timing(r) for r in runs})
    own = results.get("shards_own_writes_per_min")
    lines = [
        f"### Sharded leadership: S shards over N member processes ({', '.join(timings)}; "
        "each time from the event to every shard led with balance; Lease writes per minute "
        "median (range) over the windows"
        + (f", the apiserver's own {own:.1f} a minute taken off" if own is not None else "")
        + ")",
        "",
        "| S | N | start → balanced | SIGTERM → balanced | join → balanced | SIGKILL → balanced "
        "| Lease writes / min | expected 60 (S + N) / retry | measured ÷ expected "
        "| CPU: members, server (% of a core) | terms lost, steady | two holders at once |",
        "| --- |" + " --- |" * 11,
    ]
    for r in sorted(runs, key=lambda r: (r["shards"], r["members"])):
        writes = r["writes_per_min"]
        ratio = statistics.median(writes) / r["expected_per_min"] if writes else None
        cells = [
            str(r["shards"]),
            f"{r['members']}" + (f" ({r['error']})" if r["error"] else ""),
            _secs(r["start"]),
            _secs(r["sigterm"]),
            _secs(r["join"]),
            _secs(r["sigkill"]),
            _spread(writes, "{:.0f}"),
            f"{r['expected_per_min']:.0f}",
            "-" if ratio is None else f"{ratio:.2f}",
            f"{r['members_cpu'] * 100:.0f}, {r['server_cpu'] * 100:.0f}",
            str(r["lost"]),
            str(r["overlaps"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def storm_line(run: StormResult) -> str:
    """One run of the storm phase in one line, for the log."""
    failed = f", failed: {'; '.join(run.failures)}" if run.failures else ""
    return (
        f"storm N={run.followers} ({run.processes} processes): writes {run.writes}, "
        f"refused {run.refused}, release → new term {_ms(run.seconds)}{failed}"
    )


def _storm_table(results: dict[str, Any]) -> str:
    runs: list[dict[str, Any]] = results["storm"]
    timings = sorted({_timing(r) for r in runs})
    lines = [
        f"### Writes at a graceful handover (N followers; {', '.join(timings)}; writes on "
        "the Lease from the apiserver's PATCH count, less the release, the renewals and the "
        "nominations; time from the old leader's work ended to the new one's began)",
        "",
        "| N followers | processes | handovers | writes per handover: median / max "
        "| refused (409) per handover: median / max | release → new leader: median / p95 (range) "
        "| failed |",
        "| --- |" + " --- |" * 6,
    ]
    for r in sorted(runs, key=lambda r: r["followers"]):
        writes, refused = r["writes"], r["refused"]
        cells = [
            str(r["followers"]),
            str(r["processes"]),
            str(len(writes)),
            f"{statistics.median(writes):g} / {max(writes)}" if writes else "-",
            f"{statistics.median(refused):g} / {max(refused)}" if refused else "-",
            _ms(r["seconds"]),
            "; ".join(r["failures"]) or "0",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _requests(s: dict[str, Any]) -> float:
    return float(sum(s.get("requests_per_min", {}).values()))


def _cpu_per_request(s: dict[str, Any]) -> str:
    requests = sum(s.get("requests_per_min", {}).values())
    if not requests:
        return "-"
    return f"{statistics.median(s['cpu']) * 60_000 / requests:.2f}"


def _baseline(results: dict[str, Any]) -> dict[str, float]:
    windows: list[dict[str, float]] = results.get("load_baseline", [])
    verbs = {verb for window in windows for verb in window}
    return {verb: statistics.median(w.get(verb, 0.0) for w in windows) for verb in verbs}


def load_windows(results: dict[str, Any], run: dict[str, Any]) -> list[dict[str, float]]:
    """A load run's windows, the apiserver's own requests taken off."""
    base = _baseline(results)
    return [
        {verb: max(0.0, value - base.get(verb, 0.0)) for verb, value in window.items()}
        for window in run["per_min"]
    ]


def _timing(h: dict[str, Any]) -> str:
    t = h["timing"]
    return f"{t['lease']}/{t['renew']}/{t['retry']} s"


def _per_election(scale: dict[tuple[str, int], Any], kind: str, base: int, n: int) -> float | None:
    a, b = scale.get((kind, base)), scale.get((kind, n))
    if not a or not b or a["error"] or b["error"]:
        return None
    return float(b["hwm"] - a["hwm"]) / (n - base)


def targets(results: dict[str, Any]) -> list[str]:
    """Each target, met or not, with the figures."""
    lines: list[str] = []

    def say(ok: bool | None, text: str) -> None:
        lines.append(f"{'MET' if ok else 'not met' if ok is not None else 'not measured'}: {text}")

    scale = {(s["kind"], s["n"]): s for s in results.get("scale", [])}
    ours = [k for k in OURS if k in _kinds(results)]
    for kind in ours:
        label = LABELS[kind]
        for n in (100, 1000):
            mine, theirs = scale.get((kind, n)), scale.get(("kubepy", n))
            if not (mine and theirs and not mine["error"] and not theirs["error"]):
                say(None, f"{label}: CPU and memory at {n} elections (a run is missing or failed)")
                continue
            a, b = statistics.median(mine["cpu"]), statistics.median(theirs["cpu"])
            say(
                a <= b / 2,
                f"{label}: CPU at {n} elections ≤ ½ the kubernetes client's: "
                f"{a * 100:.1f}% vs {b * 100:.1f}% of a core ({a / b:.2f}x), for "
                f"{_requests(mine):.0f} vs {_requests(theirs):.0f} API requests a minute "
                f"({_cpu_per_request(mine)} vs {_cpu_per_request(theirs)} ms of CPU each)",
            )
            pa, pb = _per_election(scale, kind, 10, n), _per_election(scale, "kubepy", 10, n)
            if pa is not None and pb is not None:
                say(
                    pa <= pb / 2,
                    f"{label}: memory per election (RSS growth from 10) at {n} ≤ ½ the "
                    f"kubernetes client's: {pa / 1024:.0f} KiB vs {pb / 1024:.0f} KiB",
                )
    for kind in ours:
        runs = sorted((n, s) for (k, n), s in scale.items() if k == kind and not s["error"])
        if len(runs) >= 2:
            low = statistics.median(runs[0][1]["handshakes_per_min"])
            high = statistics.median(runs[-1][1]["handshakes_per_min"])
            say(
                high <= low + 1,
                f"{LABELS[kind]}: TLS handshakes per minute independent of the number of "
                f"elections: {low:.0f}/min at {runs[0][0]}, {high:.0f}/min at {runs[-1][0]}",
            )
    for h in results.get("handover", []):
        if h["kind"] in ours and h["mode"] == "graceful" and h["after_signal"]:
            v = h["after_signal"]
            med, p95 = statistics.median(v) * 1000, pct(v, 0.95) * 1000
            say(
                med <= 25 and p95 <= 50,
                f"{LABELS[h['kind']]}: graceful handover at {_timing(h)}: median "
                f"{med:.0f} ms (≤ 25), p95 {p95:.0f} ms (≤ 50)",
            )
    for r in results.get("shards", []):
        where = f"S={r['shards']}, N={r['members']}"
        writes = r["writes_per_min"]
        if writes:
            ratio = statistics.median(writes) / r["expected_per_min"]
            say(
                0.8 <= ratio <= 1.2,
                f"Lease writes ≈ (S + N) / retry_period at {where}: "
                f"{statistics.median(writes):.0f}/min against {r['expected_per_min']:.0f} "
                f"({ratio:.2f}x)",
            )
        if r["sigterm"] is not None:
            say(
                r["sigterm"] < 0.1,
                f"a SIGTERM'd member's shards led by others, balanced, within tens of ms "
                f"at {where}: {_secs(r['sigterm'])}",
            )
        if r["sigkill"] is not None:
            bound = r["timing"]["lease"] + r["timing"]["retry"]
            say(
                r["sigkill"] <= bound,
                f"a SIGKILL'd member's shards led by others, balanced, within lease + retry "
                f"({bound} s) at {where}: {_secs(r['sigkill'])}",
            )
        say(r["overlaps"] == 0, f"never two holders of a shard at {where}: {r['overlaps']}")
    for r in sorted(results.get("storm", []), key=lambda r: r["followers"]):
        n, writes, v = r["followers"], r["writes"], r["seconds"]
        if not writes or r["failures"]:
            say(False, f"at most 2 writes per graceful handover at N={n}: failed handovers "
                f"({'; '.join(r['failures'])})")  # fmt: skip
        else:
            say(
                max(writes) <= 2,
                f"at most 2 writes per graceful handover at N={n}: median "
                f"{statistics.median(writes):g}, max {max(writes)} over {len(writes)} "
                f"(refused: max {max(r['refused'])})",
            )
        if v:
            med, p95 = statistics.median(v) * 1000, pct(v, 0.95) * 1000
            say(
                med <= 25 and p95 <= 50,
                f"handover median ≤ 25 ms, p95 ≤ 50 ms at N={n}: median {med:.0f} ms, "
                f"p95 {p95:.0f} ms",
            )
    load = {(r["kind"], r["candidates"]): r for r in results.get("load", [])}
    for kind in ours:
        one, ten = load.get((kind, 1)), load.get((kind, 10))
        if one and ten:
            a = statistics.median([sum(w.values()) for w in load_windows(results, one)])
            b = statistics.median([sum(w.values()) for w in load_windows(results, ten)])
            say(
                b / a <= 1.2,
                f"{LABELS[kind]}: API load 10 ÷ 1 candidates ≤ 1.2: "
                f"{b / a:.2f} ({a:.1f} → {b:.1f}/min)",
            )
    return lines


def _cpu_percent(s: dict[str, Any]) -> float:
    return float(statistics.median(s["cpu"])) * 100


def _peak_mib(s: dict[str, Any]) -> float:
    return float(s["hwm"]) / MIB


def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (the bench group has it): no plot")
        return
    kinds = _kinds(results)
    colors = {
        "trio": "tab:blue",
        "asyncio": "tab:purple",
        "uvloop": "tab:red",
        "clientgo": "tab:green",
        "kubepy": "tab:orange",
    }
    fig: Any
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0][0]
    handover = results.get("handover", [])
    labels: list[str] = []
    data: list[list[float]] = []
    cols: list[str] = []
    for h in sorted(
        handover, key=lambda h: (-h["timing"]["lease"], h["mode"], KINDS.index(h["kind"]))
    ):
        if h["after_signal"] and h["kind"] in kinds:
            labels.append(f"{LABELS[h['kind']]}\n{h['mode']} {_timing(h)}")
            data.append(h["after_signal"])
            cols.append(colors[h["kind"]])
    if data:
        box = ax.boxplot(data, vert=False, patch_artist=True, tick_labels=labels)
        for patch, color in zip(box["boxes"], cols, strict=True):
            patch.set_facecolor(color)
        ax.set_xscale("log")
        ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel("signal → successor's work starts, s (log)")
    ax.set_title("Handover (SIGTERM) and failover (SIGKILL)")
    ax = axes[0][1]
    for k in kinds:
        rows = sorted(
            (
                r["candidates"],
                statistics.median([sum(w.values()) for w in load_windows(results, r)]),
            )
            for r in results.get("load", [])
            if r["kind"] == k
        )
        if rows:
            ax.plot(*zip(*rows, strict=True), marker="o", label=LABELS[k], color=colors[k])
    ax.set_xlabel("candidates on one Lease")
    ax.set_ylabel("API requests / min")
    ax.set_title("API load (apiserver_request_total)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    panels: list[tuple[Any, Callable[[dict[str, Any]], float], str]] = [
        (axes[1][0], _cpu_percent, "CPU, % of one core"),
        (axes[1][1], _peak_mib, "peak RSS, MiB"),
    ]
    for ax, scale_of, ylabel in panels:
        for k in kinds:
            rows = sorted(
                (s["n"], scale_of(s))
                for s in results.get("scale", [])
                if s["kind"] == k and not s["error"]
            )
            if rows:
                ax.plot(*zip(*rows, strict=True), marker="o", label=LABELS[k], color=colors[k])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elections in one process")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Many elections: {ylabel.split(',')[0]}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    runtimes = ", ".join(k for k in OURS if k in kinds)
    fig.suptitle(
        f"trio-election ({runtimes}) vs client-go vs kubernetes (Python), {results['meta']['date']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
