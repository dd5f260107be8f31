#!/usr/bin/env python3
"""Turn build/bench/results.json (bench/real/run.py) into bench/RESULTS.md
with PNG charts made by gnuplot.  python3 stdlib only.

  bench/real/report.py RESULTS.json [--micro build/bench/micro.json]
                       [--md bench/RESULTS.md] [--charts bench/results]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CONFIGS = ["plain", "retpoline", "relpoline", "pgo-retpoline", "relpoline-indirect", "relpoline-jt"]
COLORS = {"plain": "#4c72b0", "retpoline": "#c44e52", "relpoline": "#55a868",
          "pgo-retpoline": "#8172b2", "relpoline-indirect": "#ccb974", "relpoline-jt": "#64b5cd"}


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


# --------------------------------------------------------------------------
# Run commands: each distinct one once per configuration

PORT_RES = [(re.compile(r"(--port|-p) \d+\b"), r"\1 PORT"),
            (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:PORT")]
# a per-run directory: .../run-XXXXXXXX/NAME-XXXXXXXX (or the run directory itself);
# nginx's commands already say PREFIX for it
DIR_RES = [(re.compile(r"[^\s'\"=]*/run-[A-Za-z0-9_]+/[^\s/'\"]+"), "DIR"),
           (re.compile(r"[^\s'\"=]*/run-[A-Za-z0-9_]+\b"), "DIR"),
           (re.compile(r"\bPREFIX\b"), "DIR")]


def run_commands(p, configs):
    """The recorded commands with the per-run port and directory replaced by
    PORT and DIR, each distinct one once, grouped by configuration (taken from
    the binary's path build/real/PROGRAM/CONFIG/).  Returns (lines, placeholders)."""
    cfg_re = re.compile(r"/real/[^/\s]+/(%s)/" % "|".join(re.escape(c) for c in
                                                      sorted(CONFIGS, key=len, reverse=True)))
    per_cfg, common = {}, []
    for cmd in p.get("commands") or []:
        for rx, rep in PORT_RES + DIR_RES:
            cmd = rx.sub(rep, cmd)
        m = cfg_re.search(cmd)
        bucket = per_cfg.setdefault(m.group(1), []) if m else common
        if cmd not in bucket:
            bucket.append(cmd)
    # relpoline-indirect runs the relpoline binary with RELPOLINE_FALLBACK=indirect
    # (run.py records the command once, without the environment)
    if "relpoline-indirect" not in per_cfg and per_cfg.get("relpoline") and \
            "relpoline-indirect" in p["configs"]:
        per_cfg["relpoline-indirect"] = ["RELPOLINE_FALLBACK=indirect " + c for c in per_cfg["relpoline"]]
    out = []
    for c in configs + [c for c in per_cfg if c not in configs]:
        if c in per_cfg:
            out.append("# %s" % c)
            out += per_cfg[c]
    if common:
        if out:
            out.append("# every configuration (%s)" % ("client" if len(common) == 1 else "clients, in order"))
        out += common
    text = "\n".join(out)
    return out, [w for w in ("PORT", "DIR") if re.search(r"\b%s\b" % w, text)]


# --------------------------------------------------------------------------
# Targets of the issue, checked against the medians

RECOVER_TARGET = 0.90     # share of the retpoline overhead relpoline must win back
MATCH_RATIO = 0.99        # speed / plain at or above this counts as matching plain
NOISE_OVERHEAD = 0.02     # retpoline overhead below this is not measurable


def _e(p, c):
    e = p["configs"].get(c) or {}
    return e if e.get("median") is not None else None


def _speed(p, c):
    """Speed relative to plain on the medians (>1 = faster than plain)."""
    e, pl = _e(p, c), _e(p, "plain")
    if not e or not pl:
        return None
    if e.get("speed_vs_plain") is not None:
        return e["speed_vs_plain"]
    return e["median"] / pl["median"] if p["higher_is_better"] else pl["median"] / e["median"]


def _rng(e):
    return "%s–%s" % (fmt(e["min"]), fmt(e["max"]))


def _overlap(a, b):
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def _unit(p):
    return "s" if not p["higher_is_better"] and p["metric"].startswith("seconds") else p["metric"].split(" (")[0]


def _signed_pct(v, digits=1):
    return ("%+." + str(digits) + "f%%") % (100 * v)


def targets_section(res):
    progs = res["programs"]
    real = [p for p in progs if not p["name"].startswith("phase-change")]
    L = ["## Targets", "",
         "The issue's targets, checked against the medians in the table above (generated from the "
         "same data). *Overhead* is the retpoline build's extra time per unit of work relative to "
         "plain (time per request for the servers).", ""]

    # 1. recovery on every real program
    lines, missed, unmeasurable, met, unmeasured = [], [], [], [], []
    for p in real:
        pl, rp, rl = _e(p, "plain"), _e(p, "retpoline"), _e(p, "relpoline")
        if not (pl and rp and rl):
            lines.append("   - %s: not measured (plain, retpoline or relpoline has no result)." % p["name"])
            unmeasured.append(p["name"])
            continue
        overhead = 1.0 / _speed(p, "retpoline") - 1.0
        inside = pl["min"] <= rp["median"] <= pl["max"]
        if inside or overhead < NOISE_OVERHEAD:
            why = []
            if inside:
                why.append("retpoline's median %s lies inside plain's min–max %s" % (fmt(rp["median"]), _rng(pl)))
            if overhead < NOISE_OVERHEAD:
                why.append("the overhead is under %.0f%%" % (100 * NOISE_OVERHEAD))
            lines.append("   - %s: not measurable: the retpoline build is within the noise of plain "
                         "(overhead %s); %s." % (p["name"], _signed_pct(overhead), " and ".join(why)))
            unmeasurable.append(p["name"])
            continue
        rec = p.get("retpoline_overhead_recovered")
        if rec is None:
            rec = (rl["median"] - rp["median"]) / (pl["median"] - rp["median"])
        if rec >= RECOVER_TARGET:
            lines.append("   - %s: met: recovers %s of a %s overhead (relpoline %s vs retpoline %s, plain %s %s)."
                         % (p["name"], pct(rec), _signed_pct(overhead), fmt(rl["median"]), fmt(rp["median"]),
                            fmt(pl["median"]), _unit(p)))
            met.append(p["name"])
        else:
            need = rp["median"] + RECOVER_TARGET * (pl["median"] - rp["median"])
            t = (lambda x: 1.0 / x) if p["higher_is_better"] else (lambda x: x)
            gap_time = (t(rl["median"]) - t(need)) / t(pl["median"])
            lines.append("   - %s: **missed**: recovers %.1f%% of a %s overhead, %.1f percentage points short of "
                         "%.0f%%; relpoline's median would have to be %s %s %s instead of %s %s, %.1f%% of "
                         "plain's time too slow."
                         % (p["name"], 100 * rec, _signed_pct(overhead), 100 * (RECOVER_TARGET - rec),
                            100 * RECOVER_TARGET, "≥" if p["higher_is_better"] else "≤", fmt(need), _unit(p),
                            fmt(rl["median"]), _unit(p), 100 * gap_time))
            missed.append(p["name"])
    others = (["not measurable on %s" % ", ".join(unmeasurable)] if unmeasurable else []) + \
             (["not measured on %s" % ", ".join(unmeasured)] if unmeasured else [])
    if missed:
        verdict = "**missed** on %s" % ", ".join(missed)
        extra = (["met on %s" % ", ".join(met)] if met else []) + others
        if extra:
            verdict += " (%s)" % "; ".join(extra)
    elif met:
        verdict = "**met**" + (" on %s; %s" % (", ".join(met), "; ".join(others)) if others else "")
    else:
        verdict = "not decided: " + "; ".join(others)
    L.append("1. relpoline recovers at least %.0f%% of the retpoline overhead on every real program (%s): %s."
             % (100 * RECOVER_TARGET, ", ".join(p["name"] for p in real), verdict))
    L += lines

    # sqlite: where the remaining gap to plain comes from
    sq = next((p for p in real if p["name"] == "sqlite"), None)
    if sq and all(_e(sq, c) for c in ("plain", "retpoline", "relpoline", "relpoline-indirect")):
        s_rl, s_ri = _speed(sq, "relpoline"), _speed(sq, "relpoline-indirect")
        flags = 1.0 / s_ri - 1.0
        fallback = 1.0 / s_rl - 1.0 / s_ri
        pl, rp, ri, rl = (_e(sq, c) for c in ("plain", "retpoline", "relpoline-indirect", "relpoline"))
        rec_ri = (ri["median"] - rp["median"]) / (pl["median"] - rp["median"])
        L.append("   - sqlite's gap to plain, %s of plain's time in all: relpoline-indirect vs plain %s "
                 "(the cost of compiling with thunk flags and -fno-jump-tables, no retpoline on any "
                 "fallback), relpoline vs relpoline-indirect %s (the retpoline fallbacks that remain: misses, "
                 "cold and unpromoted sites). relpoline-indirect alone recovers %.1f%% of the retpoline overhead; "
                 "the min–max ranges of relpoline (%s) and relpoline-indirect (%s) %s."
                 % (_signed_pct(1.0 / s_rl - 1.0), _signed_pct(flags), _signed_pct(fallback), 100 * rec_ri,
                    _rng(rl), _rng(ri), "overlap" if _overlap(rl, ri) else "do not overlap"))

    # 2. match or beat plain on at least one program
    matching, other = [], []
    for p in real:
        s = _speed(p, "relpoline")
        if s is None:
            continue
        note = ""
        sr = _speed(p, "retpoline")
        if s >= MATCH_RATIO and sr is not None and sr >= MATCH_RATIO:
            note = "; the retpoline build is at %.2f× there too, so this match says little" % sr
        (matching if s >= MATCH_RATIO else other).append("%s (%.3f×%s)" % (p["name"], s, note))
    phase = ["%s %.2f×" % (p["name"].split(":")[-1], _speed(p, "relpoline")) for p in progs
             if p["name"].startswith("phase-change") and _speed(p, "relpoline") is not None]
    L.append("2. relpoline matches or beats plain (speed ≥ %.2f× on the median) on at least one real program: %s%s%s%s"
             % (MATCH_RATIO, "**met**: " if matching else "**missed**",
                "; ".join(matching), "; not on " + "; ".join(other) if other else "",
                ". The phase-change benchmark: %s." % ", ".join(phase) if phase else "."))

    # 3. at least as fast as pgo-retpoline everywhere
    lines, behind, compared = [], [], []
    for p in progs:
        rl, pg = _e(p, "relpoline"), _e(p, "pgo-retpoline")
        if not (rl and pg):
            if p["configs"].get("relpoline") or p["configs"].get("pgo-retpoline"):
                lines.append("   - %s: not measured (relpoline or pgo-retpoline has no result)." % p["name"])
            continue
        compared.append(p["name"])
        r = _speed(p, "relpoline") / _speed(p, "pgo-retpoline")
        ov = "overlap" if _overlap(rl, pg) else "do not overlap"
        if r >= 1.0:
            lines.append("   - %s: ahead, %.3f× pgo-retpoline's speed (min–max ranges %s)." % (p["name"], r, ov))
        else:
            behind.append(p["name"])
            lines.append("   - %s: **behind** by %.1f%% (relpoline %s vs pgo-retpoline %s %s, median); the min–max "
                         "ranges %s (%s vs %s)." % (p["name"], 100 * (1 - r), fmt(rl["median"]), fmt(pg["median"]),
                                                   _unit(p), ov, _rng(rl), _rng(pg)))
    if not compared:
        lines = []
    L.append("3. relpoline is at least as fast as pgo-retpoline on every program: %s."
             % ("not measured" if not compared else "**met**" if not behind else
                "**missed** on %s" % ", ".join(behind)))
    L += lines

    # 4. phase change: clearly ahead of pgo-retpoline in phase 2
    p2 = next((p for p in progs if p["name"] == "phase-change:phase2"), None)
    if p2 and _e(p2, "relpoline") and _e(p2, "pgo-retpoline"):
        rl, pg = _e(p2, "relpoline"), _e(p2, "pgo-retpoline")
        r = rl["median"] / pg["median"] if p2["higher_is_better"] else pg["median"] / rl["median"]
        clear = r > 1.0 and not _overlap(rl, pg)
        L.append("4. on the phase-change benchmark relpoline is clearly ahead of pgo-retpoline in phase 2: %s: "
                 "%.2f× (%s vs %s %s, median; min–max %s vs %s, %s)."
                 % ("**met**" if clear else "**missed**", r, fmt(rl["median"]), fmt(pg["median"]), _unit(p2),
                    _rng(rl), _rng(pg), "no overlap" if not _overlap(rl, pg) else "the ranges overlap"))
    else:
        L.append("4. on the phase-change benchmark relpoline is clearly ahead of pgo-retpoline in phase 2: "
                 "not measured.")
    L.append("")
    return L


def jump_table_section(res):
    """relpoline (switches as compare trees) against relpoline-jt (gcc's jump
    tables kept, their jumps relpoline sites), where both were measured."""
    rows = []
    for p in res["programs"]:
        rl, jt = _e(p, "relpoline"), _e(p, "relpoline-jt")
        if not (rl and jt):
            continue
        r = jt["median"] / rl["median"] if p["higher_is_better"] else rl["median"] / jt["median"]
        rows.append("| %s | %s | %s | %s | %.3f× | %s |"
                    % (p["name"], p["metric"] + (" ↑" if p["higher_is_better"] else " ↓"), cell(rl), cell(jt), r,
                       "overlap" if _overlap(rl, jt) else "do not overlap"))
    if not rows:
        return []
    return ["## Jump tables: relpoline vs relpoline-jt", "",
            "relpoline-cc compiles with `-fno-jump-tables` unless `RELPOLINE_JUMP_TABLES=1` (relpoline-jt), "
            "which passes `-fjump-tables` (gcc drops jump tables under `-mindirect-branch` unless asked) so "
            "that large switches become table jumps, each a relpoline site. *jt speed*: "
            "relpoline-jt's speed relative to relpoline on the medians (>1: jump tables faster).", "",
            "| program | metric | relpoline | relpoline-jt | jt speed | min–max ranges |",
            "|---|---|---|---|---|---|"] + rows + [""]


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
             ">1 = faster than plain); not computed when retpoline's overhead is under 2% of plain, "
             "where it would be a ratio of noise. *PGO recovered*: the same for pgo-retpoline. *indirect/plain*: "
             "relpoline-indirect's speed relative to plain (1 = same, <1 = slower). ⚠ = a check failed "
             "in some run (see Failures).")
    L.append("")
    hdr = ["program", "metric"] + configs + ["recovered", "PGO recovered", "indirect/plain"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for p in res["programs"]:
        row = [p["name"], p["metric"] + (" ↑" if p["higher_is_better"] else " ↓")]
        row += [cell(p["configs"].get(c)) for c in configs]
        nn = "n/a (overhead %.1f%%)" % p["retpoline_overhead_pct"] if p.get("overhead_recovered_note") else None
        row += [nn or pct(p.get("retpoline_overhead_recovered")), nn or pct(p.get("pgo_overhead_recovered")),
                "-" if p.get("relpoline_indirect_vs_plain") is None else "%.3f" % p["relpoline_indirect_vs_plain"]]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L += jump_table_section(res)
    L += targets_section(res)
    L.append("## Relative speed, charts and per-test results")
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
    # entries of one program run (phase 1 and 2, redis and redis-pipelined)
    # share the description and the commands: one section for all of them
    groups = {}
    for p in res["programs"]:
        groups.setdefault((p.get("measured"), tuple(p.get("commands") or [])), []).append(p["name"])
    for p in res["programs"]:
        names = groups[(p.get("measured"), tuple(p.get("commands") or []))]
        if p["name"] != names[0]:
            continue
        base = p["name"].split(":")[0]
        also = [n for n in names[1:] if n.split(":")[0] != base]
        L.append("### %s" % base + (" (and %s)" % ", ".join(also) if also else ""))
        L.append("")
        L.append("- measured: %s" % p.get("measured"))
        L.append("- PGO training input (differs from the measured one): %s" % p.get("training"))
        if p.get("pgo_profile"):
            L.append("- PGO profile: %s .gcda files; objects built without a profile: %s"
                     % (p["pgo_profile"].get("profiles"), p["pgo_profile"].get("objects_without_profile")))
        L.append("")
        cmds, ph = run_commands(p, configs)
        L.append("Run commands, each distinct one once per configuration%s:"
                 % (" (%s stand%s for the %s chosen per run)"
                    % (" and ".join(ph), "s" if len(ph) == 1 else "",
                       " and the ".join({"PORT": "port", "DIR": "directory"}[w] for w in ph)) if ph else ""))
        L.append("")
        L.append("```")
        L += cmds
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
    if not fails and any(p["name"] == "leveldb" for p in res["programs"]):
        L.append("")
        L.append("leveldb: db_bench exited 0, reported every benchmark, and its found counts matched the "
                 "plain build's in every run.")
    L.append("")
    os.makedirs(mddir, exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(L))
    print("report: wrote %s%s" % (a.md, "".join(", " + c[1] for c in charts)), file=sys.stderr)


if __name__ == "__main__":
    main()
