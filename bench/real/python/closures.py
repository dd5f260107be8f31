"""Functional workload: closures, nonlocal state, decorators, lambdas,
higher-order functions (map, filter, sorted with key), partial application
and function composition built at run time.

  python closures.py [ROUNDS] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def counted(f):
    """Decorator: count the calls on the wrapper itself."""
    def wrapper(*args, **kw):
        wrapper.calls += 1
        return f(*args, **kw)
    wrapper.calls = 0
    wrapper.__name__ = f.__name__
    return wrapper


def memo(f):
    cache = {}

    def wrapper(n):
        r = cache.get(n)
        if r is None:
            r = cache[n] = f(n)
        return r
    wrapper.cache = cache
    return wrapper


def compose(*fs):
    def composed(x):
        for f in reversed(fs):
            x = f(x)
        return x
    return composed


def partial(f, *bound):
    def call(*rest):
        return f(*bound, *rest)
    return call


def adder(k):
    return lambda x: x + k


def scaler(k):
    return lambda x: (x * k) & 0xFFFFF


def clamp(lo, hi):
    def f(x):
        return lo if x < lo else hi if x > hi else x
    return f


def accumulator():
    total = 0
    count = 0

    def add(x):
        nonlocal total, count
        total += x
        count += 1
        return total

    def mean():
        return total // count if count else 0
    return add, mean


def reduce(f, xs, init):
    acc = init
    for x in xs:
        acc = f(acc, x)
    return acc


@counted
def weight(x):
    return (x * 2654435761) & 0xFFFF


@memo
def collatz(n):
    if n == 1:
        return 0
    return 1 + collatz(n // 2 if n % 2 == 0 else 3 * n + 1)


def make_rng(seed):
    state = seed & 0x7FFFFFFF

    def below(n):
        nonlocal state
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        return (state >> 4) % n
    return below


def main(rounds, seed):
    below = make_rng(seed)
    makers = [adder, scaler, lambda k: clamp(k, k * 50), lambda k: partial(max, k)]
    h = 0
    add, mean = accumulator()
    for r in range(rounds):
        # a new pipeline of closures every round
        stages = [makers[below(len(makers))](1 + below(97)) for _ in range(2 + below(4))]
        pipe = compose(*stages)
        data = [below(5000) for _ in range(40)]
        out = list(map(pipe, data))
        kept = list(filter(lambda x, m=3 + r % 5: x % m != 0, out))
        kept.sort(key=lambda x: (weight(x), x))
        s = reduce(lambda a, b: (a * 31 + b) & MASK, kept, r)
        add(s & 0xFFFF)
        if r % 8 == 0:
            s ^= sum(collatz(1 + x % 3000) for x in data[:10])
        h = mix(h, s)
    h = mix(h, mean())
    h = mix(h, weight.calls)
    h = mix(h, len(collatz.cache))
    print("calls", weight.calls, "memo", len(collatz.cache))
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 4242)
