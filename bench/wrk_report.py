#!/usr/bin/env python3
"""Helpers for bench/passthrough.sh and bench/cachehit.sh (python3 stdlib only).

  wrk_report.py parse WRK_OUTPUT_FILE
      Print one tab-separated line: rps  p99_ms  requests  errors
      (errors = non-2xx/3xx responses + socket errors). Exit 1 if the output
      has no "Requests/sec" line (wrk failed).

  wrk_report.py results RESULTS_TSV LABELS_TSV HEADING RESULTS_MD
      Replace the block between "<!-- passthrough-table:begin -->" and
      "<!-- passthrough-table:end -->" in RESULTS_MD with the issue-style table
      (row, req/s vs nginx, p99 vs nginx, CPU µs/req) of this run, under HEADING.
      LABELS_TSV: peer<TAB>row label, in table order.

  wrk_report.py report RESULTS_TSV META_FILE [OPTIONS]
      Read the per-round results written by a benchmark script and print the
      Markdown report (summary table with medians, then every round).
      Options (defaults are the pass-through benchmark's):
        --title TEXT          first line of the report
        --baseline PEER       ratios are taken against this peer (nginx)
        --order P1,P2,...     peer order in the tables
        --target-peer PEER    check PEER against the baseline (adds an "RSS ×"
        --min-rps-ratio X     column and a Targets section): req/s ratio >= X,
        --max-p99-ratio X     p99 ratio <= X, RSS ratio < X (each optional)
        --max-rss-ratio X

RESULTS_TSV columns (tab-separated, with a header line):
  round peer rps p99_ms requests errors rss_kib hwm_kib cpu_us core_busy_us other_cpu_pct
  [origin_reqs]   (optional: requests the origin served during the run, i.e. cache misses)
  [anon_kib]      (optional: RssAnon after the run, i.e. RSS without mapped files)
Empty cells (for "direct", which has no proxy process) are written as "-".
"""

import re
import statistics
import sys

PEER_ORDER = ["direct", "nginx", "haproxy", "pingora", "scalelab", "nolog", "nometrics", "traefik", "caddy"]
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
                    "origin_reqs": _num(rec["origin_reqs"]) if "origin_reqs" in rec else None,
                    "has_origin": "origin_reqs" in rec,
                    "anon_kib": _num(rec["anon_kib"]) if "anon_kib" in rec else None,
                    "has_anon": "anon_kib" in rec,
                }
            )
    return rows


def _per_req(total_us, requests):
    if total_us is None or not requests:
        return None
    return total_us / requests


def _paired_ratios(by, rounds, peer, baseline, key):
    # Ratios are paired per round (same moment, interleaved); the caller takes the median.
    out = []
    for n in rounds:
        a, b = by.get((n, peer)), by.get((n, baseline))
        if a and b and a[key] and b[key]:
            out.append(a[key] / b[key])
    return out


