#!/usr/bin/env python3
"""Tables, verdicts and plot of scripts/run-demo.sh, and a check of their format.

    demo-report.py --out DIR --sizes 8,64,... [--rxd-max N] [--slices K] [--note TEXT] [--load TEXT] [--from DIR]
    demo-report.py --check FILE|- [--max N] [--png FILE]

The first form reads the runs run-demo.sh left in DIR/runs/ (TABLE-PATH.txt:
latbw's "lat SIZE US" and "bw SIZE MB/S" lines; .status: one line), prints
one table per setting measured (one host; two hosts) with the ratios
srd/reference and a verdict line computed from them, writes the same text
to DIR/demo.txt and the plot (latency and bandwidth against size, log axes)
to DIR/demo.png with gnuplot when it is there.

The second form checks a printed demo (the demo's output, or the README's
sample of it) without trusting this file's formatting code: both table
headers (the two-host one may be replaced by a "two hosts: not measured"
line), a row per size from 8 B to --max with numbers where they must be and
ratios that agree with the numbers beside them, and a verdict per table;
--png also checks that FILE is a PNG image. Exit 0 when all holds, else 1
with one line per problem.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

LADDER = [8, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
TIE = 1.10  # a size counts as won or lost when srd is more than 10% ahead or behind

TABLES = [
    {
        "key": "host",
        "title": "One host, 2 ranks: srd (shared memory) vs vader (Open MPI's default on one host: "
        "pml ob1) vs tcp (tcp;ofi_rxm over loopback)",
        "paths": ["srd", "vader", "tcp"],
    },
    {
        "key": "net",
        "title": "Two hosts (network namespaces, veth, MTU 1500), 1 rank each: srd vs tcp (tcp;ofi_rxm) "
        "vs rxd (udp;ofi_rxd)",
        "paths": ["srd", "tcp", "rxd"],
    },
]
LEGEND = ("ratios srd/reference: latency < 1 and bandwidth > 1 mean srd is faster ('-': not measured); "
          f"the verdict counts sizes where srd is over {round((TIE - 1) * 100)}% ahead or behind")
COLORS = {"srd": "#c0204a", "vader": "#2060c0", "tcp": "#20a040", "rxd": "#e08a00"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def human(s):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if s >= div and s % div == 0:
            return f"{s // div} {unit}"
    return f"{s} B"


def fmt_value(v):
    """Three significant digits at least; '-' when missing."""
    if v is None:
        return "-"
    if v < 1:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r < 10:
        return f"{r:.2f}"
    if r < 100:
        return f"{r:.1f}"
    return f"{r:.0f}"


def fmt_factor(f):
    return f"{f:.1f}x" if f < 10 else f"{f:.0f}x"


def load_run(path):
    """{"lat": {size: us}, "bw": {size: MB/s}} from latbw's output."""
    out = {"lat": {}, "bw": {}}
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) == 3 and w[0] in out:
                    try:
                        v = float(w[2])
                    except ValueError:
                        continue
                    if v > 0:
                        out[w[0]][int(w[1])] = v
    except OSError:
        pass
    return out


def ranges(sizes, chosen):
    """'8 B-1 KiB, 64 KiB' for the runs of consecutive table sizes in chosen."""
    parts, run = [], []
    for s in sizes + [None]:
        if s is not None and s in chosen:
            run.append(s)
            continue
        if run:
            parts.append(human(run[0]) if len(run) == 1 else f"{human(run[0])}-{human(run[-1])}")
            run = []
    return ", ".join(parts)


def verdict(sizes, data, refs):
    """One line: where srd is more than TIE ahead of / behind each reference."""
    wins, loses = [], []
    for metric, word in (("lat", "latency"), ("bw", "bandwidth")):
        for ref in refs:
            won, lost = {}, {}
            for s in sizes:
                a, b = data["srd"][metric].get(s), data[ref][metric].get(s)
                if a is None or b is None:
                    continue
                adv = b / a if metric == "lat" else a / b  # > 1: srd ahead
                if adv > TIE:
                    won[s] = adv
                elif adv < 1 / TIE:
                    lost[s] = 1 / adv
            for got, into in ((won, wins), (lost, loses)):
                if got:
                    where = "every size" if len(got) == len(sizes) else ranges(sizes, got)
                    into.append(f"{word} vs {ref} at {where} (up to {fmt_factor(max(got.values()))})")
    if not (data["srd"]["lat"] or data["srd"]["bw"]):
        return "verdict: srd was not measured (see its run's log)"
    if not any(data[r]["lat"] or data[r]["bw"] for r in refs):
        return "verdict: no reference was measured"
    return ("verdict: srd wins " + (", ".join(wins) or "nowhere")
            + "; loses " + (", ".join(loses) or "nowhere"))


