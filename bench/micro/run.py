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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CONFIGS = ["plain", "retpoline", "relpoline"]
# Which in-process statistic of the timed batches a round contributes: "min"
# (default: on this shared VM interference only ever adds time, so the
# fastest batch is the best estimate of the code's own cost) or "median".
INPROC = "min"
STATS_DIR = None   # where a process writes its RELPOLINE_STATS=json file
# The same for cases 11-13 (default min): their ratios compare two builds, and
# on a loaded 2-core VM a 1-10 ms batch loses whole 4 ms scheduler ticks
# (batches of one loop come out at 10.5, 18.7, 26.8, 34.8 ns/call), so the
# fastest batch is the one that ran alone.
INPROC_NEW = "min"
NEW_CASES = ("vmbig", "vmcall", "many")
SWEEP_K = [1, 2, 4, 8, 16, 32]
SWEEP_DIST = ["uniform", "zipf", "cyclic"]
# Case 12: one site with many targets, tree stubs forced and the auto policy.
TREE_K = [16, 32, 64, 128, 256]
TREE_DIST = ["pattern", "markov", "uniform"]
TREE_CONFIGS = ["plain", "retpoline", "relpoline-tree", "relpoline-auto"]
# Case 13: chain / tree crossover, both with RELPOLINE_MAX_TARGETS=K.
XOVER_K = [2, 3, 4, 6, 8, 12, 16, 24, 32]
XOVER_DIST = ["zipf", "pattern"]
XOVER_CONFIGS = ["retpoline", "relpoline-chain", "relpoline-tree"]
# Counters of relpoline's JSON stats shown for the new cases besides any
# counter this driver does not know (the stubs-by-kind counters).
KNOWN_STATS = {"version", "pid", "modules", "sites_seen", "sites_call", "sites_tail", "sites_rejected",
               "far_targets", "relearns", "records", "records_dropped", "misses", "epochs",
               "patch_passes", "patch_passes_empty", "sites_patched", "bytes_written",
               "protect_changes", "membarriers", "syscalls", "traps_emulated", "arena_bytes",
               "worker_ns", "first_promotion_ns", "stub_hist", "profile_sites", "profile_relearned",
               "profile_read", "profile_written", "profile_rejected"}
SHOWN_STATS = ["sites_promoted", "sites_pinned", "stubs_emitted", "stub_targets"]

# (name, config) -> (reference name, reference config, target, "le"/"ge", case number)
# A reference of None means the target applies to the value itself.
CHECKS = {
    ("mono", "relpoline"): ("direct", "relpoline", 1.10, "le", 1),
    ("two.second", "relpoline"): ("direct", "relpoline", 1.40, "le", 2),
    ("two.alternate", "relpoline"): ("direct", "relpoline", 1.40, "le", 2),
    ("zipf16", "relpoline"): ("zipf16", "retpoline", 0.50, "le", 3),
    ("uni64", "relpoline"): ("uni64", "retpoline", 1.05, "le", 4),
    ("vm.recovered", "relpoline"): (None, None, 50.0, "ge", 5),
    ("vmbig.recovered", "relpoline"): (None, None, 90.0, "ge", 11),
    ("tree.pattern.64", "relpoline-tree"): ("tree.pattern.64", "retpoline", 0.35, "le", 12),
    ("tree.uniform.64", "relpoline-auto"): ("tree.uniform.64", "retpoline", 1.02, "le", 12),
    ("learn", "relpoline-learning"): ("mono", "retpoline", 2.00, "le", 6),
    ("promote_ms", "relpoline-defaults"): (None, None, 100.0, "le", 7),
    ("startup.extra_ms", "relpoline"): (None, None, 2.0, "le", 8),
    ("bytes_per_target", "relpoline"): (None, None, 64.0, "le", 9),
    # Case 14: warm start (RELPOLINE_PROFILE): >= 1.5x faster per run than without a profile,
    # and within 10% of a process that was already promoted.
    ("warm.process_ms", "relpoline-warm"): ("warm.process_ms", "relpoline", 1 / 1.5, "le", 14),
    ("warm.work_ms", "relpoline-warm"): ("warm.work_ms", "relpoline-promoted", 1.10, "le", 14),
    # Case 15: loading a profile of 10,000 sites at start-up.
    ("startup.profile_extra_ms", "relpoline-profile"): (None, None, 1.0, "le", 15),
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
    ("vmbig", "plain"): ("vmbig", "retpoline"),
    ("vmbig", "relpoline"): ("vmbig", "retpoline"),
    ("vmbig", "relpoline-tree"): ("vmbig", "retpoline"),
    ("vmcall", "plain"): ("vmcall", "retpoline"),
    ("vmcall", "relpoline"): ("vmcall", "retpoline"),
    ("vmcall", "relpoline-tree"): ("vmcall", "retpoline"),
    ("learn", "relpoline-learning"): ("mono", "retpoline"),
    ("startup.sites10k_ms", "relpoline"): ("startup.sites10k_ms", "plain"),
    ("startup.empty_ms", "relpoline"): ("startup.empty_ms", "plain"),
    ("startup.sites10k_ms", "relpoline-noworker"): ("startup.sites10k_ms", "plain"),
    ("startup.empty_ms", "relpoline-noworker"): ("startup.empty_ms", "plain"),
    ("warm.work_ms", "relpoline"): ("warm.work_ms", "relpoline-promoted"),
    ("warm.process_ms", "retpoline"): ("warm.process_ms", "relpoline"),
    ("warm.process_ms", "plain"): ("warm.process_ms", "relpoline"),
}
UNITS = {"warm.work_ms": "ms", "warm.process_ms": "ms", "startup.profile_extra_ms": "ms",
         "startup.sites10k_profile_ms": "ms", "promote_ms": "ms", "startup.extra_ms": "ms", "startup.extra_min_ms": "ms", "startup.sites10k_ms": "ms",
         "startup.empty_ms": "ms", "startup.first_epoch_ms": "ms",
         "bytes_per_target": "bytes", "bytes_per_site": "bytes", "vm.recovered": "%",
         "vm": "ns/op", "vmbig": "ns/op", "vmcall": "ns/op", "vmbig.recovered": "%",
         "vmcall.recovered": "%"}


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELPOLINE_")}
    env.update(extra)
    return env