def report(
    rows,
    meta_lines,
    title="# scalelab pass-through benchmark",
    baseline=BASELINE,
    order=PEER_ORDER,
    target_peer=None,
    min_rps_ratio=None,
    max_p99_ratio=None,
    max_rss_ratio=None,
):
    peers = [p for p in order if any(r["peer"] == p for r in rows)]
    peers += sorted({r["peer"] for r in rows} - set(peers))
    by = {(r["round"], r["peer"]): r for r in rows}
    rounds = sorted({r["round"] for r in rows})

    out = []
    with_rss_ratio = target_peer is not None
    with_origin = any(r["has_origin"] for r in rows)
    with_anon = any(r["has_anon"] for r in rows)
    out.append(title)
    out.append("")
    out.extend(meta_lines)
    out.append("")
    head = "| peer | req/s | × {b} req/s | p99 ms | p99 × {b} | RSS MiB | ".format(b=baseline)
    align = "|---|---:|---:|---:|---:|---:|"
    if with_rss_ratio:
        head += "RSS × {} | ".format(baseline)
        align += "---:|"
    if with_anon:
        head += "anon RSS MiB | "
        align += "---:|"
    head += "peak RSS MiB | CPU µs/req | errors |"
    align += "---:|---:|---:|"
    if with_origin:
        head += " origin reqs |"
        align += "---:|"
    out.append(head)
    out.append(align)
    summary = {}
    for peer in peers:
        mine = [by[(n, peer)] for n in rounds if (n, peer) in by]
        rps_ratio = _median(_paired_ratios(by, rounds, peer, baseline, "rps"))
        p99_ratio = _median(_paired_ratios(by, rounds, peer, baseline, "p99_ms"))
        rss_ratio = _median(_paired_ratios(by, rounds, peer, baseline, "rss_kib"))
        summary[peer] = (rps_ratio, p99_ratio, rss_ratio)
        rss = _median([r["rss_kib"] for r in mine])
        hwm = [r["hwm_kib"] for r in mine if r["hwm_kib"] is not None]
        errors = sum(int(r["errors"] or 0) for r in mine)
        cells = [
            peer,
            _fmt(_median([r["rps"] for r in mine]), ",.0f"),
            _fmt(rps_ratio, ".2f", "×"),
            _fmt(_median([r["p99_ms"] for r in mine]), ".2f"),
            _fmt(p99_ratio, ".2f", "×"),
            _fmt(None if rss is None else rss / 1024, ".1f"),
        ]
        if with_rss_ratio:
            cells.append(_fmt(rss_ratio, ".2f", "×"))
        if with_anon:
            anon = _median([r["anon_kib"] for r in mine])
            cells.append(_fmt(None if anon is None else anon / 1024, ".1f"))
        cells += [
            _fmt(max(hwm) / 1024 if hwm else None, ".1f"),
            _fmt(_median([_per_req(r["cpu_us"], r["requests"]) for r in mine]), ".1f"),
            str(errors),
        ]
        if with_origin:
            origin = [r["origin_reqs"] for r in mine if r["origin_reqs"] is not None]
            cells.append(_fmt(sum(origin) if origin else None, ".0f"))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "Medians over rounds. Ratios are taken per round against {} in the same round, "
        "then the median. RSS = proxy VmRSS right after each run (median); peak RSS = "
        "largest VmHWM seen. CPU µs/req = proxy utime+stime over the run / requests wrk "
        "completed. errors = non-2xx/3xx + socket errors, summed over rounds.".format(baseline)
        + (
            " origin reqs = requests the origin served during the measured runs (cache "
            "misses; 0 means every request was a hit), summed over rounds."
            if with_origin
            else ""
        )
        + (
            " anon RSS = RssAnon (RSS without file mappings such as Varnish's shared-memory "
            "log), median."
            if with_anon
            else ""
        )
    )
    if target_peer is not None and target_peer in summary:
        rps_ratio, p99_ratio, rss_ratio = summary[target_peer]
        checks = []
        if min_rps_ratio is not None:
            checks.append(("req/s", rps_ratio, ">=", min_rps_ratio,
                           rps_ratio is not None and rps_ratio >= min_rps_ratio))
        if max_p99_ratio is not None:
            checks.append(("p99", p99_ratio, "<=", max_p99_ratio,
                           p99_ratio is not None and p99_ratio <= max_p99_ratio))
        if max_rss_ratio is not None:
            checks.append(("RSS", rss_ratio, "<", max_rss_ratio,
                           rss_ratio is not None and rss_ratio < max_rss_ratio))
        if checks:
            out.append("")
            out.append("## Targets ({} against {})".format(target_peer, baseline))
            out.append("")
            for name, value, op, limit, ok in checks:
                out.append(
                    "- {} {}: {} × {} (target {} {:.2f}×)".format(
                        "PASS" if ok else "FAIL", name, _fmt(value, ".2f"), baseline, op, limit
                    )
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
        "| CPU µs/req | core busy µs/req | other CPU % |" + (" origin reqs |" if with_origin else "")
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_origin else ""))
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
                + (" {} |".format(_fmt(r["origin_reqs"], ".0f")) if with_origin else "")
            )
    out.append("")
    out.append(
        "core busy µs/req = non-idle time of the proxy's core (/proc/stat) over the run / "
        "requests: includes loopback softirq work, but also anything else scheduled on that "
        "core, so it is only meaningful on an otherwise idle machine. other CPU % = CPU time "
        "of processes the benchmark did not start, in % of all cores over the run."
    )
    return "\n".join(out) + "\n"


