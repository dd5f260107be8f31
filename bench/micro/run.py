#!/usr/bin/env python3
"""Driver of the relpoline micro-benchmarks (make bench-micro).

Runs the processes of every (case, configuration) pair INTERLEAVED, one
round after another (round 1: A B C ..., round 2: A B C ...), so a noisy
minute of the shared VM hits every configuration alike; then reports the
MEDIAN over rounds, with min and max, and each row's ratio to its reference.
A ratio is the median over rounds of the per-round ratio (both runs of a
round are seconds apart), which is steadier here than a ratio of medians.

Writes the table to stdout and every row to build/bench/micro.json.
Python 3 standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

CONFIGS = ["plain", "retpoline", "relpoline"]
# Which in-process statistic of the timed batches a round contributes: "min"
# (default: on this shared VM interference only ever adds time, so the
# fastest batch is the best estimate of the code's own cost) or "median".
INPROC = "min"
SWEEP_K = [1, 2, 4, 8, 16, 32]
SWEEP_DIST = ["uniform", "zipf", "cyclic"]

# (name, config) -> (reference name, reference config, target, "le"/"ge", case number)
# A reference of None means the target applies to the value itself.
CHECKS = {
    ("mono", "relpoline"): ("direct", "relpoline", 1.10, "le", 1),
    ("two.second", "relpoline"): ("direct", "relpoline", 1.40, "le", 2),
    ("two.alternate", "relpoline"): ("direct", "relpoline", 1.40, "le", 2),
    ("zipf16", "relpoline"): ("zipf16", "retpoline", 0.50, "le", 3),
    ("uni64", "relpoline"): ("uni64", "retpoline", 1.05, "le", 4),
    ("vm.recovered", "relpoline"): (None, None, 50.0, "ge", 5),
    ("learn", "relpoline-learning"): ("mono", "retpoline", 2.00, "le", 6),
    ("promote_ms", "relpoline-defaults"): (None, None, 100.0, "le", 7),
    ("startup.extra_ms", "relpoline"): (None, None, 2.0, "le", 8),
    ("bytes_per_target", "relpoline"): (None, None, 64.0, "le", 9),
}
# Informative ratios (no target).
INFO_REFS = {
    ("mono", "plain"): ("direct", "plain"),
    ("mono", "retpoline"): ("direct", "retpoline"),
    ("two.second", "plain"): ("direct", "plain"),
    ("two.second", "retpoline"): ("direct", "retpoline"),
    ("two.alternate", "plain"): ("direct", "plain"),
    ("two.alternate", "retpoline"): ("direct", "retpoline"),
    ("zipf16", "plain"): ("zipf16", "retpoline"),
    ("uni64", "plain"): ("uni64", "retpoline"),
    ("vm", "plain"): ("vm", "retpoline"),
    ("vm", "relpoline"): ("vm", "retpoline"),
    ("learn", "relpoline-learning"): ("mono", "retpoline"),
    ("startup.sites10k_ms", "relpoline"): ("startup.sites10k_ms", "plain"),
    ("startup.empty_ms", "relpoline"): ("startup.empty_ms", "plain"),
    ("startup.sites10k_ms", "relpoline-noworker"): ("startup.sites10k_ms", "plain"),
    ("startup.empty_ms", "relpoline-noworker"): ("startup.empty_ms", "plain"),
}
UNITS = {"promote_ms": "ms", "startup.extra_ms": "ms", "startup.extra_min_ms": "ms", "startup.sites10k_ms": "ms",
         "startup.empty_ms": "ms", "startup.first_epoch_ms": "ms",
         "bytes_per_target": "bytes", "bytes_per_site": "bytes", "vm.recovered": "%",
         "vm": "ns/op"}


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELPOLINE_")}
    env.update(extra)
    return env


class Job:
    def __init__(self, label, config, binary, args, env, rename=None, drop=()):
        self.label, self.config, self.binary, self.args = label, config, binary, args
        self.env, self.rename, self.drop = env, rename or {}, set(drop)


def make_jobs(bindir, configs, micro_env, sweep):
    jobs = []
    rt0 = {"RELPOLINE_EPOCH_MS": "0"}
    for case in ["mono", "two", "zipf16", "uni64", "vm"]:
        for cfg in configs:
            env = dict(micro_env, **(rt0 if cfg == "relpoline" else {}))
            jobs.append(Job(case, cfg, f"{bindir}/micro-{cfg}", [case], env))
    if "relpoline" in configs:
        b = f"{bindir}/micro-relpoline"
        jobs.append(Job("learn", "relpoline-learning", b, ["mono"],
                        dict(micro_env, RELPOLINE_EPOCH_MS="0", RELPOLINE_PROMOTE_MIN="4000000000"),
                        rename={"mono": "learn"}, drop=["direct"]))
        jobs.append(Job("promote", "relpoline-defaults", b, ["promote"], dict(micro_env)))
        jobs.append(Job("memory", "relpoline", b, ["memory"], dict(micro_env, **rt0)))
        jobs.append(Job("first_epoch", "relpoline", f"{bindir}/sites10k-epoch", [],
                        dict(rt0)))
    if sweep:
        senv = dict(micro_env)
        senv["MICRO_BATCH"] = str(max(200000, int(micro_env.get("MICRO_BATCH", "1000000")) // 2))
        for k in SWEEP_K:
            for dist in SWEEP_DIST:
                for cfg in configs:
                    env = dict(senv)
                    if cfg == "relpoline":
                        env.update(rt0, RELPOLINE_MAX_TARGETS=str(k))
                    jobs.append(Job(f"sweep.{dist}.{k}", cfg, f"{bindir}/micro-{cfg}",
                                    ["sweep", str(k), dist], env, drop=["seqdirect"]))
    return jobs


def run_job(job):
    """Run one process; return ({row: value}, [info lines]).  PAIR lines go in
    rows as ("pair", name, ref) keys."""
    try:
        p = subprocess.run([job.binary] + job.args, env=clean_env(job.env),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        print(f"!! {job.label}/{job.config}: timeout", file=sys.stderr)
        return {}, ["timeout"]
    rows, infos = {}, []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "ROW":
            name = job.rename.get(parts[1], parts[1])
            if parts[1] not in job.drop:
                col = 3 if (INPROC == "min" and len(parts) >= 4) else 2
                rows[name] = float(parts[col])
        elif len(parts) >= 4 and parts[0] == "PAIR" and parts[1] not in job.drop:
            rows[("pair", job.rename.get(parts[1], parts[1]), parts[2])] = float(parts[3])
        elif parts and parts[0] == "INFO":
            infos.append(" ".join(parts[1:]))
    if p.returncode != 0:
        infos.append(f"exit={p.returncode} stderr={p.stderr.strip()[-300:]}")
        print(f"!! {job.label}/{job.config}: exit {p.returncode}: {p.stderr.strip()[-300:]}",
              file=sys.stderr)
    return rows, infos


def startup_rows(bindir, rounds):
    """Case 8: whole-process time (fork+exec+wait) of programs that return at once.

    Returns {(prog, config): [median, min, max] in ms}.  relpoline-noworker is
    the same binary with RELPOLINE_EPOCH_MS=0 (no worker thread, no first epoch).
    """
    progs = []
    for prog in ["sites10k", "empty"]:
        progs += [("plain", f"{bindir}/{prog}-plain"), ("relpoline", f"{bindir}/{prog}-relpoline"),
                  ("relpoline-noworker", f"RELPOLINE_EPOCH_MS=0@{bindir}/{prog}-relpoline")]
    if not all(os.path.exists(p.split("@")[-1]) for _, p in progs):
        return {}
    p = subprocess.run([f"{bindir}/startup", str(rounds)] + [x for _, x in progs], env=clean_env({}),
                       stdout=subprocess.PIPE, text=True)
    res = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "STARTUP":
            for cfg, arg in progs:
                if arg == parts[1]:
                    name = os.path.basename(arg).rsplit("-", 1)[0]
                    res[(name, cfg)] = [float(x) / 1000.0 for x in parts[2:5]]
    return res


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", default="build/bench/micro")
    ap.add_argument("--out", default="build/bench/micro.json")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sweep-rounds", type=int, default=5)
    ap.add_argument("--startup-runs", type=int, default=201)
    ap.add_argument("--batch", type=int, default=1000000)
    ap.add_argument("--batches", type=int, default=9)
    ap.add_argument("--inproc", choices=["min", "median"], default="median",
                    help="statistic of a process's timed batches (default median)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    global INPROC
    INPROC = args.inproc
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if not os.path.exists(f"{args.bindir}/micro-{c}"):
            sys.exit(f"missing {args.bindir}/micro-{c}")
    micro_env = {"MICRO_BATCH": str(args.batch), "MICRO_BATCHES": str(args.batches)}
    t_start = time.time()

    # values[(name, config)] = {round: value}
    values = {}
    pairs = {}    # (name, config, ref name) -> {round: in-process paired ratio}
    infos = {}

    def collect(job, r):
        rows, inf = run_job(job)
        for name, v in rows.items():
            if isinstance(name, tuple):
                pairs.setdefault((name[1], job.config, name[2]), {})[r] = v
                continue
            values.setdefault((name, job.config), {})[r] = v
            infos[(name, job.config)] = inf

    main_jobs = make_jobs(args.bindir, configs, micro_env, sweep=False)
    sweep_jobs = make_jobs(args.bindir, configs, micro_env, sweep=True)[len(main_jobs):]
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
        for job in main_jobs:
            collect(job, r)
    for r in range(args.sweep_rounds):
        print(f"sweep round {r + 1}/{args.sweep_rounds} ...", file=sys.stderr, flush=True)
        for job in sweep_jobs:
            collect(job, r)

    # Case 5 derived: share of the retpoline slowdown recovered, per round.
    vm = {c: values.get(("vm", c), {}) for c in CONFIGS}
    rec = {}
    for r in vm["relpoline"]:
        if r in vm["plain"] and r in vm["retpoline"] and vm["retpoline"][r] != vm["plain"][r]:
            rec[r] = 100.0 * (vm["retpoline"][r] - vm["relpoline"][r]) / (vm["retpoline"][r] - vm["plain"][r])
    if rec:
        values[("vm.recovered", "relpoline")] = rec

    # Case 8: start-up.
    if "relpoline" in configs:
        print("start-up runs ...", file=sys.stderr, flush=True)
        st = startup_rows(args.bindir, args.startup_runs)
        for (prog, cfg), (med, lo, hi) in st.items():
            name = "startup.sites10k_ms" if prog == "sites10k" else "startup.empty_ms"
            values[(name, cfg)] = {0: med}
            infos[(name, cfg)] = [f"min={lo:.3f} max={hi:.3f} runs={args.startup_runs} "
                                  "(whole process: fork+exec+exit, median)"]
        for cfg in ["relpoline", "relpoline-noworker"]:
            if ("sites10k", cfg) in st and ("sites10k", "plain") in st:
                values[("startup.extra_ms", cfg)] = {0: st[("sites10k", cfg)][0] - st[("sites10k", "plain")][0]}
                values[("startup.extra_min_ms", cfg)] = {0: st[("sites10k", cfg)][1] - st[("sites10k", "plain")][1]}
                infos[("startup.extra_ms", cfg)] = [
                    "median(relpoline) - median(plain), 10,000 sites, process returns at once"]

    rows = []
    for (name, cfg), per_round in values.items():
        vals = list(per_round.values())
        row = {"name": name, "config": cfg, "unit": UNITS.get(name.split(".")[0] if name.startswith("sweep") else name, "ns/call"),
               "median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals),
               "ratio": None, "reference": None, "target": None, "pass": None, "case": None}
        if name.startswith("sweep."):
            row["unit"] = "ns/call"
        ref = None
        chk = CHECKS.get((name, cfg))
        if chk:
            ref = (chk[0], chk[1]) if chk[0] else None
            row["target"] = f"{'<=' if chk[3] == 'le' else '>='} {chk[2]:g}{'x' if ref else ' ' + row['unit']}"
            row["case"] = chk[4]
        elif (name, cfg) in INFO_REFS:
            ref = INFO_REFS[(name, cfg)]
        elif name.startswith("sweep.") and cfg != "retpoline":
            ref = (name, "retpoline")
        if ref and ref[1] == cfg and (name, cfg, ref[0]) in pairs:
            # same process: the median over rounds of the batch-paired ratios
            row["ratio"] = statistics.median(pairs[(name, cfg, ref[0])].values())
            row["reference"] = f"{ref[0]}/{ref[1]}*"
        elif ref and ref in values:
            rv = values[ref]
            ratios = [per_round[r] / rv[r] for r in per_round if r in rv and rv[r] > 0]
            if ratios:
                row["ratio"] = statistics.median(ratios)
                row["reference"] = f"{ref[0]}/{ref[1]}"
        if chk:
            x = row["ratio"] if ref else row["median"]
            if x is not None:
                row["pass"] = x <= chk[2] if chk[3] == "le" else x >= chk[2]
        if (name, cfg) in infos:
            row["info"] = infos[(name, cfg)]
        rows.append(row)

    order = {n: i for i, n in enumerate(
        ["direct", "mono", "two.second", "two.alternate", "seqdirect", "zipf16", "uni64", "vm",
         "vm.recovered", "learn", "promote_ms", "startup.empty_ms", "startup.sites10k_ms",
         "startup.extra_ms", "startup.extra_min_ms", "startup.first_epoch_ms", "bytes_per_target", "bytes_per_site"])}
    corder = {c: i for i, c in enumerate(CONFIGS + ["relpoline-noworker", "relpoline-learning", "relpoline-defaults"])}

    def key(r):
        if r["name"].startswith("sweep."):
            _, dist, k = r["name"].split(".")
            return (100, dist, int(k), corder.get(r["config"], 9))
        return (order.get(r["name"], 50), "", 0, corder.get(r["config"], 9))
    rows.sort(key=key)

    # ---- main table ----
    print()
    print(f"relpoline micro-benchmarks: medians of {args.rounds} interleaved rounds; per process the "
          f"{args.inproc} of {args.batches} batches x {args.batch} calls; sweep: {args.sweep_rounds} rounds")
    hdr = f"{'case':>4} {'row':<24} {'config':<19} {'median':>9} {'min':>9} {'max':>9} {'unit':<7} {'runs':>4} {'ratio':>7}  {'reference':<24} {'target':<10} verdict"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["name"].startswith("sweep."):
            continue
        verdict = "" if r["pass"] is None else ("ok" if r["pass"] else "MISS")
        ratio = f"{r['ratio']:.3f}x" if r["ratio"] is not None else "-"
        print(f"{r['case'] or '':>4} {r['name']:<24} {r['config']:<19} {fmt(r['median']):>9} {fmt(r['min']):>9} "
              f"{fmt(r['max']):>9} {r['unit']:<7} {r['runs']:>4} {ratio:>7}  {r['reference'] or '':<24} "
              f"{r['target'] or '':<10} {verdict}")

    print("  * ratio to a loop of the same process: median over rounds of the median over batches of")
    print("    case/reference, each batch of the case timed right after one of the reference")
    # What the runtime did (from the last round).
    print()
    print("runtime state after warm-up (relpoline, last round):")
    for (name, cfg) in [("mono", "relpoline"), ("two.second", "relpoline"), ("zipf16", "relpoline"),
                        ("uni64", "relpoline"), ("vm", "relpoline"), ("learn", "relpoline-learning"),
                        ("promote_ms", "relpoline-defaults"), ("bytes_per_target", "relpoline")]:
        for line in infos.get((name, cfg), []):
            if not line.startswith("config="):
                print(f"  {name:<16} {line}")

    # ---- sweep table ----
    if any(r["name"].startswith("sweep.") for r in rows):
        print()
        print("case 10: chain-length sweep, ns/call of one site with K targets "
              "(relpoline with RELPOLINE_MAX_TARGETS=K)")
        h = f"{'K':>3} | {'dist':<8} {'plain':>7} {'retpol':>7} {'relpol':>7} {'rel/ret':>8} {'stub':>5}"
        print(h)
        print("-" * len(h))
        best = {}
        for dist in SWEEP_DIST:
            for k in SWEEP_K:
                n = f"sweep.{dist}.{k}"
                med = {c: statistics.median(values[(n, c)].values()) for c in CONFIGS if (n, c) in values}
                rrow = next((x for x in rows if x["name"] == n and x["config"] == "relpoline"), None)
                ratio = rrow["ratio"] if rrow else None
                stub = "-"
                for line in infos.get((n, "relpoline"), []):
                    m1 = re.search(r"sites_promoted=(\d+).*stub_targets=(\d+)", line)
                    m2 = re.search(r"sites_pinned=(\d+)", line)
                    if m1:
                        stub = m1.group(2) if int(m1.group(1)) else ("pin" if m2 and int(m2.group(1)) else "none")
                print(f"{k:>3} | {dist:<8} {fmt(med.get('plain')):>7} {fmt(med.get('retpoline')):>7} "
                      f"{fmt(med.get('relpoline')):>7} {(f'{ratio:.3f}x' if ratio else '-'):>8} {stub:>5}")
                if ratio is not None and ratio < 1.0 and stub not in ("pin", "none", "-"):
                    best[dist] = k
        for dist in SWEEP_DIST:
            if dist in best:
                print(f"  {dist}: a stub still beats the retpoline at K={best[dist]} (largest K tested where it does)")
            else:
                print(f"  {dist}: no K where a stub beats the retpoline")
        print("  (stub = targets in the stub the runtime built; pin = left on the fallback;")
        print("   uniform, zipf: i.i.d. choice from a 65536-entry precomputed sequence;")
        print("   cyclic: 0 1 .. K-1 0 1 .., every target as often but predictable from history)")

    misses = [r for r in rows if r["pass"] is False]
    print()
    print(f"targets: {sum(1 for r in rows if r['pass'])} met, {len(misses)} missed"
          + (": " + ", ".join(f"{r['name']}/{r['config']}" for r in misses) if misses else ""))
    elapsed = time.time() - t_start
    print(f"elapsed {elapsed:.0f} s")

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": cpu_model(), "rounds": args.rounds,
        "sweep_rounds": args.sweep_rounds, "batch_calls": args.batch, "batches": args.batches,
        "configs": configs, "elapsed_s": round(elapsed, 1), "git": git_rev(),
        "inproc": args.inproc,
        "method": "each process: warm-up, relpoline_epoch() x3 (RELPOLINE_EPOCH_MS=0), then "
                  "interleaved timed batches (clock_gettime), min (or median, see inproc) of the "
                  "batches; driver: median over "
                  "interleaved rounds; ratio = median over rounds of the per-round ratio",
    }
    with open(args.out, "w") as fp:
        json.dump({"meta": meta, "rows": rows}, fp, indent=1)
    print(f"wrote {args.out}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
