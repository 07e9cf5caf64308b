#!/usr/bin/env python3
"""Tables, CSV and plot for scripts/bench.

Reads the raw result lines scripts/bench collected ("path test pairs size
value provider") and its per-run log ("path test np status seconds lines"),
then writes <out>/results.csv, <out>/tables.md (the tables as markdown) and
<out>/bench.png, and prints the tables with ratios srd / reference. Missing
points (a run that timed out or crashed) show as "-". Plotting uses
matplotlib, else gnuplot, else is skipped: the CSV and tables come first.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

UNITS = {"lat": "us", "bw": "MB/s", "bibw": "MB/s", "mr": "msgs/s", "ar": "us", "p50": "us", "p99": "us", "p99.9": "us"}
TITLES = {
    "lat": "one-way latency (us; ratio < 1: srd faster)",
    "bw": "bandwidth, window 64 (MB/s; ratio > 1: srd faster)",
    "bibw": "bidirectional bandwidth, window 64 each way (MB/s; ratio > 1: srd faster)",
    "mr": "aggregate message rate (msgs/s; ratio > 1: srd faster)",
    "p50": "8 B one-way latency, median of every round trip (us; ratio < 1: srd faster)",
    "p99": "8 B one-way latency, 99th percentile (us; ratio < 1: srd faster)",
    "p99.9": "8 B one-way latency, 99.9th percentile (us; ratio < 1: srd faster)",
}
SAME_HOST = ["srd-shm", "srd-udp", "tcp", "rxd", "vader"]
SAME_HOST_RATIOS = [("srd-shm", "vader"), ("srd-udp", "tcp"), ("srd-udp", "rxd"), ("srd-shm", "tcp")]
NETNS = ["srd-0", "tcp-0", "srd-5", "tcp-5"]
NETNS_RATIOS = [("srd-0", "tcp-0"), ("srd-5", "tcp-5"), ("srd-5", "srd-0"), ("tcp-5", "tcp-0")]


def human_size(s):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if s >= div and s % div == 0:
            return f"{s // div} {unit}"
    return f"{s} B"


def fmt(test, v):
    if v is None:
        return "-"
    if test in ("lat", "p50", "p99", "p99.9"):
        return f"{v:.2f}"
    if test == "mr":
        return f"{v / 1e3:.0f}k"
    return f"{v:.3g}" if v < 10 else f"{v:.0f}"


def load(raw):
    """Rows (path, test, pairs, size, median, provider, all values)."""
    vals, prov = {}, {}
    with open(raw) as f:
        for line in f:
            w = line.split()
            if len(w) < 6:
                continue
            try:
                key = (w[0], w[1], int(w[2]), int(w[3]))
                vals.setdefault(key, []).append(float(w[4]))
                prov[key] = w[5]
            except ValueError:
                continue
    return [k + (statistics.median(v), prov[k], v) for k, v in vals.items()]


def tables(rows, paths, ratios):
    """Yield (title, header, body) per test, body rows as lists of strings."""
    data = {(p, t, n, s): v for p, t, n, s, v, _, _ in rows}
    present = [p for p in paths if any(r[0] == p for r in rows)]
    ratios = [(a, b) for a, b in ratios if a in present and b in present]
    for test in ("lat", "p50", "p99", "p99.9", "bw", "bibw", "mr"):
        keys = sorted({(n, s) for p, t, n, s in data if t == test})
        if not keys:
            continue
        header = (["pairs"] if test == "mr" else []) + ["size"] + present + [f"{a}/{b}" for a, b in ratios]
        body = []
        for n, s in keys:
            vals = [data.get((p, test, n, s)) for p in present]
            rs = []
            for a, b in ratios:
                va, vb = data.get((a, test, n, s)), data.get((b, test, n, s))
                rs.append(f"{va / vb:.2f}" if va and vb else "-")
            body.append(([str(n)] if test == "mr" else []) + [human_size(s)] + [fmt(test, v) for v in vals] + rs)
        yield TITLES[test], header, body


def print_table(title, header, body, out):
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    print(f"\n{title}", file=out)
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)), file=out)
    for r in body:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)), file=out)


def markdown(title, header, body):
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def plot_matplotlib(rows, paths, png, subtitle):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    panels = [("lat", "one-way latency", "µs"), ("bw", "bandwidth (window 64)", "MB/s"),
              ("bibw", "bidirectional bandwidth", "MB/s"), ("mr", "message rate (smallest size)", "msgs/s")]
    for ax, (test, title, unit) in zip(axes.flat, panels):
        for p in paths:
            if test == "mr":
                pts = [(n, s, v) for q, t, n, s, v, _, _ in rows if q == p and t == "mr"]
                if not pts:
                    continue
                s0 = min(s for _, s, _ in pts)
                xy = sorted((n, v) for n, s, v in pts if s == s0 and v > 0)
                ax.set_xlabel(f"pairs ({human_size(s0)} messages)")
            else:
                # Latency at 0 B cannot sit on a log axis: drawn at 0.5 B.
                xy = sorted((s if s else 0.5, v) for q, t, n, s, v, _, _ in rows if q == p and t == test and v > 0)
                ax.set_xlabel("message size (bytes; 0 B drawn at 0.5)")
            if xy:
                ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", ms=3, label=p)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"srd-fabric scripts/bench\n{subtitle}")
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def plot_gnuplot(rows, paths, png, subtitle, tmpdir):
    if not shutil.which("gnuplot"):
        raise RuntimeError("no gnuplot")
    cmds = [f"set terminal pngcairo size 1200,500", f"set output '{png}'",
            "set multiplot layout 1,2 title 'srd-fabric scripts/bench, " + subtitle.replace("'", "") + "'",
            "set logscale xy", "set grid", "set key left top"]
    for test, title in (("lat", "one-way latency (us)"), ("bw", "bandwidth (MB/s)")):
        series = []
        for p in paths:
            xy = sorted((s if s else 0.5, v) for q, t, n, s, v, _, _ in rows if q == p and t == test and v > 0)
            if not xy:
                continue
            fn = os.path.join(tmpdir, f"gp.{p}.{test}.dat")
            with open(fn, "w") as f:
                f.writelines(f"{x} {y}\n" for x, y in xy)
            series.append(f"'{fn}' using 1:2 with linespoints title '{p}'")
        cmds += [f"set title '{title}'", "set xlabel 'bytes'", "plot " + ", ".join(series)]
    cmds.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--netns", action="store_true")
    a = ap.parse_args()

    rows = load(a.raw)
    paths, ratios = (NETNS, NETNS_RATIOS) if a.netns else (SAME_HOST, SAME_HOST_RATIOS)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_avg = " ".join(open("/proc/loadavg").read().split()[:3])
    where = "2 namespaces (veth + bridge, MTU 1500; -5: 5% loss of all IP)" if a.netns else "same host"
    subtitle = f"{a.mode}, {where}, {when}, load {load_avg}"

    csv_path = os.path.join(a.out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "test", "pairs", "size", "value", "unit", "provider", "runs", "min", "max"])
        for p, t, n, s, v, prov, allv in rows:
            w.writerow([p, t, n, s, v, UNITS[t], prov, len(allv), min(allv), max(allv)])

    md = [f"{subtitle}\n"]
    for title, header, body in tables(rows, paths, ratios):
        print_table(title, header, body, sys.stdout)
        md.append(markdown(title, header, body))

    bad = []
    with open(a.runs) as f:
        for line in f:
            w = line.split()
            if len(w) >= 6 and w[3] != "ok":
                la = f", load {w[6]}" if len(w) > 6 else ""
                bad.append(f"  {w[0]} {w[1]} np={w[2]}: {w[3]} after {w[4]} s, {w[5]} result lines{la}")
    if bad:
        print("\nruns that failed (a failed run is retried once; missing sizes show as '-'):")
        print("\n".join(bad))
        md.append("Failed runs:\n\n" + "\n".join("-" + b[1:] for b in bad) + "\n")
    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(md))

    png = os.path.join(a.out, "bench.png")
    try:
        plot_matplotlib(rows, paths, png, subtitle)
    except Exception as e:  # noqa: BLE001 - any failure: try the next plotter
        try:
            with tempfile.TemporaryDirectory() as tmp:
                plot_gnuplot(rows, paths, png, subtitle, tmp)
        except Exception as e2:  # noqa: BLE001
            png = None
            print(f"\nno plot (matplotlib: {e}; gnuplot: {e2})")
    print(f"\n{subtitle}")
    print(f"CSV: {csv_path}" + (f"   plot: {png}" if png else "") + f"   tables: {os.path.join(a.out, 'tables.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