def table_text(spec, sizes, data, notes):
    paths, refs = spec["paths"], spec["paths"][1:]
    ratio_heads = [f"srd/{r}" for r in refs]
    heads = ["size"] + paths + ratio_heads + ["|"] + paths + ratio_heads
    rows = []
    for s in sizes:
        row = [human(s)]
        for metric in ("lat", "bw"):
            vals = [data[p][metric].get(s) for p in paths]
            row += [fmt_value(v) for v in vals]
            row += [fmt_ratio(vals[0] / v if vals[0] and v else None) for v in vals[1:]]
            if metric == "lat":
                row.append("|")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    half = sum(widths[:len(paths) * 2]) + 2 * len(paths) * 2  # size + latency columns
    over = ("one-way latency (us)".center(half) + "|  " + "bandwidth, window of 64 (MB/s)").rstrip()
    out = [spec["title"], over, line(heads)] + [line(r) for r in rows]
    out.append(LEGEND)
    out += notes
    out.append(verdict(sizes, data, refs))
    return "\n".join(out)


def plot(png, tables, sizes, when, load):
    """2 x N panels (latency, bandwidth) with gnuplot; returns an error text or None."""
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot not found"
    ddir = os.path.dirname(png)
    rows = len(tables)
    xt = ", ".join(f'"{human(s)}" {s}' for s in sizes)
    cmds = [f"set terminal pngcairo size 1300,{430 * rows + 40} font 'sans,10'",
            f"set output '{png}'",
            f"set multiplot layout {rows},2 title 'srd-fabric demo (scripts/run-demo.sh): "
            f"MPI latency and bandwidth, 2 ranks; {when}, load average {load}'",
            "set logscale xy", "set grid xtics ytics mxtics mytics lw 0.5 lc rgb '#dddddd'",
            f"set xtics ({xt}) rotate by -30", f"set xrange [{sizes[0] / 1.6:g}:{sizes[-1] * 1.6:g}]",
            "set datafile missing '-'", "set key top left",
            "set xlabel 'message size'"]
    for spec, data in tables:
        dat = os.path.join(ddir, f"plot-{spec['key']}.dat")
        with open(dat, "w") as f:
            f.write("# size " + " ".join(f"{p}-lat {p}-bw" for p in spec["paths"]) + "\n")
            for s in sizes:
                cells = []
                for p in spec["paths"]:
                    for m in ("lat", "bw"):
                        v = data[p][m].get(s)
                        cells.append("-" if v is None else f"{v:g}")
                f.write(f"{s} " + " ".join(cells) + "\n")
        where = "one host" if spec["key"] == "host" else "two hosts (namespaces)"
        for m, (what, unit) in enumerate((("one-way latency", "us (lower is better)"),
                                         ("bandwidth, window of 64", "MB/s (higher is better)"))):
            series = []
            for i, p in enumerate(spec["paths"]):
                col = 2 + 2 * i + m
                style = f"lw {3 if p == 'srd' else 1.5} pt {7 if p == 'srd' else 6} lc rgb '{COLORS[p]}'"
                series.append(f"'{dat}' using 1:{col} with linespoints {style} title '{p}'")
            cmds += [f"set title '{where}: {what}'", f"set ylabel '{unit}'", "plot " + ", ".join(series)]
    cmds.append("unset multiplot")
    r = subprocess.run([gp], input="\n".join(cmds) + "\n", text=True, capture_output=True)
    if r.returncode != 0 or not os.path.exists(png):
        return f"gnuplot failed: {r.stderr.strip()[:300]}"
    return None


def report(a):
    sizes = [int(s) for s in a.sizes.split(",") if s]
    runs = os.path.join(a.out, "runs")
    text, measured = [], []
    for spec in TABLES:
        if not os.path.exists(os.path.join(runs, f"{spec['key']}-srd.status")):
            continue
        data, notes = {}, []
        for p in spec["paths"]:
            data[p] = load_run(os.path.join(runs, f"{spec['key']}-{p}.txt"))
            try:
                with open(os.path.join(runs, f"{spec['key']}-{p}.status")) as f:
                    st = f.read().strip()
            except OSError:
                st = "not run"
            if st != "ok":
                notes.append(f"{p}: {st}")
        if "rxd" in spec["paths"] and sizes[-1] > a.rxd_max:
            notes.append(f"rxd: sizes to {human(a.rxd_max)} only (it crashes or hangs above, here)")
        text.append(table_text(spec, sizes, data, notes))
        measured.append((spec, data))
    if a.note:
        text.append(a.note)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = "\n\n".join(text) + (f"\n\n{when}, load average {a.load or '?'}; each value is the best of "
                                  f"{a.slices} timed slices of one run (latbw -k {a.slices})\n")
    print("\n" + body, end="")
    with open(os.path.join(a.out, "demo.txt"), "w") as f:
        f.write(body)
    png = os.path.join(a.out, "demo.png")
    err = plot(png, measured, sizes, when, a.load or "?") if measured else "nothing measured"
    show = lambda path: os.path.relpath(path, a.from_dir) if path.startswith(a.from_dir + "/") else path  # noqa: E731
    print(f"tables: {show(os.path.join(a.out, 'demo.txt'))}")
    print(f"plot: {show(png)}" if err is None else f"plot: none ({err})")
    return 0 if measured else 1