class Job:
    def __init__(self, label, config, binary, args, env, rename=None, drop=(), stats=False):
        self.label, self.config, self.binary, self.args = label, config, binary, args
        self.env, self.rename, self.drop, self.stats = env, rename or {}, set(drop), stats


def probe_runtime(bindir):
    """What the runtime under test accepts: MAX_TARGETS up to 256? a STUB knob?"""
    res = {"max_targets_256": False, "stub": "unsupported", "version": "?"}
    try:
        out = subprocess.run([f"{bindir}/micro-relpoline", "probe"], env=clean_env({}),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return res
    for line in out.splitlines():
        if line.startswith("PROBE "):
            kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
            res["max_targets_256"] = kv.get("max_targets_256") == "1"
            res["stub"] = kv.get("stub", "unsupported")
            res["version"] = kv.get("version", "?")
    return res


def rt_env(kind, max_targets):
    """Environment of a relpoline-<kind> run of the megamorphic cases: manual
    epochs, every target seen may get a compare (MIN_SHARE=0), the stub kind
    forced (tree, chain) or left to the policy (auto, and plain relpoline)."""
    env = {"RELPOLINE_EPOCH_MS": "0", "RELPOLINE_MAX_TARGETS": str(max_targets), "RELPOLINE_MIN_SHARE": "0"}
    if kind in ("tree", "chain", "auto"):
        env["RELPOLINE_STUB"] = kind
    return env


def make_jobs(bindir, configs, micro_env, sweep, probe=None):
    jobs = []
    rt0 = {"RELPOLINE_EPOCH_MS": "0"}
    probe = probe or {}
    big_mt = 256 if probe.get("max_targets_256") else 32
    for case in ["mono", "two", "zipf16", "uni64", "vm"]:
        for cfg in configs:
            env = dict(micro_env, **(rt0 if cfg == "relpoline" else {}))
            jobs.append(Job(case, cfg, f"{bindir}/micro-{cfg}", [case], env))
    # Case 11: the 113-opcode VM, goto and call-threaded; relpoline with the
    # default stub policy, and with tree stubs forced when the runtime has them.
    for case in ["vmbig", "vmcall"]:
        for cfg in configs:
            env = dict(micro_env, **(rt_env("default", big_mt) if cfg == "relpoline" else {}))
            jobs.append(Job(case, cfg, f"{bindir}/micro-{cfg}", [case], env, stats=cfg == "relpoline"))
        if "relpoline" in configs and probe.get("stub", "unsupported") != "unsupported":
            jobs.append(Job(case, "relpoline-tree", f"{bindir}/micro-relpoline", [case],
                            dict(micro_env, **rt_env("tree", big_mt)), stats=True))
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
        # Case 12: tree rows.  Case 13: chain/tree crossover.
        for k in TREE_K:
            for dist in TREE_DIST:
                for cfg in TREE_CONFIGS:
                    base = cfg.split("-")[0]
                    if base not in configs:
                        continue
                    env = dict(senv, **(rt_env(cfg.split("-")[1], big_mt) if base == "relpoline" else {}))
                    jobs.append(Job(f"tree.{dist}.{k}", cfg, f"{bindir}/micro-{base}", ["many", str(k), dist],
                                    env, rename={f"many.{dist}.{k}": f"tree.{dist}.{k}"}, drop=["seqdirect"],
                                    stats=base == "relpoline"))
        for k in XOVER_K:
            for dist in XOVER_DIST:
                for cfg in XOVER_CONFIGS:
                    base = cfg.split("-")[0]
                    if base not in configs:
                        continue
                    env = dict(senv, **(rt_env(cfg.split("-")[1], k) if base == "relpoline" else {}))
                    jobs.append(Job(f"xover.{dist}.{k}", cfg, f"{bindir}/micro-{base}", ["many", str(k), dist],
                                    env, rename={f"many.{dist}.{k}": f"xover.{dist}.{k}", "seqdirect": "xover.direct"},
                                    drop=[] if base == "retpoline" else ["seqdirect"], stats=base == "relpoline"))
    return jobs


def read_stats(path):
    """The runtime's JSON stats of one process: the counters this driver shows."""
    try:
        with open(path) as fp:
            st = json.load(fp)
        os.unlink(path)
    except (OSError, ValueError):
        return None
    shown = {k: st[k] for k in SHOWN_STATS if k in st}
    shown.update({k: v for k, v in st.items() if k not in KNOWN_STATS and k not in shown
                  and isinstance(v, (int, float))})
    return "stats " + " ".join(f"{k}={v}" for k, v in shown.items())


def run_job(job):
    """Run one process; return ({row: value}, [info lines]).  PAIR lines go in
    rows as ("pair", name, ref) keys."""
    env = dict(job.env)
    stats_path = None
    if job.stats:
        stats_path = os.path.join(STATS_DIR, "stats.json")
        env["RELPOLINE_STATS"] = "json:" + stats_path
    try:
        p = subprocess.run([job.binary] + job.args, env=clean_env(env),
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
                inproc = INPROC_NEW if job.args[:1] and job.args[0] in NEW_CASES else INPROC
                col = 3 if (inproc == "min" and len(parts) >= 4) else 2
                rows[name] = float(parts[col])
        elif len(parts) >= 4 and parts[0] == "PAIR" and parts[1] not in job.drop:
            rows[("pair", job.rename.get(parts[1], parts[1]), parts[2])] = float(parts[3])
        elif parts and parts[0] == "INFO":
            infos.append(" ".join(parts[1:]))
    if stats_path:
        st = read_stats(stats_path)
        if st:
            infos.append(st)
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


def record_profile(env, argv, runs):
    """Run ARGV RUNS times with ENV (RELPOLINE_PROFILE set): the profile a warm start loads."""
    for _ in range(runs):
        subprocess.run(argv, env=clean_env(env), stdout=subprocess.DEVNULL, check=True)


def profile_startup_rows(bindir, rounds):
    """Case 15: sites10k (10,000 sites, returns at once) with a profile that promotes all of them.

    Returns ({config: [median, min, max] ms}, info lines): relpoline without and with the profile,
    interleaved by startup.c.
    """
    prog = f"{bindir}/sites10k-relpoline"
    if not os.path.exists(prog):
        return {}, []
    d = tempfile.mkdtemp(prefix="relpoline-profile-")
    try:
        # Every site runs, with an epoch every other round (gen_sites.py): all 10,000 promoted and saved.
        record_profile({"RELPOLINE_PROFILE": d, "RELPOLINE_PROMOTE_MIN": "2", "RELPOLINE_EPOCH_MS": "0"},
                       [prog, "run"], 1)
        sj = os.path.join(d, "stats.json")
        subprocess.run([prog], env=clean_env({"RELPOLINE_PROFILE": d, "RELPOLINE_STATS": "json:" + sj}), check=True)
        st = json.load(open(sj))
        os.unlink(sj)
        info = [f"sites promoted from the profile: {st.get('profile_sites')}, first promotion "
                f"{st.get('first_promotion_ns', 0) / 1e6:.3f} ms after the runtime's start (registration included)"]
        progs = [("relpoline", prog), ("relpoline-profile", f"RELPOLINE_PROFILE={d}@{prog}")]
        p = subprocess.run([f"{bindir}/startup", str(rounds)] + [x for _, x in progs], env=clean_env({}),
                           stdout=subprocess.PIPE, text=True)
        res = {}
        for line in p.stdout.splitlines():
            parts = line.split()
            for cfg, arg in progs:
                if parts and parts[0] == "STARTUP" and parts[1] == arg:
                    res[cfg] = [float(x) / 1000.0 for x in parts[2:5]]
        return res, info
    finally:
        shutil.rmtree(d, ignore_errors=True)


def warm_rows(bindir, runs):
    """Case 14: a short program (short.c, about 20 ms of indirect calls) run RUNS times per configuration.

    Configurations, interleaved run by run: plain, retpoline, relpoline (no profile), relpoline-warm
    (RELPOLINE_PROFILE with a profile two earlier runs saved), relpoline-promoted (the same work
    after 40 warm-up passes in one process; only its work is timed).  Returns
    {(name, config): {run: ms}} for warm.work_ms (main's start to the end of the work, as the
    program prints it) and warm.process_ms (fork+exec+exit, timed here), and info lines.
    """
    bins = {c: f"{bindir}/short-{c}" for c in ("plain", "retpoline", "relpoline")}
    if not all(os.path.exists(b) for b in bins.values()):
        return {}, []
    d = tempfile.mkdtemp(prefix="relpoline-warm-")
    try:
        record_profile({"RELPOLINE_PROFILE": d}, [bins["relpoline"]], 2)
        jobs = [("plain", [bins["plain"]], {}), ("retpoline", [bins["retpoline"]], {}),
                ("relpoline", [bins["relpoline"]], {}),
                ("relpoline-warm", [bins["relpoline"]], {"RELPOLINE_PROFILE": d}),
                ("relpoline-promoted", [bins["relpoline"], "promoted"], {})]
        out = {}
        for r in range(runs):
            for cfg, argv, env in jobs:
                e = clean_env(env)
                t0 = time.perf_counter()
                p = subprocess.run(argv, env=e, stdout=subprocess.PIPE, text=True, check=True)
                wall = (time.perf_counter() - t0) * 1e3
                m = re.search(r"WORK ([0-9.]+)", p.stdout)
                if m:
                    out.setdefault(("warm.work_ms", cfg), {})[r] = float(m.group(1))
                if cfg != "relpoline-promoted":   # its process also ran the warm-up
                    out.setdefault(("warm.process_ms", cfg), {})[r] = wall
        sj = os.path.join(d, "stats.json")
        subprocess.run([bins["relpoline"]], env=clean_env({"RELPOLINE_PROFILE": d, "RELPOLINE_STATS": "json:" + sj}),
                       stdout=subprocess.DEVNULL, check=True)
        st = json.load(open(sj))
        info = [f"warm run: {st.get('sites_promoted')} sites promoted, {st.get('profile_sites')} from the profile, "
                f"{st.get('records')} slow-path samples, {st.get('profile_written')} files written"]
        return out, info
    finally:
        shutil.rmtree(d, ignore_errors=True)


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
    ap.add_argument("--warm-runs", type=int, default=100, help="runs of case 14 per configuration")
    ap.add_argument("--only-warm", action="store_true", help="run cases 14 and 15 only (warm start)")
    ap.add_argument("--batch", type=int, default=1000000)
    ap.add_argument("--batches", type=int, default=9)
    ap.add_argument("--inproc", choices=["min", "median"], default="median",
                    help="statistic of a process's timed batches (default median)")
    ap.add_argument("--inproc-new", choices=["min", "median"], default="min",
                    help="the same for cases 11-13 (default min: see INPROC_NEW)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    global INPROC, INPROC_NEW
    INPROC = args.inproc
    INPROC_NEW = args.inproc_new
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if not os.path.exists(f"{args.bindir}/micro-{c}"):
            sys.exit(f"missing {args.bindir}/micro-{c}")
    micro_env = {"MICRO_BATCH": str(args.batch), "MICRO_BATCHES": str(args.batches)}
    t_start = time.time()
    global STATS_DIR
    STATS_DIR = tempfile.mkdtemp(prefix="relpoline-micro-")
    probe = probe_runtime(args.bindir) if "relpoline" in configs else {}
    if probe:
        print(f"runtime {probe['version']}: RELPOLINE_MAX_TARGETS=256 "
              f"{'accepted' if probe['max_targets_256'] else 'refused (the VM and tree rows use 32)'}, "
              f"RELPOLINE_STUB {'= ' + probe['stub'] if probe['stub'] != 'unsupported' else 'unknown (stub kind not forced)'}",
              file=sys.stderr, flush=True)

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

    main_jobs = make_jobs(args.bindir, configs, micro_env, sweep=False, probe=probe)
    sweep_jobs = make_jobs(args.bindir, configs, micro_env, sweep=True, probe=probe)[len(main_jobs):]
    if args.only_warm:
        main_jobs, sweep_jobs = [], []
    for r in range(args.rounds if main_jobs else 0):
        print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
        for job in main_jobs:
            collect(job, r)
    for r in range(args.sweep_rounds if sweep_jobs else 0):
        print(f"sweep round {r + 1}/{args.sweep_rounds} ...", file=sys.stderr, flush=True)
        for job in sweep_jobs:
            collect(job, r)

    shutil.rmtree(STATS_DIR, ignore_errors=True)

    # Cases 5, 11 derived: share of the retpoline slowdown recovered, per round.
    for case, cfg, rname in [("vm", "relpoline", "vm.recovered"), ("vmbig", "relpoline", "vmbig.recovered"),
                             ("vmcall", "relpoline", "vmcall.recovered"),
                             ("vmbig", "relpoline-tree", "vmbig.recovered"),
                             ("vmcall", "relpoline-tree", "vmcall.recovered")]:
        pl, rp, rel = (values.get((case, c), {}) for c in ("plain", "retpoline", cfg))
        rec = {r: 100.0 * (rp[r] - rel[r]) / (rp[r] - pl[r])
               for r in rel if r in pl and r in rp and rp[r] != pl[r]}
        if rec:
            values[(rname, cfg)] = rec

    # Case 8: start-up.
    if "relpoline" in configs and not args.only_warm:
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

    # Cases 14 and 15: warm start from a saved profile.
    if "relpoline" in configs:
        print("warm-start runs ...", file=sys.stderr, flush=True)
        w, winfo = warm_rows(args.bindir, args.warm_runs)
        values.update(w)
        if winfo:
            infos[("warm.work_ms", "relpoline-warm")] = winfo
        ps, pinfo = profile_startup_rows(args.bindir, args.startup_runs)
        if "relpoline" in ps and "relpoline-profile" in ps:
            values[("startup.sites10k_profile_ms", "relpoline-profile")] = {0: ps["relpoline-profile"][0]}
            values[("startup.profile_extra_ms", "relpoline-profile")] = {
                0: ps["relpoline-profile"][0] - ps["relpoline"][0]}
            infos[("startup.profile_extra_ms", "relpoline-profile")] = pinfo + [
                "median(with the profile) - median(without), whole process (fork+exec+exit), "
                f"{args.startup_runs} interleaved runs"]

    rows = []
    for (name, cfg), per_round in values.items():
        vals = list(per_round.values())
        row = {"name": name, "config": cfg, "unit": UNITS.get(name.split(".")[0] if name.startswith("sweep") else name, "ns/call"),
               "median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals),
               "ratio": None, "reference": None, "target": None, "pass": None, "case": None}
        if name.startswith(("sweep.", "tree.", "xover.")):
            row["unit"] = "ns/call"
        ref = None
        chk = CHECKS.get((name, cfg))
        if chk:
            ref = (chk[0], chk[1]) if chk[0] else None
            row["target"] = f"{'<=' if chk[3] == 'le' else '>='} {chk[2]:g}{'x' if ref else ' ' + row['unit']}"
            row["case"] = chk[4]
        elif (name, cfg) in INFO_REFS:
            ref = INFO_REFS[(name, cfg)]
        elif name.startswith(("sweep.", "tree.", "xover.")) and cfg != "retpoline" and name != "xover.direct":
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
         "vm.recovered", "vmbig", "vmbig.recovered", "vmcall", "vmcall.recovered", "learn", "promote_ms", "startup.empty_ms", "startup.sites10k_ms",
         "startup.extra_ms", "startup.extra_min_ms", "startup.first_epoch_ms", "bytes_per_target", "bytes_per_site",
         "warm.process_ms", "warm.work_ms", "startup.sites10k_profile_ms", "startup.profile_extra_ms"])}
    corder = {c: i for i, c in enumerate(CONFIGS + ["relpoline-chain", "relpoline-tree", "relpoline-auto",
                                                   "relpoline-noworker", "relpoline-learning", "relpoline-defaults",
                                                   "relpoline-warm", "relpoline-promoted", "relpoline-profile"])}

    def key(r):
        if r["name"].startswith(("sweep.", "tree.", "xover.")) and r["name"] != "xover.direct":
            grp, dist, k = r["name"].split(".")
            return (100 + ["sweep", "tree", "xover"].index(grp), dist, int(k), corder.get(r["config"], 19))
        return (order.get(r["name"], 50), "", 0, corder.get(r["config"], 9))
    rows.sort(key=key)

    # ---- main table ----
    print()
    print(f"relpoline micro-benchmarks: medians of {args.rounds} interleaved rounds; per process the "
          f"{args.inproc} of {args.batches} batches x {args.batch} calls ({args.inproc_new} for cases 11-13); "
          f"cases 10, 12, 13: {args.sweep_rounds} rounds")
    hdr = f"{'case':>4} {'row':<24} {'config':<19} {'median':>9} {'min':>9} {'max':>9} {'unit':<7} {'runs':>4} {'ratio':>7}  {'reference':<24} {'target':<10} verdict"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["name"].startswith(("sweep.", "tree.", "xover.")):
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
                        ("uni64", "relpoline"), ("vm", "relpoline"), ("vmbig", "relpoline"),
                        ("vmbig", "relpoline-tree"), ("vmcall", "relpoline"), ("vmcall", "relpoline-tree"),
                        ("learn", "relpoline-learning"),
                        ("promote_ms", "relpoline-defaults"), ("bytes_per_target", "relpoline"),
                        ("warm.work_ms", "relpoline-warm"), ("startup.profile_extra_ms", "relpoline-profile")]:
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

    cost_model = megamorphic_tables(rows, values, infos)

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
        "inproc": args.inproc, "inproc_cases_11_13": args.inproc_new, "runtime_probe": probe,
        "method": "each process: warm-up, relpoline_epoch() x3 (RELPOLINE_EPOCH_MS=0), then "
                  "interleaved timed batches (clock_gettime), min (or median, see inproc) of the "
                  "batches; driver: median over "
                  "interleaved rounds; ratio = median over rounds of the per-round ratio",
    }
    with open(args.out, "w") as fp:
        json.dump({"meta": meta, "rows": rows, "cost_model": cost_model}, fp, indent=1)
    print(f"wrote {args.out}")


