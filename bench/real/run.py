#!/usr/bin/env python3
"""relpoline real-program benchmark driver (python3 stdlib only).

  bench/real/run.py [--quick] [--runs N] [--programs redis,nginx,sqlite,leveldb,phase]
                    [--configs plain,retpoline,...] [--out build/bench/results.json]
                    [--no-setup] [--build-only]

Builds (cached, bench/real/build.sh) and measures every program in every
configuration, interleaving the configurations (A B C D E A B C D E ...).
Servers are pinned to CPU 0 and clients to CPU 1 (taskset), all traffic goes
to 127.0.0.1, every load run is bounded in time or count, and every server
started here is stopped on exit (normal, error or signal).
"""
import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(ROOT, "build")
REAL = os.path.join(BUILD, "real")
PROF = os.path.join(REAL, "profiles")
BENCHDIR = os.path.join(BUILD, "bench")

ALL_CONFIGS = ["plain", "retpoline", "relpoline", "pgo-retpoline", "relpoline-indirect", "relpoline-jt"]
# measured by default: relpoline-jt only answers the jump-table question (--configs adds it)
DEFAULT_CONFIGS = ["plain", "retpoline", "relpoline", "pgo-retpoline", "relpoline-indirect"]
ALL_PROGRAMS = ["redis", "nginx", "sqlite", "leveldb", "phase"]
RELPOLINE_CC = os.path.join(BUILD, "bin", "relpoline-cc")

CONFIG_DESC = {
    "plain": "gcc -O2, no mitigation",
    "retpoline": "gcc -O2 -mindirect-branch=thunk -fno-jump-tables (compiler's own thunks)",
    "relpoline": "CC=build/bin/relpoline-cc -O2, runtime defaults",
    "pgo-retpoline": "gcc -O2 -fprofile-generate (training run, see 'training') then "
                     "-O2 -fprofile-use -mindirect-branch=thunk -fno-jump-tables",
    "relpoline-indirect": "relpoline build, RELPOLINE_FALLBACK=indirect at run time (compare with plain)",
    "relpoline-jt": "RELPOLINE_JUMP_TABLES=1 build/bin/relpoline-cc -O2 (adds -fjump-tables): gcc keeps "
                    "switch jump tables, whose jumps become relpoline sites",
}

# --------------------------------------------------------------------------
# process bookkeeping: everything we start is stopped on the way out

_children = []  # Popen objects of servers


