#!/usr/bin/env python3
"""Turn build/bench/results.json (bench/real/run.py) into bench/RESULTS.md
with PNG charts made by gnuplot.  python3 stdlib only.

  bench/real/report.py RESULTS.json [--micro build/bench/micro.json]
                       [--md bench/RESULTS.md] [--charts bench/results]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CONFIGS = ["plain", "retpoline", "relpoline", "pgo-retpoline", "relpoline-indirect"]
COLORS = {"plain": "#4c72b0", "retpoline": "#c44e52", "relpoline": "#55a868",
          "pgo-retpoline": "#8172b2", "relpoline-indirect": "#ccb974"}


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100000:
        return "%.0f" % v
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 10:
        return "%.2f" % v
    return "%.3f" % v


def pct(v):
    return "-" if v is None else "%.0f%%" % (100 * v)


def cell(e):
    if not e or e.get("median") is None:
        return "failed" if e else "-"
    s = "%s (%s–%s)" % (fmt(e["median"]), fmt(e["min"]), fmt(e["max"]))
    if e.get("checks_passed") is False:
        s += " ⚠"
    return s


def rel(e):
    v = e.get("speed_vs_plain") if e else None
    return "-" if v is None else "%.2f×" % v


def gnuplot(script, what):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no %s chart" % what, file=sys.stderr)
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("report: gnuplot failed for %s:\n%s" % (what, r.stderr), file=sys.stderr)
        return False
    return True


def chart_overview(res, path, configs):
    """Clustered bars: speed relative to plain (median), min-max error bars."""
    rows = []
    for p in res["programs"]:
        cf = p["configs"]
        pl = cf.get("plain", {}).get("median")
        if not pl:
            continue
        row = [p["name"]]
        for c in configs:
            e = cf.get(c) or {}
            if e.get("median") is None:
                row += ["NaN", "NaN", "NaN"]
                continue
            if p["higher_is_better"]:
                f = lambda x: x / pl
            else:
                f = lambda x: pl / x
            vals = sorted([f(e["median"]), f(e["min"]), f(e["max"])])
            row += ["%.4f" % f(e["median"]), "%.4f" % vals[0], "%.4f" % vals[2]]
        rows.append(row)
    if not rows:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
        for r in rows:
            d.write(" ".join('"%s"' % x if i == 0 else x for i, x in enumerate(r)) + "\n")
        dat = d.name
    plots = []
    for i, c in enumerate(configs):
        col = 2 + 3 * i
        src = "'%s'" % dat if i == 0 else "''"
        xt = ":xtic(1)" if i == 0 else ""
        plots.append("%s using %d:%d:%d%s title '%s' lc rgb '%s'" % (src, col, col + 1, col + 2, xt, c, COLORS[c]))
    script = """
set terminal pngcairo size 1100,520 font ',10'
set output '%s'
set title 'Speed relative to plain (median; bars: min-max over runs; higher is better)'
set style data histograms
set style histogram errorbars gap 1.5 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key outside right top
set xtics rotate by -20
set ylabel 'speed / plain'
plot %s, 1 notitle dt 2 lc rgb '#444444'
""" % (path, ", ".join(plots))
    ok = gnuplot(script, "overview")
    os.unlink(dat)
    return ok


def chart_phase(res, path, configs):
    """Throughput per window over both phases of the phase-change program."""
    p1 = next((p for p in res["programs"] if p["name"] == "phase-change:phase1"), None)
    p2 = next((p for p in res["programs"] if p["name"] == "phase-change:phase2"), None)
    if not p1 or not p2:
        return False
    series = {}
    for c in configs:
        w1 = (p1["configs"].get(c) or {}).get("windows_median")
        w2 = (p2["configs"].get(c) or {}).get("windows_median")
        if w1 and w2:
            series[c] = w1 + w2
    if not series:
        return False
    n = max(len(v) for v in series.values())
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
        for i in range(n):
            d.write("%d %s\n" % (i + 1, " ".join("%.3f" % series[c][i] if i < len(series[c]) else "NaN"
                                                  for c in series)))
        dat = d.name
    half = len(next(iter(series.values()))) // 2
    plots = ["'%s' using 1:%d with linespoints lw 2 lc rgb '%s' title '%s'" % (dat, 2 + i, COLORS[c], c)
             for i, c in enumerate(series)]
    script = """