# ---- the format check -------------------------------------------------------
NUM = r"\d+(?:\.\d+)?"
ROW = re.compile(r"^\s*(\d+) (B|KiB|MiB)\s+(.*?)\s+\|\s+(.*?)\s*$")


def check(a):
    src = sys.stdin if a.check == "-" else open(a.check)
    lines = [ln.rstrip("\n") for ln in src]
    sizes = [s for s in LADDER if s <= a.max]
    problems = []
    heads = {"host": ("One host, 2 ranks:", ["srd", "vader", "tcp"]),
             "net": ("Two hosts (network namespaces", ["srd", "tcp", "rxd"])}
    for key, (head, paths) in heads.items():
        at = [i for i, ln in enumerate(lines) if ln.startswith(head)]
        if not at:
            if key == "net" and any(ln.startswith("two hosts: not measured") for ln in lines):
                continue
            problems.append(f"no table starting with '{head}'")
            continue
        i = at[0] + 1
        if "one-way latency (us)" not in lines[i] or "bandwidth, window of 64 (MB/s)" not in lines[i]:
            problems.append(f"{key}: no 'one-way latency (us)' / 'bandwidth' line under the title")
        want = ["size"] + paths + [f"srd/{p}" for p in paths[1:]]
        if lines[i + 1].split() != want + ["|"] + want[1:]:
            problems.append(f"{key}: column header is '{lines[i + 1].strip()}'")
        i += 2
        for s in sizes:
            m = ROW.match(lines[i]) if i < len(lines) else None
            if not m or int(m.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1 << 20}[m.group(2)] != s:
                problems.append(f"{key}: expected the row of {human(s)}, got '{lines[i] if i < len(lines) else ''}'")
                break
            for metric, cells in (("latency", m.group(3).split()), ("bandwidth", m.group(4).split())):
                if len(cells) != 2 * len(paths) - 1:
                    problems.append(f"{key} {human(s)} {metric}: {len(cells)} columns, want {2 * len(paths) - 1}")
                    continue
                vals, ratios = cells[:len(paths)], cells[len(paths):]
                if not all(re.fullmatch(NUM, c) or c == "-" for c in cells):
                    problems.append(f"{key} {human(s)} {metric}: not a number or '-': {cells}")
                    continue
                if vals[0] == "-":
                    problems.append(f"{key} {human(s)} {metric}: srd not measured")
                    continue
                for p, v, r in zip(paths[1:], vals[1:], ratios):
                    if p != "rxd" and v == "-":
                        problems.append(f"{key} {human(s)} {metric}: {p} not measured")
                    if (v == "-") != (r == "-"):
                        problems.append(f"{key} {human(s)} {metric}: srd/{p} is '{r}' beside '{v}'")
                    elif r != "-":
                        want_r = float(vals[0]) / float(v)
                        if abs(float(r) - want_r) > 0.03 * want_r + 0.006:
                            problems.append(f"{key} {human(s)} {metric}: srd/{p} {r}, but srd/{p} = {want_r:.3f}")
            i += 1
        if i < len(lines) and ROW.match(lines[i]):
            problems.append(f"{key}: a row after {human(sizes[-1])}: '{lines[i]}'")
        rest = lines[i:]
        if not rest or not rest[0].startswith("ratios srd/reference: latency < 1 and bandwidth > 1 mean srd is faster"):
            problems.append(f"{key}: no legend line saying which way the ratios go under the rows")
        verdicts = [ln for ln in rest[:8] if ln.startswith("verdict: ")]
        if not verdicts or not re.match(r"verdict: srd wins .+; loses .+", verdicts[0]):
            problems.append(f"{key}: no 'verdict: srd wins ...; loses ...' line after the table")
    if a.png:
        try:
            with open(a.png, "rb") as f:
                ok = f.read(8) == PNG_MAGIC
        except OSError:
            ok = False
        if not ok:
            problems.append(f"{a.png} is not a PNG image")
    for p in problems:
        print(f"demo format: {p}")
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out")
    ap.add_argument("--sizes")
    ap.add_argument("--rxd-max", type=int, default=262144)
    ap.add_argument("--note", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--slices", type=int, default=1)
    ap.add_argument("--from", dest="from_dir", default="/nonexistent", help="print paths relative to this folder")
    ap.add_argument("--check")
    ap.add_argument("--max", type=int, default=LADDER[-1])
    ap.add_argument("--png")
    a = ap.parse_args()
    if a.check:
        return check(a)
    if not a.out or not a.sizes:
        ap.error("--out and --sizes are needed (or --check)")
    return report(a)


if __name__ == "__main__":
    sys.exit(main())
