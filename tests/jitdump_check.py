#!/usr/bin/env python3
"""Check the jitdump files of t_jitdump against the snapshots it left.

    tests/jitdump_check.py DIR

DIR holds, per process of t_jitdump dump, jit-PID.dump (written by the
runtime) and snap-PID.info / snap-PID.maps / snap-PID-LO.bin (written by
the program itself at its end).  The format is perf's jitdump, as
tools/perf/Documentation/jitdump-specification.txt in the Linux tree
describes it; this parser is written from that text, independently of the
runtime's C structures.  Checked per file:

  - the header: magic "JiTD" (0x4A695444), version 1, size 40, machine
    x86-64, the process's pid, flags 0;
  - the records' sizes add up to the file size exactly; every one is a
    JIT_CODE_LOAD whose size is its fixed part + name + code;
  - pid, tid, vma == code_addr, code_index 0, 1, 2, ...;
  - names: relpoline_cells:<module>, relpoline_stub:<site> or
    relpoline_tree:<site>, with something after the colon;
  - timestamps (CLOCK_MONOTONIC) never go backwards, start at or after the
    header's and end before the program's own clock reading at its end;
  - code_addr..+code_size lies inside one executable relpoline arena of the
    process's /proc/self/maps;
  - the code bytes are the live bytes there (cells: but for the je and jmp
    displacements, which the patcher changes after emission), and the
    16-byte block header in front of them has the kind the name says;
  - the records are exactly the blocks found by walking the arenas (every
    cell block, chain and tree, nothing else), and their number of chains
    and trees is the runtime's stubs_emitted;
then across the two processes: the child's file is its own, its records
cover every block the parent had, and it has code the parent has not.
Prints one line per process if all is well; otherwise exit status 1 with
the first problem on stderr.
"""
import glob
import os
import re
import struct
import sys

MAGIC = 0x4A695444
EM_X86_64 = 62
CELL = 48
CELL_PATCHED = [(12, 16), (20, 24)]   # je and jmp displacements in a cell


