"""Recursive workload: n-queens by backtracking, permutations and subsets,
a persistent binary search tree built and walked recursively, a recursive
descent over nested tuples, partition counts with a memo, and Ackermann.

  python recursion.py [ROUNDS] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1
sys.setrecursionlimit(10000)


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def queens(n, row=0, cols=0, d1=0, d2=0):
    if row == n:
        return 1
    count = 0
    for c in range(n):
        a, b = row + c, row - c + n
        if not (cols >> c) & 1 and not (d1 >> a) & 1 and not (d2 >> b) & 1:
            count += queens(n, row + 1, cols | 1 << c, d1 | 1 << a, d2 | 1 << b)
    return count


def permutations(xs):
    if len(xs) <= 1:
        yield list(xs)
        return
    for i in range(len(xs)):
        for rest in permutations(xs[:i] + xs[i + 1:]):
            rest.append(xs[i])
            yield rest


def subsets_sum(xs, target, i=0):
    if target == 0:
        return 1
    if i == len(xs) or target < 0:
        return 0
    return subsets_sum(xs, target - xs[i], i + 1) + subsets_sum(xs, target, i + 1)


class Node:
    __slots__ = ("key", "left", "right", "size")

    def __init__(self, key, left, right):
        self.key = key
        self.left = left
        self.right = right
        self.size = 1 + (left.size if left else 0) + (right.size if right else 0)


def insert(node, key):
    """Persistent insert: returns a new path, shares the rest."""
    if node is None:
        return Node(key, None, None)
    if key < node.key:
        return Node(node.key, insert(node.left, key), node.right)
    if key > node.key:
        return Node(node.key, node.left, insert(node.right, key))
    return node


def height(node):
    return 0 if node is None else 1 + max(height(node.left), height(node.right))


def inorder(node, out):
    if node is not None:
        inorder(node.left, out)
        out.append(node.key)
        inorder(node.right, out)
    return out


def build(depth, seed):
    if depth == 0:
        return seed % 100
    return (build(depth - 1, seed * 3 + 1), seed % 7, build(depth - 1, seed * 5 + 2))


def evaluate(t):
    if isinstance(t, int):
        return t
    a, op, b = t
    x, y = evaluate(a), evaluate(b)
    if op < 3:
        return (x + y) & 0xFFFF
    if op < 5:
        return (x * y + 1) & 0xFFFF
    return x ^ y


def partitions(n, k, memo):
    if n == 0:
        return 1
    if n < 0 or k == 0:
        return 0
    key = (n, k)
    r = memo.get(key)
    if r is None:
        r = memo[key] = partitions(n - k, k, memo) + partitions(n, k - 1, memo)
    return r


def ackermann(m, n):
    if m == 0:
        return n + 1
    if n == 0:
        return ackermann(m - 1, 1)
    return ackermann(m - 1, ackermann(m, n - 1))


def one_round(h, seed):
    h = mix(h, queens(7 + seed % 2))
    for p in permutations(list(range(7))):
        h = mix(h, p[0] * 7 + p[-1])
    xs = [(seed * (i + 3)) % 37 + 1 for i in range(20)]
    h = mix(h, subsets_sum(xs, 60))
    state = seed
    root = None
    for _ in range(20000):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        root = insert(root, state % 100000)
    h = mix(h, height(root))
    h = mix(h, sum(inorder(root, [])[::97]))
    h = mix(h, root.size)
    h = mix(h, evaluate(build(14, seed)))
    memo = {}
    h = mix(h, partitions(300, 300, memo) & MASK)
    h = mix(h, ackermann(2, 100 + seed % 200))
    return h


def main(rounds, seed):
    h = 0
    for r in range(rounds):
        h = one_round(h, seed + r)
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12,
         int(sys.argv[2]) if len(sys.argv) > 2 else 11)