def lsq(points):
    """Least-squares line through (x, y) points: slope, intercept, r2, n."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    icpt = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - icpt - slope * x) ** 2 for x, y in points)
    return {"slope": round(slope, 4), "intercept": round(icpt, 4),
            "r2": round(1 - ss_res / ss_tot, 3) if ss_tot else None, "n": n}


# Which expected tree depth of micro's model the fits use: "tree_depth" (an
# optimal search tree for the targets' frequencies, the runtime's shape) or
# "tree_depth_balanced".
DEPTH_KEY = "tree_depth"


def megamorphic_tables(rows, values, infos):
    """Print the tables of cases 12 and 13 and fit the cost-model constants."""
    def med(name, cfg):
        v = values.get((name, cfg))
        return statistics.median(v.values()) if v else None

    def row(name, cfg):
        return next((x for x in rows if x["name"] == name and x["config"] == cfg), None)

    def ratio(name, cfg):
        r = row(name, cfg)
        return r["ratio"] if r else None

    def model(name):
        for (n, _), lines in infos.items():
            if n == name:
                for line in lines:
                    if " model " in line:
                        return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", line)}
        return {}

    def stub(name, cfg):
        st = {}
        for line in infos.get((name, cfg), []):
            if line.startswith("stats "):
                st = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
        if not st:
            return "-"
        if int(st.get("sites_pinned", 0)):
            return "pin"
        if not int(st.get("sites_promoted", 0)):
            return "none"
        # the runtime's counters of promoted sites by stub kind (sites_chain, sites_tree)
        kinds = sorted(k.replace("sites_", "") for k, v in st.items() if k not in SHOWN_STATS and v.isdigit()
                       and int(v) > 0 and ("tree" in k or "chain" in k))
        return f"{'+'.join(kinds) or 'stub'}:{st.get('stub_targets', '?')}"

    def rfmt(x):
        return f"{x:.3f}x" if x is not None else "-"

    def verdict(name, cfg):
        r = row(name, cfg)
        if not r or r["target"] is None:
            return ""
        return f"{r['target']}: {'ok' if r['pass'] else ('MISS' if r['pass'] is False else '-')}"

    out = {}
    if any(r["name"].startswith("tree.") for r in rows):
        print()
        print("case 12: one site with K targets, ns/call; relpoline with RELPOLINE_MAX_TARGETS=256 "
              "RELPOLINE_MIN_SHARE=0 and RELPOLINE_STUB=tree (forced) or auto (the policy)")
        h = (f"{'K':>3} | {'order':<8} {'plain':>7} {'retpol':>7} {'tree':>7} {'auto':>7} {'tree/ret':>9} "
             f"{'auto/ret':>9}  {'tree stub':<16} {'auto stub':<16} target")
        print(h)
        print("-" * len(h))
        for dist in TREE_DIST:
            for k in TREE_K:
                n = f"tree.{dist}.{k}"
                tgt = " ".join(x for x in (verdict(n, "relpoline-tree"), verdict(n, "relpoline-auto")) if x)
                print(f"{k:>3} | {dist:<8} {fmt(med(n, 'plain')):>7} {fmt(med(n, 'retpoline')):>7} "
                      f"{fmt(med(n, 'relpoline-tree')):>7} {fmt(med(n, 'relpoline-auto')):>7} "
                      f"{rfmt(ratio(n, 'relpoline-tree')):>9} {rfmt(ratio(n, 'relpoline-auto')):>9}  "
                      f"{stub(n, 'relpoline-tree'):<16} {stub(n, 'relpoline-auto'):<16} {tgt}")
        print("  (pattern: a fixed sequence of 4K random permutations of the K targets, repeated;")
        print("   markov: each target followed by the next of a fixed cycle with p 0.7, else by one of two")
        print("   fixed others (0.2, 0.1); uniform: i.i.d.; each a 65536-entry precomputed sequence;")
        print("   stub = the runtime's stub counters at exit (pin = left on the fallback), its targets)")

    if any(r["name"].startswith("xover.") and r["name"] != "xover.direct" for r in rows):
        print()
        print("case 13: chain/tree crossover, ns/call; relpoline with RELPOLINE_MAX_TARGETS=K RELPOLINE_MIN_SHARE=0 "
              "and RELPOLINE_STUB=chain or tree")
        h = (f"{'K':>3} | {'order':<8} {'retpol':>7} {'chain':>7} {'tree':>7} {'chain/ret':>10} {'tree/ret':>9} "
             f"{'faster':>6} {'E[pos]':>7} {'E[depth]':>8}  {'chain stub':<14} {'tree stub':<14}")
        print(h)
        print("-" * len(h))
        for dist in XOVER_DIST:
            from_k = None
            for k in XOVER_K:
                n = f"xover.{dist}.{k}"
                c, t = med(n, "relpoline-chain"), med(n, "relpoline-tree")
                faster = "-" if c is None or t is None else ("tree" if t < c else "chain")
                if faster == "tree":
                    from_k = from_k or k
                elif faster == "chain":
                    from_k = None
                m = model(n)
                print(f"{k:>3} | {dist:<8} {fmt(med(n, 'retpoline')):>7} {fmt(c):>7} {fmt(t):>7} "
                      f"{rfmt(ratio(n, 'relpoline-chain')):>10} {rfmt(ratio(n, 'relpoline-tree')):>9} {faster:>6} "
                      f"{m.get('chain_pos', 0):>7.2f} {m.get(DEPTH_KEY, 0):>8.2f}  "
                      f"{stub(n, 'relpoline-chain'):<14} {stub(n, 'relpoline-tree'):<14}")
            out[f"tree_faster_from_k_{dist}"] = from_k
            print(f"  {dist}: " + (f"the tree is faster from K={from_k} on" if from_k
                                    else "the chain is faster at the largest K tested"))
        print("  (zipf: i.i.d. Zipf(1); pattern: as in case 12; E[pos] = expected position in a chain ordered")
        print(f"   by frequency, E[depth] = expected levels of an optimal search tree by address ({DEPTH_KEY}))")

        # ---- cost-model constants ----
        def pts(dists, cfg, xkey, group="xover", ks=XOVER_K):
            p = []
            for dist in dists:
                for k in ks:
                    n = f"{group}.{dist}.{k}"
                    y, m = med(n, cfg), model(n)
                    if y is not None and xkey in m:
                        p.append((m[xkey], y))
            return p
        chain_pat = lsq(pts(["pattern"], "relpoline-chain", "chain_pos"))
        chain_iid = lsq(pts(["zipf"], "relpoline-chain", "chain_pos"))
        tree_pat = lsq(pts(["pattern"], "relpoline-tree", DEPTH_KEY))
        tree_iid = lsq(pts(["zipf"], "relpoline-tree", DEPTH_KEY)
                       + pts(["uniform"], "relpoline-tree", DEPTH_KEY, "tree", TREE_K))
        ret = [med(r["name"], "retpoline") for r in rows if r["config"] == "retpoline"
               and r["name"].startswith(("xover.", "tree.")) and r["name"] != "xover.direct"]
        ret = [x for x in ret if x is not None]
        direct = med("xover.direct", "retpoline")
        out.update({
            "chain_ns_per_compare": chain_pat and chain_pat["slope"],
            "tree_ns_per_level_predictable": tree_pat and tree_pat["slope"],
            "tree_iid_extra_ns_per_level": (round(tree_iid["slope"] - tree_pat["slope"], 4)
                                            if tree_iid and tree_pat else None),
            "retpoline_ns_per_call": round(statistics.median(ret), 4) if ret else None,
            "retpoline_over_direct_ns": (round(statistics.median(ret) - direct, 4) if ret and direct else None),
            "fits": {"chain_pattern_vs_pos": chain_pat, "chain_zipf_iid_vs_pos": chain_iid,
                     "tree_pattern_vs_depth": tree_pat, "tree_iid_vs_depth": tree_iid},
            "depth_model": DEPTH_KEY,
            "how": "least squares of the median ns/call over rounds: chain (STUB=chain) vs expected chain "
                   "position on the patterned rows of case 13; tree (STUB=tree) vs expected depth on the "
                   "patterned rows of case 13 (predictable) and on every i.i.d. row (zipf of case 13, "
                   "uniform of case 12), the i.i.d. extra per level being the difference of the slopes; "
                   "retpoline: median of the retpoline rows of cases 12 and 13, and that minus the same loop "
                   "with a direct call",
        })
        print()
        print("cost model (least squares over the rows above; build/bench/micro.json: cost_model)")

        def f2(x):
            return "-" if x is None else f"{x:.3f}"
        fit = out["fits"]
        print(f"  chain: {f2(out['chain_ns_per_compare'])} ns per compare on a patterned stream"
              f" (R2 {f2(chain_pat and chain_pat['r2'])}); {f2(chain_iid and chain_iid['slope'])} ns per"
              f" position on zipf i.i.d. (R2 {f2(chain_iid and chain_iid['r2'])})")
        print(f"  tree:  {f2(out['tree_ns_per_level_predictable'])} ns per level, predictable"
              f" (R2 {f2(tree_pat and tree_pat['r2'])}, intercept {f2(tree_pat and tree_pat['intercept'])} ns);"
              f" +{f2(out['tree_iid_extra_ns_per_level'])} ns per level on an i.i.d. stream"
              f" (slope {f2(fit['tree_iid_vs_depth'] and fit['tree_iid_vs_depth']['slope'])},"
              f" R2 {f2(fit['tree_iid_vs_depth'] and fit['tree_iid_vs_depth']['r2'])})")
        print(f"  retpoline: {f2(out['retpoline_ns_per_call'])} ns per call in these loops"
              f" ({f2(out['retpoline_over_direct_ns'])} ns more than a direct call)")
    return out


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
