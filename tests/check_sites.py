#!/usr/bin/env python3
"""Checks of the per-site report that t_sites' runtime writes at exit.

  check_sites.py table ERRLOG [TOP]   RELPOLINE_STATS=sites: the table on stderr
  check_sites.py json FILE            RELPOLINE_STATS=json:FILE: the "sites" array
  check_sites.py cap ERRLOG           t_sites cap: the capped site says so

t_sites report makes these sites, in this order of samples (see t_sites.c):
site_two 530 (fa 60%, fb 40%, 30 misses on fc), site_wide 400 (pinned for
coverage, 20 targets), site_tail 300 (jmp, fc), site_jcc 200 (jcc, fd),
libtsites.so's site_a, site_b, site_t 70 each (t0), site_cold 20 (fa),
site_libc 18 (libc's labs, out of any stub's reach: pinned).
Prints the first problem and exits 1.
"""
import json
import re
import sys

# name, samples, misses, kind, module, states, targets (name, share), reason
WANT = [
    ("site_two", 530, 30, "call", "t_sites", ("chain", "tree"), [("fa", 0.6), ("fb", 0.4)], ""),
    ("site_wide", 400, 0, "call", "t_sites", ("pinned",), None, "coverage"),
    ("site_tail", 300, 0, "jmp", "t_sites", ("chain", "tree"), [("fc", 1.0)], ""),
    ("site_jcc", 200, 0, "jcc", "t_sites", ("chain", "tree"), [("fd", 1.0)], ""),
    ("site_a", 70, 0, "call", "libtsites.so", ("chain", "tree"), [("t0", 1.0)], ""),
    ("site_b", 70, 0, "call", "libtsites.so", ("chain", "tree"), [("t0", 1.0)], ""),
    ("site_t", 70, 0, "jmp", "libtsites.so", ("chain", "tree"), [("t0", 1.0)], ""),
    ("site_cold", 20, 0, "call", "t_sites", ("chain", "tree"), [("fa", 1.0)], ""),
    ("site_libc", 18, 0, "call", "t_sites", ("pinned",), [("labs", 1.0)], "no stub could be made"),
]


def fail(msg):
    print(msg)
    sys.exit(1)


def sym_is(sym, fn, offset=True):
    """SYM names function FN (gcc may add a .isra/.part suffix), with an offset if OFFSET."""
    pat = re.escape(fn) + r"(\.[\w.]+)?" + (r"\+0x[0-9a-f]+" if offset else r"(\+0x[0-9a-f]+)?")
    return re.fullmatch(pat, sym) is not None


def check_site(i, name, samples, misses, kind, module, state, reason, targets, seen):
    """One listed site against WANT[i]; TARGETS: [(symbol, share)]."""
    w = WANT[i]
    where = "site %d (%s)" % (i + 1, name)
    if not sym_is(name, w[0]):
        fail("%s: want %s+0x..., in order of samples" % (where, w[0]))
    if samples != w[1] or misses != w[2]:
        fail("%s: %d samples, %d misses, want %d, %d" % (where, samples, misses, w[1], w[2]))
    if kind != w[3]:
        fail("%s: kind %s, want %s" % (where, kind, w[3]))
    if module != w[4]:
        fail("%s: module %s, want %s" % (where, module, w[4]))
    if state not in w[5] or reason != w[7]:
        fail("%s: state %r reason %r, want %s %r" % (where, state, reason, "|".join(w[5]), w[7]))
    if w[6] is None:   # site_wide: 20 targets tg_NN, 5% each
        if seen != 20 or len(targets) != 4:
            fail("%s: %d targets in all, %d listed; want 20, 4" % (where, seen, len(targets)))
        for t, share in targets:
            if not re.fullmatch(r"tg_\d\d", t) or abs(share - 0.05) > 0.006:
                fail("%s: target %s %.3f, want tg_NN 0.05" % (where, t, share))
        return
    got = sorted((t, round(share, 2)) for t, share in targets)
    want = sorted((t, round(share, 2)) for t, share in w[6])
    if got != want:
        fail("%s: targets %s, want %s" % (where, got, want))


