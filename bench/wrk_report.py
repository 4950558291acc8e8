#!/usr/bin/env python3
"""Helpers for bench/passthrough.sh (python3 stdlib only).

  wrk_report.py parse WRK_OUTPUT_FILE
      Print one tab-separated line: rps  p99_ms  requests  errors
      (errors = non-2xx/3xx responses + socket errors). Exit 1 if the output
      has no "Requests/sec" line (wrk failed).

  wrk_report.py report RESULTS_TSV META_FILE
      Read the per-round results written by passthrough.sh and print the
      Markdown report (summary table with medians, then every round).

RESULTS_TSV columns (tab-separated, with a header line):
  round peer rps p99_ms requests errors rss_kib hwm_kib cpu_us core_busy_us other_cpu_pct
Empty cells (for "direct", which has no proxy process) are written as "-".
"""

import re
import statistics
import sys

PEER_ORDER = ["direct", "nginx", "haproxy", "scalelab"]
BASELINE = "nginx"

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _to_ms(value, unit):
    return float(value) * _UNIT_MS[unit]


def parse_wrk(text):
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if rps is None:
        raise ValueError("no 'Requests/sec' line in wrk output")
    p99 = re.search(r"^\s+99(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if p99 is None:
        raise ValueError("no 99% latency line (was wrk run with --latency?)")
    reqs = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if reqs is None:
        raise ValueError("no 'N requests in' line in wrk output")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return float(rps.group(1)), _to_ms(p99.group(1), p99.group(2)), int(reqs.group(1)), errors


def _num(cell):
    return None if cell in ("-", "") else float(cell)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec, suffix=""):
    return "—" if value is None else format(value, spec) + suffix


def load_rows(path):
    rows = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            rec = dict(zip(header, line.split("\t")))
            rows.append(
                {
                    "round": int(rec["round"]),
                    "peer": rec["peer"],
                    "rps": _num(rec["rps"]),
                    "p99_ms": _num(rec["p99_ms"]),
                    "requests": _num(rec["requests"]),
                    "errors": _num(rec["errors"]),
                    "rss_kib": _num(rec["rss_kib"]),
                    "hwm_kib": _num(rec["hwm_kib"]),
                    "cpu_us": _num(rec["cpu_us"]),
                    "core_busy_us": _num(rec["core_busy_us"]),
                    "other_cpu_pct": _num(rec.get("other_cpu_pct", "-")),
                }
            )
    return rows


def _per_req(total_us, requests):
    if total_us is None or not requests:
        return None
    return total_us / requests


def report(rows, meta_lines):
    peers = [p for p in PEER_ORDER if any(r["peer"] == p for r in rows)]
    peers += sorted({r["peer"] for r in rows} - set(peers))
    by = {(r["round"], r["peer"]): r for r in rows}
    rounds = sorted({r["round"] for r in rows})

    out = []
    out.append("# scalelab pass-through benchmark")
    out.append("")
    out.extend(meta_lines)
    out.append("")
    out.append(
        "| peer | req/s | × nginx req/s | p99 ms | p99 × nginx | RSS MiB | peak RSS MiB "
        "| CPU µs/req | errors |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for peer in peers:
        mine = [by[(n, peer)] for n in rounds if (n, peer) in by]
        # Ratios are paired per round (same moment, interleaved), then the median is taken.
        rps_ratio, p99_ratio = [], []
        for n in rounds:
            a, b = by.get((n, peer)), by.get((n, BASELINE))
            if a and b and a["rps"] and b["rps"]:
                rps_ratio.append(a["rps"] / b["rps"])
            if a and b and a["p99_ms"] and b["p99_ms"]:
                p99_ratio.append(a["p99_ms"] / b["p99_ms"])
        rss = _median([r["rss_kib"] for r in mine])
        hwm = [r["hwm_kib"] for r in mine if r["hwm_kib"] is not None]
        errors = sum(int(r["errors"] or 0) for r in mine)
        out.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                peer,
                _fmt(_median([r["rps"] for r in mine]), ",.0f"),
                _fmt(_median(rps_ratio), ".2f", "×"),
                _fmt(_median([r["p99_ms"] for r in mine]), ".2f"),
                _fmt(_median(p99_ratio), ".2f", "×"),
                _fmt(None if rss is None else rss / 1024, ".1f"),
                _fmt(max(hwm) / 1024 if hwm else None, ".1f"),
                _fmt(_median([_per_req(r["cpu_us"], r["requests"]) for r in mine]), ".1f"),
                errors,
            )
        )
    out.append("")
    out.append(
        "Medians over rounds. Ratios are taken per round against nginx in the same round, "
        "then the median. RSS = proxy VmRSS right after each run (median); peak RSS = "
        "largest VmHWM seen. CPU µs/req = proxy utime+stime over the run / requests wrk "
        "completed. errors = non-2xx/3xx + socket errors, summed over rounds."
    )
    other = [r["other_cpu_pct"] for r in rows if r["other_cpu_pct"] is not None]
    if other:
        out.append("")
        line = (
            "Other processes (not started by the benchmark) used a median {:.1f}% (max {:.1f}%) "
            "of the machine's CPU during the runs.".format(_median(other), max(other))
        )
        if _median(other) > 5:
            line = (
                "**Warning: the machine was not idle.** " + line + " The proxies compete with "
                "that load for their core, which lowers req/s and inflates p99; compare ratios "
                "within one run only, or re-run on an idle machine (or with BENCH_NICE=-10)."
            )
        out.append(line)
    out.append("")
    out.append("## Every round")
    out.append("")
    out.append(
        "| round | peer | req/s | p99 ms | requests | errors | RSS MiB | VmHWM MiB "
        "| CPU µs/req | core busy µs/req | other CPU % |"
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in rounds:
        for peer in peers:
            r = by.get((n, peer))
            if r is None:
                continue
            out.append(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    n,
                    peer,
                    _fmt(r["rps"], ",.0f"),
                    _fmt(r["p99_ms"], ".2f"),
                    _fmt(r["requests"], ".0f"),
                    _fmt(r["errors"], ".0f"),
                    _fmt(None if r["rss_kib"] is None else r["rss_kib"] / 1024, ".1f"),
                    _fmt(None if r["hwm_kib"] is None else r["hwm_kib"] / 1024, ".1f"),
                    _fmt(_per_req(r["cpu_us"], r["requests"]), ".1f"),
                    _fmt(_per_req(r["core_busy_us"], r["requests"]), ".1f"),
                    _fmt(r["other_cpu_pct"], ".1f"),
                )
            )
    out.append("")
    out.append(
        "core busy µs/req = non-idle time of the proxy's core (/proc/stat) over the run / "
        "requests: includes loopback softirq work, but also anything else scheduled on that "
        "core, so it is only meaningful on an otherwise idle machine. other CPU % = CPU time "
        "of processes the benchmark did not start, in % of all cores over the run."
    )
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) >= 3 and argv[1] == "parse":
        with open(argv[2], encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        try:
            rps, p99, reqs, errors = parse_wrk(text)
        except ValueError as exc:
            print(f"wrk_report.py: {argv[2]}: {exc}", file=sys.stderr)
            return 1
        print(f"{rps:.2f}\t{p99:.4f}\t{reqs}\t{errors}")
        return 0
    if len(argv) >= 4 and argv[1] == "report":
        with open(argv[3], encoding="utf-8") as fh:
            meta = [line.rstrip("\n") for line in fh]
        sys.stdout.write(report(load_rows(argv[2]), meta))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