set terminal pngcairo size 1000,480 font ',10'
set output '%s'
set title 'Phase-change benchmark: throughput per window (median over runs); targets change after window %d'
set xlabel 'window (phase 1: 1-%d, phase 2: %d-%d)'
set ylabel 'Mcalls/s'
set yrange [0:*]
set grid
set key outside right top
set arrow from %.1f, graph 0 to %.1f, graph 1 nohead dt 2 lc rgb '#444444'
plot %s
""" % (path, half, half, half + 1, 2 * half, half + 0.5, half + 0.5, ", ".join(plots))
    ok = gnuplot(script, "phase")
    os.unlink(dat)
    return ok


def micro_table(micro):
    """Render build/bench/micro.json generically: the first list of objects."""
    def find_list(x):
        if isinstance(x, list) and x and all(isinstance(i, dict) for i in x):
            return x
        if isinstance(x, dict):
            for k in ("results", "benchmarks", "rows", "cases", "table"):
                if k in x:
                    r = find_list(x[k])
                    if r:
                        return r
            for v in x.values():
                r = find_list(v)
                if r:
                    return r
        return None
    rows = find_list(micro)
    if not rows:
        return ["```", json.dumps(micro, indent=1)[:6000], "```"]
    cols = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and not isinstance(v, (dict, list)):
                cols.append(k)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(k)) if isinstance(r.get(k), float) else str(r.get(k, "-"))
                                     for k in cols) + " |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--micro")
    ap.add_argument("--md", default="bench/RESULTS.md")
    ap.add_argument("--charts", default="bench/results")
    a = ap.parse_args()
    res = json.load(open(a.results))
    configs = [c for c in CONFIGS if any(c in p["configs"] for p in res["programs"])]
    os.makedirs(a.charts, exist_ok=True)
    mddir = os.path.dirname(os.path.abspath(a.md))
    charts = []
    ov = os.path.join(a.charts, "overview.png")
    if chart_overview(res, ov, configs):
        charts.append(("Speed relative to plain", os.path.relpath(ov, mddir)))
    ph = os.path.join(a.charts, "phase.png")
    if chart_phase(res, ph, configs):
        charts.append(("Phase-change benchmark, per window", os.path.relpath(ph, mddir)))

    L = []
    L.append("# relpoline: real-program benchmark results")
    L.append("")
    L.append("Generated by `bench/real/report.py` from `%s` (written by `bench/real/run.py`, mode: **%s**). "
             "Do not edit by hand: `make bench` regenerates it." % (os.path.relpath(a.results), res.get("mode")))
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append("| date | %s |" % res.get("date"))
    L.append("| CPU | %s (%s CPUs) |" % (res.get("cpu"), res.get("nproc")))
    L.append("| spectre_v2 | `%s` |" % res.get("spectre_v2"))
    L.append("| kernel | %s |" % res.get("kernel"))
    for k, v in (res.get("compilers") or {}).items():
        L.append("| %s | %s |" % (k, v or "not available"))
    for k, v in (res.get("tools") or {}).items():
        L.append("| %s | %s |" % (k, v))
    L.append("| source packages | %s |" % ", ".join("%s %s" % kv for kv in (res.get("source_packages") or {}).items()))
    L.append("| runs per configuration | %s, %s |" % (res.get("runs_per_config"), res.get("order")))
    L.append("| pinning | %s |" % res.get("pinning"))
    L.append("| elapsed | %s s |" % res.get("elapsed_seconds"))
    L.append("")
    L.append("## Configurations")
    L.append("")
    for c in configs:
        L.append("- **%s**: %s" % (c, res["config_descriptions"].get(c, "")))
    for c, why in (res.get("skipped_configs") or {}).items():
        L.append("- **%s**: not measured: %s" % (c, why))
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Median (min–max) over the runs. *Recovered* = (relpoline − retpoline) / (plain − retpoline) "
             "on the medians: the share of the retpoline overhead that relpoline wins back (1 = all of it, "
             ">1 = faster than plain). *PGO recovered*: the same for pgo-retpoline. *indirect/plain*: "
             "relpoline-indirect's speed relative to plain (1 = same, <1 = slower). ⚠ = a check failed "
             "in some run (see Failures).")
    L.append("")
    hdr = ["program", "metric"] + configs + ["recovered", "PGO recovered", "indirect/plain"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for p in res["programs"]:
        row = [p["name"], p["metric"] + (" ↑" if p["higher_is_better"] else " ↓")]
        row += [cell(p["configs"].get(c)) for c in configs]
        row += [pct(p.get("retpoline_overhead_recovered")), pct(p.get("pgo_overhead_recovered")),
                "-" if p.get("relpoline_indirect_vs_plain") is None else "%.3f" % p["relpoline_indirect_vs_plain"]]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Speed relative to plain (median):")
    L.append("")
    L.append("| program | " + " | ".join(configs) + " |")
    L.append("|---|" + "---|" * len(configs))
    for p in res["programs"]:
        L.append("| %s | %s |" % (p["name"], " | ".join(rel(p["configs"].get(c)) for c in configs)))
    L.append("")
    for title, rp in charts:
        L.append("![%s](%s)" % (title, rp))
        L.append("")
    # redis subtests
    for p in res["programs"]:
        subs = [c for c in configs if (p["configs"].get(c) or {}).get("subtests")]
        if not subs:
            continue
        names = list(p["configs"][subs[0]]["subtests"].keys())
        L.append("### %s: per test (%s, median (min–max))" % (p["name"], p["metric"]))
        L.append("")
        L.append("| test | " + " | ".join(subs) + " |")
        L.append("|---|" + "---|" * len(subs))
        for t in names:
            L.append("| %s | %s |" % (t, " | ".join(cell(p["configs"][c]["subtests"].get(t)) for c in subs)))
        L.append("")
    # server CPU time per request: less sensitive to other load on the machine
    for p in res["programs"]:
        cs = [c for c in configs if (p["configs"].get(c) or {}).get("server_cpu_us_per_request")]
        if not cs:
            continue
        names = list(p["configs"][cs[0]]["server_cpu_us_per_request"].keys())
        L.append("### %s: server CPU time per request (µs, user+system, lower is better)" % p["name"])
        L.append("")
        L.append("From /proc/PID/stat of the server around the measured load (10 ms ticks). Less "
                 "sensitive than throughput to other load on the machine, which slows the client too.")
        L.append("")
        L.append("| load | " + " | ".join(cs) + " |")
        L.append("|---|" + "---|" * len(cs))
        for t in names:
            L.append("| %s | %s |" % (t, " | ".join(cell(p["configs"][c]["server_cpu_us_per_request"].get(t))
                                                  for c in cs)))
        L.append("")
    # phase windows
    p1 = next((p for p in res["programs"] if p["name"] == "phase-change:phase1"), None)
    p2 = next((p for p in res["programs"] if p["name"] == "phase-change:phase2"), None)
    if p1 and p2:
        L.append("### Phase change: Mcalls/s per window (median over runs)")
        L.append("")
        L.append("Phase 1 and phase 2 run the same four call sites; phase 2 switches every site to "
                 "targets never seen in phase 1. pgo-retpoline was trained on phase 1 only.")
        L.append("")
        cs = [c for c in configs if (p1["configs"].get(c) or {}).get("windows_median")]
        L.append("| window | " + " | ".join(cs) + " |")
        L.append("|---|" + "---|" * len(cs))
        w1 = {c: p1["configs"][c]["windows_median"] for c in cs}
        w2 = {c: (p2["configs"].get(c) or {}).get("windows_median") or [] for c in cs}
        n1 = max(len(v) for v in w1.values()) if w1 else 0
        n2 = max(len(v) for v in w2.values()) if w2 else 0
        for i in range(n1):
            L.append("| 1.%d | %s |" % (i + 1, " | ".join(fmt(w1[c][i]) if i < len(w1[c]) else "-" for c in cs)))
        for i in range(n2):
            L.append("| 2.%d | %s |" % (i + 1, " | ".join(fmt(w2[c][i]) if i < len(w2[c]) else "-" for c in cs)))
        L.append("")
    L.append("## What was measured, and how")
    L.append("")
    for p in res["programs"]:
        if p["name"] == "phase-change:phase2":
            continue
        L.append("### %s" % p["name"].split(":")[0])
        L.append("")
        L.append("- measured: %s" % p.get("measured"))
        L.append("- PGO training input (differs from the measured one): %s" % p.get("training"))
        if p.get("pgo_profile"):
            L.append("- PGO profile: %s .gcda files; objects built without a profile: %s"
                     % (p["pgo_profile"].get("profiles"), p["pgo_profile"].get("objects_without_profile")))
        L.append("")
        L.append("Run commands (PORT and PREFIX are chosen per run):")
        L.append("")
        L.append("```")
        L += p.get("commands") or []
        L.append("```")
        L.append("")
        bc = p.get("build_commands") or {}
        if bc:
            L.append("<details><summary>Build commands</summary>")
            L.append("")
            for c, lines in bc.items():
                L.append("%s:" % c)
                L.append("")
                L.append("```")
                L += lines
                L.append("```")
                L.append("")
            L.append("</details>")
            L.append("")
    L.append("Whole suite: `make bench` (this file, `bench/results/latest.json`, charts) or "
             "`make bench-quick` (3 runs, shorter loads; `build/bench/RESULTS-quick.md`). "
             "The driver is `python3 bench/real/run.py [--quick] [--runs N] [--programs ...] [--configs ...]`.")
    L.append("")
    if a.micro and os.path.exists(a.micro):
        L.append("## Micro-benchmarks (build/bench/micro.json)")
        L.append("")
        try:
            L += micro_table(json.load(open(a.micro)))
        except Exception as e:  # a broken micro.json must not lose the rest
            L.append("(could not read %s: %s)" % (a.micro, e))
        L.append("")
    fails = res.get("failures") or []
    L.append("## Failures")
    L.append("")
    if not fails:
        L.append("None: every run passed its checks (redis: no error replies, no rejected connections, "
                 "SET/GET/INCR round trip; nginx: 200 with the exact bytes before and after, no non-2xx or "
                 "socket errors in wrk; sqlite and phase: output identical to the plain build's).")
    else:
        for f in fails:
            L.append("- %s/%s run %s: %s (binary `%s` %s)" % (f["program"], f["config"], f["run"],
                                                             f["error"].splitlines()[0][:300], f.get("binary"),
                                                             f.get("env", "")))
    L.append("")
    os.makedirs(mddir, exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(L))
    print("report: wrote %s%s" % (a.md, "".join(", " + c[1] for c in charts)), file=sys.stderr)


if __name__ == "__main__":
    main()