def table(path, top):
    lines = open(path, errors="replace").read().splitlines()
    head = [k for k, l in enumerate(lines) if l.startswith("relpoline sites (pid ")]
    if len(head) != 1:
        fail("%d 'relpoline sites' headers on stderr, want 1" % len(head))
    k = head[0]
    m = re.search(r"most samples first: (\d+) of (\d+) \(RELPOLINE_STATS_TOP=(\d+)\)", lines[k])
    want_n = min(top, len(WANT)) if top else len(WANT)
    if not m or int(m.group(1)) != want_n or int(m.group(2)) != len(WANT):
        fail("header %r: want %d of %d" % (lines[k], want_n, len(WANT)))
    if not lines[k + 1].split()[:6] == ["samples", "misses", "kind", "stubs", "site", "module"]:
        fail("no column header: %r" % lines[k + 1])
    rows = lines[k + 2:]
    listed = 0
    while len(rows) >= 2 and re.match(r"^\s+\d+\s+\d+\s+(call|jmp|jcc)\s", rows[0]):
        f = rows[0].split()
        st = rows[1].strip()
        m = re.fullmatch(r"(learning|chain|tree|pinned|rejected)(?:: ([^,;]*(?:\([^)]*\))?))?"
                         r"(?:, targets: (.*?))?(?: \((\d+) in all\))?(?:; missing now: (.*))?", st)
        if not m:
            fail("cannot read the state line %r" % st)
        targets = []
        for t in (m.group(3) or "").split(", "):
            if t:
                n, share = t.rsplit(" ", 1)
                targets.append((n, float(share.rstrip("%")) / 100))
        seen = int(m.group(4)) if m.group(4) else len(targets)
        if listed < len(WANT):
            check_site(listed, f[4], int(f[0]), int(f[1]), f[2], f[5], m.group(1), m.group(2) or "",
                       targets, seen)
        if listed == 0 and "fc 30" not in (m.group(5) or ""):
            fail("site_two: 'missing now: fc 30' wanted, got %r" % st)
        listed += 1
        rows = rows[2:]
    if listed != want_n:
        fail("%d sites listed, want %d" % (listed, want_n))


def jsonfile(path):
    try:
        d = json.load(open(path))
    except Exception as e:  # noqa: BLE001 - any parse error is the failure
        fail("%s: invalid JSON: %s" % (path, e))
    for k in ("sites", "sites_total", "stats_top", "sites_promoted"):
        if k not in d:
            fail("JSON has no %r" % k)
    if d["sites_total"] != len(WANT) or d["stats_top"] != 20 or len(d["sites"]) != len(WANT):
        fail("JSON: %d sites of %d (stats_top %d), want %d" % (len(d["sites"]), d["sites_total"],
                                                             d["stats_top"], len(WANT)))
    for i, s in enumerate(d["sites"]):
        for k in ("module", "address", "offset", "symbol", "kind", "state", "reason", "samples", "misses",
                  "stubs", "targets_seen", "targets", "missing_now"):
            if k not in s:
                fail("JSON site %d has no %r" % (i, k))
        if not re.fullmatch(r"0x[0-9a-f]+", s["address"]):
            fail("JSON site %d: address %r" % (i, s["address"]))
        targets = [(t["symbol"], t["share"]) for t in s["targets"]]
        check_site(i, s["symbol"], s["samples"], s["misses"], s["kind"], s["module"].rsplit("/", 1)[-1],
                   s["state"], s["reason"], targets, s["targets_seen"])
        if i == 0:
            if not all(t["in_stub"] for t in s["targets"]):
                fail("JSON site_two: fa and fb should be in its stub: %r" % s["targets"])
            if [(t["symbol"], t["misses"]) for t in s["missing_now"]] != [("fc", 30)]:
                fail("JSON site_two: missing_now %r, want fc 30" % s["missing_now"])


def cap(path):
    text = open(path, errors="replace").read()
    if not re.search(r"^relpoline: site 0x[0-9a-f]+ \(site_cap\+0x[0-9a-f]+\): .*versions exhausted \(max_versions=2\)", text, re.M):
        fail("no verbose line naming the cap: versions exhausted (max_versions=2)")
    lines = text.splitlines()
    for k, l in enumerate(lines):
        f = l.split()
        if len(f) == 6 and sym_is(f[4], "site_cap"):
            if lines[k + 1].strip().startswith("pinned: versions exhausted (max_versions=2)"):
                return
            fail("site_cap's state: %r" % lines[k + 1].strip())
    fail("site_cap is not in the sites table")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        fail(__doc__)
    if sys.argv[1] == "table":
        table(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    elif sys.argv[1] == "json":
        jsonfile(sys.argv[2])
    elif sys.argv[1] == "cap":
        cap(sys.argv[2])
    else:
        fail(__doc__)