def _cleanup(*_):
    for p in list(_children):
        stop_proc(p, sig=signal.SIGTERM, timeout=3)
    _children.clear()


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def stop_proc(p, sig=signal.SIGTERM, timeout=10):
    """Stop one server we started (its own process group: it was started with
    start_new_session=True, so the group id is its pid)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    else:
        # leader gone: make sure no worker of its group is left behind
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if p in _children:
        _children.remove(p)


def start_server(argv, env, log_path, cpu):
    logf = open(log_path, "ab")
    p = subprocess.Popen(pin(argv, cpu), env=env, stdout=logf, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    _children.append(p)
    return p


# --------------------------------------------------------------------------
# helpers

NCPU = os.cpu_count() or 1
HAVE_TASKSET = shutil.which("taskset") is not None and NCPU >= 2
SERVER_CPU, CLIENT_CPU = 0, 1


def pin(argv, cpu):
    if HAVE_TASKSET and cpu is not None:
        return ["taskset", "-c", str(cpu)] + list(argv)
    return list(argv)


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


def sh(argv, timeout, env=None, cwd=None, check=True):
    r = subprocess.run(argv, env=env, cwd=cwd, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise BenchError("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(argv),
                                                            r.stdout[-2000:], r.stderr[-2000:]))
    return r


class BenchError(Exception):
    pass


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_tree_cpu(pid):
    """CPU seconds (user+system, all threads) of pid and its children."""
    total = 0.0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for q in pids:
        try:
            with open("/proc/%d/stat" % q) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise BenchError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError("server did not listen on 127.0.0.1:%d within %.0fs" % (port, timeout))


def build(prog, cfg):
    bcfg = "relpoline" if cfg == "relpoline-indirect" else cfg
    r = subprocess.run(["bash", os.path.join(HERE, "build.sh"), prog, bcfg],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise BenchError("build of %s/%s failed" % (prog, bcfg))
    return r.stdout.strip().splitlines()[-1]


def build_key(prog, cfg):
    r = subprocess.run(["bash", os.path.join(HERE, "build.sh"), prog, cfg, "--key"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip()


def run_env(cfg):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("RELPOLINE_") and k != "RELPOLINE_CC":
            del env[k]
    if cfg == "relpoline-indirect":
        env["RELPOLINE_FALLBACK"] = "indirect"
    return env


def summarize(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "runs": len(vals), "values": vals}


def geomean(xs):
    prod = 1.0
    for x in xs:
        prod *= x
    return prod ** (1.0 / len(xs))


# --------------------------------------------------------------------------
# programs.  Each has: training (for PGO), run(binary, cfg) -> dict of metrics


class Program:
    name = ""
    metric = ""
    higher_is_better = True
    # sub-results reported as their own program entries: key -> (name, metric)
    entries = None

    def __init__(self, quick, tmp):
        self.quick = quick
        self.tmp = tmp
        self.commands = []
        self.reference = None  # correctness reference from the plain build

    def note(self, cmd):
        if cmd not in self.commands:
            self.commands.append(cmd)


class Redis(Program):
    name = "redis"
    metric = "requests/s"
    TESTS = "set,get,incr,lpush"
    PIPE_TESTS = "set,get,incr,lpush,lpop"
    # the pipelined mix also on its own: with -P 16 the server, not the
    # client and the system calls, is the bottleneck
    entries = {"main": ("redis", "requests/s"),
               "pipelined": ("redis-pipelined", "requests/s (-P 16 mix, harmonic mean)")}

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.n = 40000 if quick else 100000
        self.pn = 200000 if quick else 500000
        self.training = ("redis-benchmark -c 50 -r 10000 -d 64 -n 30000 -t ping_inline,ping_mbulk,"
                         "mset,hset,sadd,rpush,rpop,spop,zadd,lrange_100; then -P 8 -n 100000 -t hset,sadd,zadd "
                         "(no GET/SET/INCR/LPUSH/LPOP tests)")
        self.measured = ("GET, SET, INCR, LPUSH: -c 50 -r 100000 -n %d each; pipelined mix: -P 16 -r 100000 "
                         "-n %d each of SET,GET,INCR,LPUSH,LPOP (harmonic mean); reported metric: geometric "
                         "mean of GET, SET, INCR, LPUSH, pipelined mix; redis-pipelined: the pipelined mix "
                         "alone" % (self.n, self.pn))

    def _start(self, binary, env):
        port = free_port()
        d = tempfile.mkdtemp(prefix="redis-", dir=self.tmp)
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", d,
                "--logfile", os.path.join(d, "redis.log")]
        self.note("taskset -c %d %s" % (SERVER_CPU, " ".join(a if a else "''" for a in argv[0:1] + argv[1:])))
        p = start_server(argv, env, os.path.join(d, "stdout.log"), SERVER_CPU)
        wait_port(port, p)
        return p, port, d

    def _bench(self, port, args, timeout=300):
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port)] + args + ["--csv"]
        self.note("taskset -c %d %s" % (CLIENT_CPU, " ".join(argv[:1] + ["-h", "127.0.0.1", "-p", "PORT"] + argv[5:])))
        r = sh(pin(argv, CLIENT_CPU), timeout=timeout)
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(r'^"([A-Z_0-9 ()]+)","([0-9.]+)"', line)
            if m:
                out[m.group(1)] = float(m.group(2))
        if re.search(r"error", r.stdout + r.stderr, re.I):
            raise BenchError("redis-benchmark reported an error:\n" + r.stdout + r.stderr)
        return out

    def _cli(self, port, *args):
        return sh(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), timeout=20).stdout

    def _check(self, port):
        info = self._cli(port, "info", "stats")
        errs = int(re.search(r"total_error_replies:(\d+)", info).group(1))
        rej = int(re.search(r"rejected_connections:(\d+)", info).group(1))
        if errs or rej:
            raise BenchError("redis: %d error replies, %d rejected connections" % (errs, rej))
        # functional round trip
        self._cli(port, "set", "relpoline:check", "hello-relpoline")
        got = self._cli(port, "get", "relpoline:check").strip()
        n = self._cli(port, "incrby", "relpoline:ctr", "41").strip()
        n = self._cli(port, "incr", "relpoline:ctr").strip()
        if got != "hello-relpoline" or n != "42":
            raise BenchError("redis functional check failed: %r %r" % (got, n))
        self._cli(port, "del", "relpoline:check", "relpoline:ctr")

    def _stop(self, p, port):
        try:
            self._cli(port, "shutdown", "nosave")
        except Exception:
            pass
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            pass
        stop_proc(p)

    def train(self, binary):
        env = run_env("pgo-gen")
        p, port, d = self._start(binary, env)
        try:
            self._bench(port, ["-c", "50", "-r", "10000", "-d", "64", "-n", "30000", "-t",
                               "ping_inline,ping_mbulk,mset,hset,sadd,rpush,rpop,spop,zadd,lrange_100"])
            self._bench(port, ["-c", "50", "-r", "10000", "-P", "8", "-n", "100000", "-t", "hset,sadd,zadd"])
            self._check(port)
        finally:
            self._stop(p, port)

    def run(self, binary, cfg):
        p, port, d = self._start(binary, run_env(cfg))
        try:
            # warm-up (not measured): same for every configuration
            self._bench(port, ["-c", "50", "-r", "100000", "-n", "20000", "-t", self.TESTS])
            c0 = proc_tree_cpu(p.pid)
            r1 = self._bench(port, ["-c", "50", "-r", "100000", "-n", str(self.n), "-t", self.TESTS])
            c1 = proc_tree_cpu(p.pid)
            r2 = self._bench(port, ["-c", "50", "-r", "100000", "-P", "16", "-n", str(self.pn),
                                    "-t", self.PIPE_TESTS])
            c2 = proc_tree_cpu(p.pid)
            self._check(port)
        finally:
            self._stop(p, port)
        sub = {}
        for t in ("GET", "SET", "INCR", "LPUSH"):
            if t not in r1:
                raise BenchError("redis-benchmark gave no %s result" % t)
            sub[t] = r1[t]
        pipe = {t: r2[t] for t in ("SET", "GET", "INCR", "LPUSH", "LPOP") if t in r2}
        if len(pipe) != 5:
            raise BenchError("redis-benchmark pipelined mix incomplete: %r" % r2)
        sub["pipelined-mix"] = len(pipe) / sum(1.0 / x for x in pipe.values())
        cpu = {"single": (c1 - c0) * 1e6 / (4 * self.n), "pipelined": (c2 - c1) * 1e6 / (5 * self.pn)}
        return {"main": geomean(list(sub.values())), "sub": sub, "cpu": cpu,
                "pipelined": sub["pipelined-mix"], "sub:pipelined": pipe,
                "cpu:pipelined": {"pipelined": cpu["pipelined"]}}


class Nginx(Program):
    name = "nginx"
    metric = "requests/s"
    SMALL = 1024

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.duration = 3 if quick else 5
        self.docroot = os.path.join(tmp, "nginx-docroot")
        os.makedirs(self.docroot, exist_ok=True)
        # deterministic content
        self.small = bytes((i * 131 + 7) % 94 + 33 for i in range(self.SMALL))
        self.big = bytes((i * 197 + 3) % 94 + 33 for i in range(65536))
        with open(os.path.join(self.docroot, "index.html"), "wb") as f:
            f.write(self.small)
        with open(os.path.join(self.docroot, "big.bin"), "wb") as f:
            f.write(self.big)
        self.training = ("wrk -t1 -c64 -d3s on a 64 KiB file, then wrk -t1 -c8 -d2s on a missing file (404)")
        self.measured = ("wrk -t1 -c16 -d%ds on a %d-byte static file (keep-alive), after a 1 s warm-up"
                         % (self.duration, self.SMALL))

    def _start(self, binary, env):
        port = free_port()
        prefix = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(user + """worker_processes 1;
