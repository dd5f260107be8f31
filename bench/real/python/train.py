"""PGO training workload for the pgo-retpoline build of CPython.  Not one
of the measured scripts, and deliberately a different mix: list-of-lists
numerics, a cellular automaton, big-integer arithmetic, records sorted on
several keys, an event simulation on a hand-written binary heap, and a
serializer / parser for a JSON-like text format.

  python train.py [SCALE]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def matmul(a, b):
    bt = list(zip(*b))
    return [[sum(x * y for x, y in zip(row, col)) % 65521 for col in bt] for row in a]


def life(grid, steps):
    n = len(grid)
    for _ in range(steps):
        new = []
        for i in range(n):
            row = []
            for j in range(n):
                s = 0
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        if di or dj:
                            s += grid[(i + di) % n][(j + dj) % n]
                row.append(1 if s == 3 or (s == 2 and grid[i][j]) else 0)
            new.append(row)
        grid = new
    return grid


def pi_digits(n):
    """Gibbons' unbounded spigot."""
    q, r, t, k, m, x = 1, 0, 1, 1, 3, 3
    out = []
    while len(out) < n:
        if 4 * q + r - t < m * t:
            out.append(m)
            q, r, m = 10 * q, 10 * (r - m * t), (10 * (3 * q + r)) // t - 10 * m
        else:
            q, r, t, k, m, x = q * k, (2 * q + r) * x, t * x, k + 1, (q * (7 * k + 2) + r * x) // (t * x), x + 2
    return out


class Heap:
    def __init__(self):
        self.a = []

    def push(self, item):
        a = self.a
        a.append(item)
        i = len(a) - 1
        while i:
            p = (i - 1) // 2
            if a[p] <= a[i]:
                break
            a[p], a[i] = a[i], a[p]
            i = p

    def pop(self):
        a = self.a
        top = a[0]
        last = a.pop()
        if a:
            a[0] = last
            i, n = 0, len(a)
            while True:
                c = 2 * i + 1
                if c >= n:
                    break
                if c + 1 < n and a[c + 1] < a[c]:
                    c += 1
                if a[i] <= a[c]:
                    break
                a[i], a[c] = a[c], a[i]
                i = c
        return top

    def __len__(self):
        return len(self.a)


def simulate(events, seed):
    heap = Heap()
    state = seed
    for i in range(64):
        heap.push((i, i, "arrive"))
    served = waits = 0
    busy_until = 0
    while len(heap) and served < events:
        t, who, what = heap.pop()
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        if what == "arrive":
            start = max(t, busy_until)
            waits += start - t
            busy_until = start + 1 + state % 7
            heap.push((busy_until, who, "leave"))
        else:
            served += 1
            heap.push((t + 1 + state % 40, who, "arrive"))
    return served, waits


def dump(v):
    if isinstance(v, dict):
        return "{" + ",".join('"%s":%s' % (k, dump(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v + '"'
    return str(v)


def load(s, i=0):
    c = s[i]
    if c == "{":
        d, i = {}, i + 1
        while s[i] != "}":
            k, i = load(s, i)
            v, i = load(s, i + 1)
            d[k] = v
            if s[i] == ",":
                i += 1
        return d, i + 1
    if c == "[":
        out, i = [], i + 1
        while s[i] != "]":
            v, i = load(s, i)
            out.append(v)
            if s[i] == ",":
                i += 1
        return out, i + 1
    if c == '"':
        j = s.index('"', i + 1)
        return s[i + 1:j], j + 1
    j = i
    while j < len(s) and (s[j].isdigit() or s[j] == "-"):
        j += 1
    return int(s[i:j]), j


def main(scale):
    h = 0
    a = [[(i * 7 + j * 3) % 17 for j in range(40)] for i in range(40)]
    for _ in range(scale):
        a = matmul(a, a)
        h = mix(h, a[3][5])
    g = [[(i * j + i) % 3 == 0 and 1 or 0 for j in range(32)] for i in range(32)]
    g = life(g, 8 * scale)
    h = mix(h, sum(map(sum, g)))
    h = mix(h, sum(pi_digits(300 * scale)))
    recs = [{"id": i, "name": "n%d" % (i * 37 % 101), "dept": ["a", "b", "c"][i % 3],
             "pay": (i * 7919) % 5000, "tags": ["t%d" % (i % 5), "u%d" % (i % 7)]} for i in range(3000 * scale)]
    recs.sort(key=lambda r: (r["dept"], -r["pay"], r["name"]))
    h = mix(h, recs[0]["id"] * 1000 + recs[-1]["id"])
    text = dump(recs[:500 * scale])
    back, _ = load(text)
    h = mix(h, len(text) ^ len(back))
    served, waits = simulate(20000 * scale, 3)
    h = mix(h, served * 7 + waits)
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