class Bad(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Bad(msg)


def read_info(path):
    info = {}
    for line in open(path):
        k, v = line.split()
        info[k] = int(v)
    return info


def arenas(d, pid):
    """(lo, hi, bytes) of each executable arena view in the snapshot."""
    out = []
    for line in open(os.path.join(d, "snap-%d.maps" % pid)):
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if not m or "relpoline-arena" not in line or m.group(3)[2] != "x":
            continue
        lo, hi = int(m.group(1), 16), int(m.group(2), 16)
        data = open(os.path.join(d, "snap-%d-%x.bin" % (pid, lo)), "rb").read()
        out.append((lo, hi, data))
    check(out, "pid %d: no executable arena in its maps" % pid)
    return out


def walk(lo, data):
    """Blocks of an arena, as the runtime lays them out: {addr: (kind, size, site)}."""
    check(data.startswith(b"RELPOLINE ARENA\0"), "arena at %#x does not start with its signature" % lo)
    blocks = {}
    off = 64
    while off + 16 <= len(data):
        magic = data[off:off + 4]
        size = 16
        if magic == b"RPLC":
            n, = struct.unpack_from("<I", data, off + 4)
            blocks[lo + off + 16] = ("cells", CELL * n, 0)
            size += (CELL + 8) * n
        elif magic in (b"RPLS", b"RPLT"):
            code, k, site = struct.unpack_from("<HHQ", data, off + 4)
            blocks[lo + off + 16] = ("stub" if magic == b"RPLS" else "tree", code, site)
            size += ((code + 7) & ~7) + 8 * k
        off = (off + size + 15) & ~15
    return blocks


def parse(path, pid, now):
    f = open(path, "rb").read()
    check(len(f) >= 40, "%s: %d bytes, shorter than the header" % (path, len(f)))
    magic, version, hsize, mach, _pad, hpid, hts, flags = struct.unpack_from("<IIIIIIQQ", f, 0)
    check(magic == MAGIC, "%s: magic %#x" % (path, magic))
    check(version == 1, "%s: version %d" % (path, version))
    check(hsize == 40, "%s: header size %d" % (path, hsize))
    check(mach == EM_X86_64, "%s: elf_mach %d" % (path, mach))
    check(hpid == pid, "%s: header pid %d" % (path, hpid))
    check(flags == 0, "%s: flags %#x (CLOCK_MONOTONIC timestamps have none)" % (path, flags))
    check(0 < hts <= now, "%s: header timestamp %d not before the program's end %d" % (path, hts, now))
    recs = []
    off, last = hsize, hts
    while off < len(f):
        check(off + 16 <= len(f), "%s: a record header cut at %d" % (path, off))
        rid, size, ts = struct.unpack_from("<IIQ", f, off)
        check(size >= 16 and off + size <= len(f),
              "%s: record at %d has size %d, %d bytes left" % (path, off, size, len(f) - off))
        check(rid == 0, "%s: record at %d has id %d, want JIT_CODE_LOAD (0)" % (path, off, rid))
        check(size >= 56, "%s: code load at %d of %d bytes" % (path, off, size))
        rpid, tid, vma, addr, csize, index = struct.unpack_from("<IIQQQQ", f, off + 16)
        end = f.index(b"\0", off + 56, off + size)
        name = f[off + 56:end].decode()
        code = f[end + 1:off + size]
        check(len(code) == csize, "%s: %s: %d code bytes for code_size %d" % (path, name, len(code), csize))
        check(rpid == pid and tid > 0, "%s: %s: pid %d tid %d" % (path, name, rpid, tid))
        check(vma == addr, "%s: %s: vma %#x != code_addr %#x" % (path, name, vma, addr))
        check(index == len(recs), "%s: %s: code_index %d, want %d" % (path, name, index, len(recs)))
        check(last <= ts <= now, "%s: %s: timestamp %d outside [%d, %d]" % (path, name, ts, last, now))
        last = ts
        recs.append((name, addr, code))
        off += size
    check(off == len(f), "%s: records end at %d, file has %d bytes" % (path, off, len(f)))
    return recs


def check_process(d, info):
    pid = info["pid"]
    path = os.path.join(d, "jit-%d.dump" % pid)
    check(os.path.exists(path), "%s missing" % path)
    recs = parse(path, pid, info["now_ns"])
    views = arenas(d, pid)
    blocks = {}
    for lo, _hi, data in views:
        blocks.update(walk(lo, data))
    seen = {}
    for name, addr, code in recs:
        m = re.match(r"relpoline_(cells|stub|tree):(.+)$", name)
        check(m, "pid %d: record name %r" % (pid, name))
        kind = m.group(1)
        view = [v for v in views if v[0] <= addr and addr + len(code) <= v[1]]
        check(view, "pid %d: %s at %#x+%d is not inside an executable arena" % (pid, name, addr, len(code)))
        lo, _hi, data = view[0]
        check(addr in blocks, "pid %d: %s at %#x is not a block of the arena" % (pid, name, addr))
        bkind, bsize, _site = blocks[addr]
        check(bkind == kind and bsize == len(code),
              "pid %d: %s (%d bytes) where the arena has a %s of %d bytes" % (pid, name, len(code), bkind, bsize))
        live = bytearray(data[addr - lo:addr - lo + len(code)])
        want = bytearray(code)
        if kind == "cells":
            for c in range(0, len(code), CELL):
                for a, b in CELL_PATCHED:
                    live[c + a:c + b] = want[c + a:c + b] = b"\0" * (b - a)
        if live != want:
            i = next(i for i in range(len(want)) if live[i] != want[i])
            raise Bad("pid %d: %s: code byte %d is %#x in the dump, %#x live" % (pid, name, i, want[i], live[i]))
        check(addr not in seen, "pid %d: %#x described twice (%s, %s)" % (pid, addr, seen.get(addr), name))
        seen[addr] = name
    missing = sorted(set(blocks) - set(seen))
    if missing:
        raise Bad("pid %d: no record for the %s at %#x" % (pid, blocks[missing[0]][0], missing[0]))
    kinds = [re.match(r"relpoline_(\w+):", n).group(1) for n, _a, _c in recs]
    stubs = kinds.count("stub") + kinds.count("tree")
    check(stubs == info["stubs_emitted"],
          "pid %d: %d chain and tree records, the runtime emitted %d" % (pid, stubs, info["stubs_emitted"]))
    check(kinds.count("cells") >= 1, "pid %d: no relpoline_cells record" % pid)
    example = next((r[0] for r in recs if r[0].startswith("relpoline_stub:")), "-")
    summary = ("    info: pid %d: %d records (cells %d, stubs %d, trees %d), %d bytes; e.g. %s" %
               (pid, len(recs), kinds.count("cells"), kinds.count("stub"), kinds.count("tree"),
                os.path.getsize(path), example))
    return {"kinds": kinds, "addrs": set(seen), "summary": summary}


def main():
    d = sys.argv[1]
    infos = [read_info(p) for p in glob.glob(os.path.join(d, "snap-*.info"))]
    pids = {i["pid"] for i in infos}
    parents = [i for i in infos if i["parent"] not in pids]
    children = [i for i in infos if i["parent"] in pids]
    check(len(parents) == 1 and len(children) == 1,
          "want the snapshots of one process and its fork child, got pids %s" % sorted(pids))
    p = check_process(d, parents[0])
    c = check_process(d, children[0])
    check("tree" in p["kinds"] and "stub" in p["kinds"], "parent: want a chain and a tree, got %s" % p["kinds"])
    check(p["addrs"] < c["addrs"],
          "child: its records do not cover every block of the parent plus its own new code")
    print(p["summary"])
    print(c["summary"])


if __name__ == "__main__":
    try:
        main()
    except Bad as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError, struct.error) as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