daemon off;
master_process on;
pid %(p)s/nginx.pid;
error_log %(p)s/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    server {
        listen 127.0.0.1:%(port)d;
        root %(root)s;
        location / { }
    }
}
""" % {"p": prefix, "port": port, "root": self.docroot})
        argv = [binary, "-p", prefix, "-c", conf]
        self.note("taskset -c %d %s -p PREFIX -c PREFIX/nginx.conf   (worker_processes 1, access_log off)"
                  % (SERVER_CPU, binary))
        p = start_server(argv, env, os.path.join(prefix, "stdout.log"), SERVER_CPU)
        wait_port(port, p)
        return p, port, prefix

    def _get(self, port, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (port, path), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _check(self, port):
        st, body = self._get(port, "index.html")
        if st != 200 or body != self.small:
            raise BenchError("nginx: GET /index.html gave %d and %d bytes (want 200, %d bytes, same content)"
                             % (st, len(body), len(self.small)))

    def _wrk(self, port, path, conns, dur, expect_ok=True):
        argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % dur, "--timeout", "5s",
                "http://127.0.0.1:%d/%s" % (port, path)]
        self.note("taskset -c %d wrk -t1 -c%d -d%ds --timeout 5s http://127.0.0.1:PORT/%s"
                  % (CLIENT_CPU, conns, dur, path))
        r = sh(pin(argv, CLIENT_CPU), timeout=dur + 60)
        out = r.stdout
        m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
        if not m:
            raise BenchError("wrk output not understood:\n" + out + r.stderr)
        if expect_ok:
            if re.search(r"Non-2xx or 3xx responses", out):
                raise BenchError("wrk: non-2xx responses:\n" + out)
            if re.search(r"Socket errors", out):
                raise BenchError("wrk: socket errors:\n" + out)
            # bytes per request: headers (~240) + body
            m2 = re.search(r"(\d+) requests in [0-9.]+\w+, ([0-9.]+)([KMG]?B) read", out)
            if m2:
                nreq = int(m2.group(1))
                mult = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[m2.group(3)]
                per = float(m2.group(2)) * mult / max(nreq, 1)
                if not (self.SMALL < per < self.SMALL + 600):
                    raise BenchError("wrk: %.0f bytes per response, expected %d + headers" % (per, self.SMALL))
        return float(m.group(1))

    def _stop(self, p):
        # graceful: lets the profiling build write its counters
        stop_proc(p, sig=signal.SIGQUIT, timeout=20)

    def train(self, binary):
        p, port, prefix = self._start(binary, run_env("pgo-gen"))
        try:
            st, body = self._get(port, "big.bin")
            if st != 200 or body != self.big:
                raise BenchError("nginx (pgo-gen) big.bin check failed")
            self._wrk(port, "big.bin", 64, 3, expect_ok=False)
            self._wrk(port, "missing.html", 8, 2, expect_ok=False)
        finally:
            self._stop(p)

    def run(self, binary, cfg):
        p, port, prefix = self._start(binary, run_env(cfg))
        try:
            self._check(port)
            self._wrk(port, "index.html", 16, 1)  # warm-up
            c0 = proc_tree_cpu(p.pid)
            rps = self._wrk(port, "index.html", 16, self.duration)
            c1 = proc_tree_cpu(p.pid)
            self._check(port)
        finally:
            self._stop(p)
        return {"main": rps, "cpu": {"request": (c1 - c0) * 1e6 / max(rps * self.duration, 1)}}


class Leveldb(Program):
    """leveldb's db_bench (C++, virtual calls through Iterator, Comparator,
    Env, ...) on a database in tmpfs: the work is CPU, not disk."""
    name = "leveldb"
    metric = "micros/op (geometric mean)"
    higher_is_better = False
    BENCHES = ["fillseq", "fillrandom", "overwrite", "readrandom", "readseq", "seekrandom"]
    TRAIN = ["fillbatch", "readreverse", "readhot", "readmissing", "seekordered", "deleterandom"]
    LINE = re.compile(r"^(\w+)\s+:\s+([0-9.]+) micros/op;(.*)$", re.M)

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.num = 400000 if quick else 1000000
        self.args = ["--benchmarks=" + ",".join(self.BENCHES), "--num=%d" % self.num, "--value_size=32"]
        self.train_args = ["--benchmarks=" + ",".join(self.TRAIN), "--num=200000", "--value_size=200"]
        # the database lives in tmpfs when there is one
        shm = "/dev/shm"
        self.dbroot = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tmp
        self.training = ("db_bench " + " ".join(self.train_args) + " --db=DIR/db (none of the measured "
                         "benchmarks, other sizes)")
        self.measured = ("db_bench " + " ".join(self.args) + " --db=DIR/db, DIR a fresh directory in %s; "
                         "metric: geometric mean of the benchmarks' micros/op; checks: exit 0, every benchmark "
                         "reported, found counts identical to the plain build's" % self.dbroot)

    def _run(self, binary, env, args):
        d = tempfile.mkdtemp(prefix="leveldb-", dir=self.dbroot)
        argv = [binary] + args + ["--db=" + os.path.join(d, "db")]
        self.note("taskset -c %d %s --db=DIR/db" % (CLIENT_CPU, " ".join([binary] + args)))
        try:
            return sh(pin(argv, CLIENT_CPU), env=env, timeout=900).stdout
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def _parse(self, out, names):
        got = [(m.group(1), float(m.group(2)), m.group(3)) for m in self.LINE.finditer(out)]
        if [g[0] for g in got] != names:
            raise BenchError("db_bench reported %s, expected %s:\n%s"
                             % ([g[0] for g in got], names, out[-2000:]))
        # what must not depend on the build: the names and the found counts
        check = "\n".join(n + " " + " ".join(re.findall(r"\(\d+ of \d+ found\)", x)) for n, _, x in got)
        return {n: v for n, v, _ in got}, check

    def train(self, binary):
        self._parse(self._run(binary, run_env("pgo-gen"), self.train_args), self.TRAIN)

    def run(self, binary, cfg):
        if self.reference is None:
            # untimed run of the plain build: the found counts to compare with
            self.reference = self._parse(self._run(build(self.name, "plain"), run_env("plain"), self.args),
                                         self.BENCHES)[1]
        sub, check = self._parse(self._run(binary, run_env(cfg), self.args), self.BENCHES)
        if check != self.reference:
            raise BenchError("db_bench output differs from the plain build's:\n%s\nplain:\n%s"
                             % (check, self.reference))
        return {"main": geomean(list(sub.values())), "sub": sub}


class Sqlite(Program):
    name = "sqlite"
    metric = "seconds (speedtest1 TOTAL)"
    higher_is_better = False

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.size = 60 if quick else 100
        self.args = ["--memdb", "--verify", "--nomemstat", "--size", str(self.size)]
        self.train_args = ["--memdb", "--verify", "--nomemstat", "--size", "30", "--testset"]
        self.train_sets = ["orm", "cte", "fp"]
        self.training = ("speedtest1 " + " ".join(self.train_args) + " T, for T in " + ", ".join(self.train_sets)
                         + " (three runs; no 'main' testset)")
        self.measured = "speedtest1 " + " ".join(self.args) + " (testset main)"

    @staticmethod
    def normalize(out):
        lines = []
        for line in out.splitlines():
            line = re.sub(r"\.*\s+[0-9.]+s\s*$", "", line)
            lines.append(line.rstrip())
        return "\n".join(lines)

    def _run(self, binary, env, args):
        argv = [binary] + args
        self.note("taskset -c %d %s" % (CLIENT_CPU, " ".join(argv)))
        r = sh(pin(argv, CLIENT_CPU), env=env, cwd=self.tmp, timeout=600)
        return r.stdout

    def train(self, binary):
        for t in self.train_sets:
            self._run(binary, run_env("pgo-gen"), self.train_args + [t])

    def run(self, binary, cfg):
        out = self._run(binary, run_env(cfg), self.args)
        m = re.search(r"TOTAL\.*\s+([0-9.]+)s", out)
        if not m or "Verification Hash" not in out:
            raise BenchError("speedtest1 output not understood:\n" + out[-2000:])
        norm = self.normalize(out)
        return {"main": float(m.group(1)), "check": norm}


class Python(Program):
    """CPython 3.11 running the pure-Python scripts in bench/real/python/.
    Each script prints a checksum, which must equal the plain build's (the
    reference is taken once per run.py invocation, from the plain build with
    the same arguments); the metric is each script's CPU time, and the
    program's number is their geometric mean."""
    name = "python"
    metric = "seconds (geometric mean of the scripts' CPU times)"
    higher_is_better = False
    DIR = os.path.join(HERE, "python")
    # script -> first argument (the size); the second is the script's default seed
    SCRIPTS = {"oo_shop": 200000, "closures": 50000, "dicts": 24000, "strings": 60000,
               "generators": 1600000, "recursion": 12, "interp": 2000}
    TRAIN = ["train.py", "12"]

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.walls = []
        self.args = {s: max(1, n // 2) if quick else n for s, n in self.SCRIPTS.items()}
        self.training = ("python -S -B bench/real/python/%s %s (its own mix: list-of-lists matrix products, a "
                         "game of life, big-integer pi digits, multi-key sorts of dict records, a binary-heap "
                         "event simulation, a JSON-like dump/parse; none of the measured scripts)"
                         % tuple(self.TRAIN))
        self.measured = ("python -S -B bench/real/python/S.py SIZE, one process per script, its CPU time "
                         "(user + system, getrusage of the reaped child; the sum of the wall times is in "
                         "run.py's log as wall_seconds); PYTHONHASHSEED=0; scripts (SIZE): %s; the checksum "
                         "each prints must equal the plain build's; reported metric: geometric mean of the %d "
                         "times" 
                         % (", ".join("%s (%d)" % kv for kv in self.args.items()), len(self.args)))

    def _run(self, binary, env, argv):
        env = dict(env)
        env["PYTHONHASHSEED"] = "0"
        full = [binary, "-S", "-B"] + argv
        self.note("taskset -c %d %s" % (CLIENT_CPU, " ".join(full).replace(ROOT + "/", "")))
        # CPU time (user + system) of the script's process, from the rusage of
        # reaped children: on a machine shared with other work (another
        # benchmark on the same CPU) it is much less disturbed than wall time
        import resource
        u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = sh(pin(full, CLIENT_CPU), env=env, cwd=self.tmp, timeout=600)
        wall = time.perf_counter() - t0
        u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        dt = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
        self.walls.append(wall)
        m = re.search(r"^checksum (\d+)$", r.stdout, re.M)
        if not m:
            raise BenchError("%s printed no checksum:\n%s%s" % (argv[0], r.stdout[-1000:], r.stderr[-1000:]))
        return dt, m.group(1)

    def _script(self, s):
        return [os.path.join(self.DIR, s + ".py"), str(self.args[s])]

    def train(self, binary):
        self._run(binary, run_env("pgo-gen"), [os.path.join(self.DIR, self.TRAIN[0])] + self.TRAIN[1:])

    def run(self, binary, cfg):
        if self.reference is None:
            plain = build("python", "plain")
            self.reference = {s: self._run(plain, run_env("plain"), self._script(s))[1] for s in self.args}
        sub, bad = {}, []
        self.walls = []
        for s in self.args:
            dt, cs = self._run(binary, run_env(cfg), self._script(s))
            if cs != self.reference[s]:
                bad.append("%s: checksum %s, plain %s" % (s, cs, self.reference[s]))
            sub[s] = dt
        if bad:
            raise BenchError("output differs from the plain build's: " + "; ".join(bad))
        return {"main": geomean(list(sub.values())), "sub": sub, "wall_seconds": sum(self.walls)}


class Phase(Program):
    name = "phase"
    metric = "Mcalls/s"
    entries = {"phase1": ("phase-change:phase1", "Mcalls/s (phase 1)"),
               "phase2": ("phase-change:phase2", "Mcalls/s (phase 2)")}

    def __init__(self, quick, tmp):
        super().__init__(quick, tmp)
        self.n = 40000000 if quick else 100000000
        self.training = "phase -p 1 -n 10000000 (phase 1 only)"
        self.measured = "phase -n %d (phase 1, then phase 2 with other targets; 4 calls/iteration)" % self.n

    def _run(self, binary, env, args):
        argv = [binary] + args
        self.note("taskset -c %d %s" % (CLIENT_CPU, " ".join(argv)))
        return sh(pin(argv, CLIENT_CPU), env=env, timeout=600).stdout

    def train(self, binary):
        self._run(binary, run_env("pgo-gen"), ["-p", "1", "-n", "10000000"])

    def run(self, binary, cfg):
        out = self._run(binary, run_env(cfg), ["-n", str(self.n)])
        ph = {int(a): float(b) for a, b in re.findall(r"^phase (\d) calls \d+ seconds [0-9.]+ mcalls_per_s ([0-9.]+)", out, re.M)}
        win = {}
        for a, w, v in re.findall(r"^window (\d) (\d+) mcalls_per_s ([0-9.]+)", out, re.M):
            win.setdefault("phase%s" % a, []).append(float(v))
        cs = re.search(r"^checksum (\S+)", out, re.M)
        if len(ph) != 2 or not cs:
            raise BenchError("phase output not understood:\n" + out)
        return {"phase1": ph[1], "phase2": ph[2], "windows": win, "check": cs.group(1)}


PROGRAMS = {"redis": Redis, "nginx": Nginx, "sqlite": Sqlite, "leveldb": Leveldb, "phase": Phase}


# --------------------------------------------------------------------------

def count_gcda(d):
    # gcc mangles relative object paths into the name, absolute ones become subdirectories
    return sum(1 for _, _, fs in os.walk(d) for f in fs if f.endswith(".gcda"))


def prepare_pgo(prog, obj):
    """pgo-gen build, training run, pgo-retpoline build; all cached."""
    pdir = os.path.join(PROF, prog)
    stamp = os.path.join(pdir, ".trained")
    want = build_key(prog, "pgo-gen") + "\n" + obj.training + "\n"
    have = open(stamp).read() if os.path.exists(stamp) else None
    if have != want:
        log("%s: PGO training build" % prog)
        shutil.rmtree(pdir, ignore_errors=True)
        os.makedirs(pdir)
        binary = build(prog, "pgo-gen")
        log("%s: PGO training run: %s" % (prog, obj.training))
        obj.train(binary)
        n = count_gcda(pdir)
        if n == 0:
            raise BenchError("%s: training wrote no profile into %s" % (prog, pdir))
        with open(stamp, "w") as f:
            f.write(want)
    binary = build(prog, "pgo-retpoline")
    # how much of the program had a profile
    blog = os.path.join(REAL, prog, "pgo-retpoline", "build-pgo-retpoline.log")
    missing = 0
    if os.path.exists(blog):
        missing = len(re.findall(r"profile count data file not found", open(blog, errors="replace").read()))
    gcda = count_gcda(pdir)
    return binary, {"profiles": gcda, "objects_without_profile": missing}


def build_commands(prog, configs):
    out = {}
    for c in configs:
        if c == "relpoline-indirect":
            continue
        steps = ["pgo-gen", "pgo-retpoline"] if c == "pgo-retpoline" else [c]
        lines = []
        for st in steps:
            f = os.path.join(REAL, prog, c, "build-%s.cmds" % st)
            if os.path.exists(f):
                lines += [ln.replace(ROOT + "/", "") for ln in open(f).read().splitlines()]
        out[c] = lines
    return out


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None


def tool_version(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
        return r.stdout.strip().splitlines()[0] if r.stdout.strip() else None
    except Exception:
        return None


def relpoline_available():
    return (os.access(RELPOLINE_CC, os.X_OK) and os.path.exists(os.path.join(BUILD, "lib", "librelpoline.so"))
            and os.path.exists(os.path.join(BUILD, "lib", "relpoline-module.o")))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--programs", default=",".join(ALL_PROGRAMS))
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    ap.add_argument("--out", default=os.path.join(BENCHDIR, "results.json"))
    ap.add_argument("--no-setup", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    a = ap.parse_args()
    runs = a.runs or (3 if a.quick else 7)
    programs = [p for p in a.programs.split(",") if p]
    configs = [c for c in a.configs.split(",") if c]
    for p in programs:
        if p not in PROGRAMS:
            ap.error("unknown program %s" % p)
    for c in configs:
        if c not in ALL_CONFIGS:
            ap.error("unknown config %s" % c)
    t_start = time.time()
    os.makedirs(BENCHDIR, exist_ok=True)
    if not a.build_only and os.path.exists(a.out):
        os.remove(a.out)  # never leave a stale result behind a failed run
    if not a.no_setup:
        subprocess.run(["bash", os.path.join(HERE, "setup.sh")], check=True)
    skipped = {}
    if not relpoline_available():
        for c in ("relpoline", "relpoline-indirect", "relpoline-jt"):
            if c in configs:
                configs.remove(c)
                skipped[c] = "build/bin/relpoline-cc or the runtime is missing (run make)"
        log("relpoline not built: measuring %s only" % ", ".join(configs))
    tmp = tempfile.mkdtemp(prefix="run-", dir=os.path.join(BENCHDIR))
    versions = {}
    for line in (read(os.path.join(REAL, "src", "versions.txt")) or "").splitlines():
        k, v = line.split()
        versions[k] = v

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model(),
        "mode": "quick" if a.quick else "full",
        "runs_per_config": runs,
        "spectre_v2": read("/sys/devices/system/cpu/vulnerabilities/spectre_v2"),
        "kernel": platform.release(),
        "nproc": NCPU,
        "pinning": ("server on CPU %d, client on CPU %d (taskset)" % (SERVER_CPU, CLIENT_CPU))
        if HAVE_TASKSET else "none (taskset missing or fewer than 2 CPUs)",
        "compilers": {"gcc": tool_version(["gcc", "--version"]),
                      "relpoline-cc": ("%s (wrapping %s)" % (RELPOLINE_CC, tool_version(["gcc", "--version"])))
                      if relpoline_available() else None},
        "tools": {"redis-benchmark": tool_version(["redis-benchmark", "--version"]),
                  "wrk": tool_version(["wrk", "-v"])},
        "source_packages": versions,
        "config_descriptions": {c: CONFIG_DESC[c] for c in ALL_CONFIGS},
        "skipped_configs": skipped,
        "order": "interleaved: for each run, every configuration once (%s)" % " ".join(configs),
        "programs": [],
    }

    objs = {p: PROGRAMS[p](a.quick, tmp) for p in programs}
    binaries = {}
    extra = {}
    for p in programs:
        binaries[p] = {}
        extra[p] = {}
        for c in configs:
            if c == "pgo-retpoline":
                binaries[p][c], extra[p]["pgo"] = prepare_pgo(p, objs[p])
            else:
                binaries[p][c] = build(p, c)
    log("builds ready after %.0fs" % (time.time() - t_start))
    if a.build_only:
        return 0

    failures = []
    for p in programs:
        obj = objs[p]
        vals = {c: [] for c in configs}
        subs = {c: [] for c in configs}
        checks_ok = {c: True for c in configs}
        ref = None
        # reference output from the plain build (not timed; also a warm cache)
        if obj.name in ("sqlite", "phase"):
            ref = obj.run(binaries[p].get("plain") or build(p, "plain"), "plain")["check"]
        for r in range(runs):
            for c in configs:
                t0 = time.time()
                try:
                    res = obj.run(binaries[p][c], c)
                except (BenchError, subprocess.TimeoutExpired) as e:
                    log("%s/%s run %d FAILED: %s" % (p, c, r + 1, e))
                    failures.append({"program": p, "config": c, "run": r + 1, "error": str(e)[:4000],
                                     "binary": binaries[p][c],
                                     "env": "RELPOLINE_FALLBACK=indirect" if c == "relpoline-indirect" else ""})
                    checks_ok[c] = False
                    continue
                if "check" in res and ref is not None and res["check"] != ref:
                    log("%s/%s run %d: OUTPUT DIFFERS from the plain build" % (p, c, r + 1))
                    failures.append({"program": p, "config": c, "run": r + 1,
                                     "error": "output differs from the plain build's", "binary": binaries[p][c]})
                    checks_ok[c] = False
                    continue
                vals[c].append(res)
                shown = {k: round(v, 3) for k, v in res.items() if isinstance(v, float)}
                log("%s run %d/%d %-18s %s (%.1fs)" % (p, r + 1, runs, c, shown, time.time() - t0))
        keys = list(obj.entries.keys()) if obj.entries else ["main"]
        for key in keys:
            name, metric = obj.entries[key] if obj.entries else (obj.name, obj.metric)
            entry = {"name": name, "metric": metric, "higher_is_better": obj.higher_is_better,
                     "measured": obj.measured, "training": obj.training,
                     "commands": obj.commands, "configs": {}}
            for c in configs:
                vs = [v[key] for v in vals[c]]
                if not vs:
                    entry["configs"][c] = {"median": None, "min": None, "max": None, "runs": 0,
                                           "error": "all runs failed"}
                    continue
                e = summarize(vs)
                e["checks_passed"] = checks_ok[c]
                # per-test numbers: "sub" belongs to the main entry, "sub:KEY" to entry KEY
                subk, cpuk = ("sub", "cpu") if key == "main" else ("sub:" + key, "cpu:" + key)
                if vals[c] and subk in vals[c][0]:
                    e["subtests"] = {t: summarize([v[subk][t] for v in vals[c]]) for t in vals[c][0][subk]}
                if vals[c] and cpuk in vals[c][0]:
                    e["server_cpu_us_per_request"] = {t: summarize([v[cpuk][t] for v in vals[c]])
                                                      for t in vals[c][0][cpuk]}
                if vals[c] and "windows" in vals[c][0] and key in vals[c][0]["windows"]:
                    ws = [v["windows"][key] for v in vals[c]]
                    e["windows_median"] = [statistics.median(col) for col in zip(*ws)]
                entry["configs"][c] = e
            if "pgo" in extra[p]:
                entry["pgo_profile"] = extra[p]["pgo"]
            entry["build_commands"] = build_commands(p, configs)
            derive(entry)
            results["programs"].append(entry)
    results["failures"] = failures
    results["elapsed_seconds"] = round(time.time() - t_start, 1)
    with open(a.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(a.out + ".tmp", a.out)
    log("wrote %s (%.0fs)" % (a.out, time.time() - t_start))
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        log("%d run(s) failed, see 'failures' in %s" % (len(failures), a.out))
        return 1
    return 0


def derive(entry):
    """Relative numbers: speed relative to plain (>1 = faster), and the share
    of the retpoline overhead that relpoline recovers."""
    cf = entry["configs"]
    hib = entry["higher_is_better"]

    def med(c):
        v = cf.get(c, {}).get("median")
        return v

    plain = med("plain")
    for c, e in cf.items():
        if plain and e.get("median"):
            e["speed_vs_plain"] = (e["median"] / plain) if hib else (plain / e["median"])
    pl, rp, rl = med("plain"), med("retpoline"), med("relpoline")
    pg = med("pgo-retpoline")
    entry.pop("retpoline_overhead_recovered", None)
    entry.pop("pgo_overhead_recovered", None)
    if pl and rp:
        # retpoline's cost on the medians, in percent of plain (>0: retpoline slower)
        gap = (pl - rp) / pl * (1 if hib else -1) * 100
        entry["retpoline_overhead_pct"] = gap
        # a share of a gap smaller than the run-to-run noise means nothing
        if gap < 2.0:
            entry["overhead_recovered_note"] = "retpoline overhead %.1f%% (< 2%%): within noise, share not computed" % gap
        else:
            if rl is not None:
                entry["retpoline_overhead_recovered"] = (rl - rp) / (pl - rp)
            if pg is not None:
                entry["pgo_overhead_recovered"] = (pg - rp) / (pl - rp)
    ri = med("relpoline-indirect")
    if pl and ri:
        entry["relpoline_indirect_vs_plain"] = (ri / pl) if hib else (pl / ri)


# CPython (bench/real/python/): registered here, apart from the lists above
ALL_PROGRAMS.append("python")
PROGRAMS["python"] = Python


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log("ERROR: " + str(e))
        sys.exit(1)