BEGIN = "<!-- passthrough-table:begin -->"
END = "<!-- passthrough-table:end -->"


def _span(values, spec):
    """The median, with the range over rounds when they differ: "0.64 (0.60-0.68)"."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mid = format(_median(values), spec)
    low, high = format(min(values), spec), format(max(values), spec)
    return mid if low == high else "{} ({}–{})".format(mid, low, high)


def results_table(rows, labels, heading, baseline=BASELINE):
    """The issue's table: one row per peer, ratios paired per round against the baseline."""
    by = {(r["round"], r["peer"]): r for r in rows}
    rounds = sorted({r["round"] for r in rows})
    out = [heading, ""]
    out.append(
        "| row | req/s | req/s vs {b} | p99 vs {b} | CPU µs/req (core busy) | CPU µs/req (process) | errors |".format(
            b=baseline
        )
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for peer, label in labels:
        mine = [by[(n, peer)] for n in rounds if (n, peer) in by]
        if not mine:
            continue
        out.append(
            "| {} | {} | {} | {} | {} | {} | {} |".format(
                label,
                _fmt(_median([r["rps"] for r in mine]), ",.0f"),
                _span(_paired_ratios(by, rounds, peer, baseline, "rps"), ".2f"),
                _span(_paired_ratios(by, rounds, peer, baseline, "p99_ms"), ".2f"),
                _span([_per_req(r["core_busy_us"], r["requests"]) for r in mine], ".0f"),
                _span([_per_req(r["cpu_us"], r["requests"]) for r in mine], ".0f"),
                sum(int(r["errors"] or 0) for r in mine),
            )
        )
    other = [r["other_cpu_pct"] for r in rows if r["other_cpu_pct"] is not None]
    out.append("")
    out.append(
        "Medians over {} interleaved round(s), range in brackets; ratios paired per round. "
        "CPU µs/req (core busy) = non-idle time of the proxy's core per request (the issue's "
        "measure: includes loopback softirq work, and anything else on that core); "
        "(process) = the proxy's own utime+stime per request. Other processes used a median "
        "{:.1f}% (max {:.1f}%) of the machine during the runs{}.".format(
            len(rounds),
            _median(other) if other else 0.0,
            max(other) if other else 0.0,
            "; **the machine was not idle, so req/s and p99 are noisy: compare ratios**"
            if other and _median(other) > 5
            else "",
        )
    )
    return out


def rewrite_results(path, block):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = BEGIN + "\n" + "\n".join(block) + "\n" + END
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv):
    if len(argv) == 6 and argv[1] == "results":
        rows = load_rows(argv[2])
        with open(argv[3], encoding="utf-8") as fh:
            labels = [tuple(line.rstrip("\n").split("\t", 1)) for line in fh if "\t" in line]
        rewrite_results(argv[5], results_table(rows, labels, argv[4]))
        return 0
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
        import argparse

        ap = argparse.ArgumentParser(prog="wrk_report.py report")
        ap.add_argument("tsv")
        ap.add_argument("meta")
        ap.add_argument("--title", default="# scalelab pass-through benchmark")
        ap.add_argument("--baseline", default=BASELINE)
        ap.add_argument("--order", default=",".join(PEER_ORDER))
        ap.add_argument("--target-peer")
        ap.add_argument("--min-rps-ratio", type=float)
        ap.add_argument("--max-p99-ratio", type=float)
        ap.add_argument("--max-rss-ratio", type=float)
        args = ap.parse_args(argv[2:])
        with open(args.meta, encoding="utf-8") as fh:
            meta = [line.rstrip("\n") for line in fh]
        sys.stdout.write(
            report(
                load_rows(args.tsv),
                meta,
                title=args.title,
                baseline=args.baseline,
                order=args.order.split(","),
                target_peer=args.target_peer,
                min_rps_ratio=args.min_rps_ratio,
                max_p99_ratio=args.max_p99_ratio,
                max_rss_ratio=args.max_rss_ratio,
            )
        )
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
