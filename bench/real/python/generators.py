"""Generator workload: lazy pipelines of generator functions and generator
expressions, an incremental prime sieve, sliding windows, chunking,
'yield from' over nested structures, and a round-robin scheduler of
generator-based tasks driven with send().

  python generators.py [SIZE] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def lcg(seed):
    state = seed & 0x7FFFFFFF
    while True:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        yield state >> 4


def take(n, it):
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def primes():
    """Incremental sieve: composites map to the primes that hit them."""
    hits = {}
    n = 2
    while True:
        ps = hits.pop(n, None)
        if ps is None:
            yield n
            hits[n * n] = [n]
        else:
            for p in ps:
                hits.setdefault(n + p, []).append(p)
        n += 1


def windows(it, k):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) > k:
            del buf[0]
        if len(buf) == k:
            yield tuple(buf)


def chunks(it, k):
    chunk = []
    for x in it:
        chunk.append(x)
        if len(chunk) == k:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def flatten(tree):
    for node in tree:
        if isinstance(node, list):
            yield from flatten(node)
        else:
            yield node


def nested(gen, depth):
    if depth == 0:
        return next(gen) % 1000
    return [nested(gen, depth - 1) for _ in range(1 + next(gen) % 3)]


def worker(name, limit):
    """A task: receives numbers, yields its running state."""
    total = 0
    seen = 0
    while seen < limit:
        x = yield total
        if x is None:
            continue
        total = (total * 7 + x + name) & 0xFFFFFF
        seen += 1
    return total


def schedule(tasks, feed):
    results = {}
    ready = []
    for name, t in tasks:
        next(t)
        ready.append((name, t))
    while ready:
        still = []
        for name, t in ready:
            try:
                t.send(next(feed))
                still.append((name, t))
            except StopIteration as e:
                results[name] = e.value
        ready = still
    return results


def main(size, seed):
    h = 0
    rnd = lcg(seed)
    # a pipeline of generators over random numbers
    stream = (x % 10007 for x in take(size, rnd))
    evens = (x for x in stream if x % 2 == 0)
    for w in windows(evens, 4):
        h = mix(h, w[0] + 2 * w[1] - w[3])
    # primes, consumed in chunks
    for c in chunks(take(size // 20, primes()), 16):
        h = mix(h, sum(c) ^ len(c))
    # nested lists flattened with yield from
    for _ in range(size // 2000):
        tree = nested(rnd, 6)
        h = mix(h, sum(flatten(tree)))
    # cooperative tasks
    tasks = [(i, worker(i, 50 + i * 13)) for i in range(40)]
    for _ in range(size // 20000):
        tasks = [(i, worker(i, 50 + i * 13)) for i in range(40)]
        res = schedule(tasks, rnd)
        for name in sorted(res):
            h = mix(h, res[name])
    h = mix(h, sum(x * x for x in range(size // 10) if x % 3))
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1600000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 7)
