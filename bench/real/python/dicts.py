"""Dictionary workload: an inverted index over generated documents, word
and bigram counts, dict and set comprehensions, merging, and breadth-first
search over a graph stored as a dict of dicts.

  python dicts.py [DOCS] [SEED]     prints 'checksum N'
"""
import sys

MASK = (1 << 61) - 1
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "to", "sa", "vi", "de", "po",
             "gu", "ha", "ji", "ze", "fo", "bi", "qu", "wy", "xo", "ce"]


def mix(h, v):
    return ((h ^ (v & MASK)) * 1099511628211 + 7) & MASK


def strsum(s):
    v = 0
    for ch in s:
        v = (v * 131 + ord(ch)) & 0xFFFFFFFF
    return v


class Rng:
    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 4) % n


def vocabulary(rng, n):
    words = set()
    while len(words) < n:
        words.add("".join(SYLLABLES[rng.below(len(SYLLABLES))] for _ in range(1 + rng.below(3))))
    return sorted(words)


def document(rng, vocab, length):
    # a skewed choice: low indices are much more common
    return [vocab[min(rng.below(len(vocab)), rng.below(len(vocab)))] for _ in range(length)]


def build_index(docs):
    index = {}
    counts = {}
    bigrams = {}
    for i, doc in enumerate(docs):
        prev = None
        for w in doc:
            postings = index.get(w)
            if postings is None:
                index[w] = postings = {}
            postings[i] = postings.get(i, 0) + 1
            counts[w] = counts.get(w, 0) + 1
            if prev is not None:
                key = (prev, w)
                bigrams[key] = bigrams.get(key, 0) + 1
            prev = w
    return index, counts, bigrams


def query(index, words):
    sets = [set(index.get(w, {})) for w in words]
    if not sets:
        return set()
    sets.sort(key=len)
    result = sets[0]
    for s in sets[1:]:
        result = result & s
    return result


def graph_from_bigrams(bigrams, min_count):
    g = {}
    for (a, b), n in bigrams.items():
        if n >= min_count:
            g.setdefault(a, {})[b] = n
            g.setdefault(b, {})
    return g


def bfs(g, start):
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for u in frontier:
            du = dist[u] + 1
            for v in g[u]:
                if v not in dist:
                    dist[v] = du
                    nxt.append(v)
        frontier = nxt
    return dist


def main(ndocs, seed):
    rng = Rng(seed)
    vocab = vocabulary(rng, 2000)
    h = 0
    total = {}
    for part in range(4):
        docs = [document(rng, vocab, 20 + rng.below(60)) for _ in range(ndocs // 4)]
        index, counts, bigrams = build_index(docs)
        # merge the counts of this part into the total
        for w, n in counts.items():
            total[w] = total.get(w, 0) + n
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        for w, n in top:
            h = mix(h, strsum(w) ^ n)
        for q in range(300):
            words = [vocab[rng.below(60)] for _ in range(2 + q % 2)]
            h = mix(h, len(query(index, words)))
        g = graph_from_bigrams(bigrams, 2)
        lengths = {}
        for start in sorted(g)[:30]:
            for v, d in bfs(g, start).items():
                lengths[d] = lengths.get(d, 0) + 1
        h = mix(h, sum(d * n for d, n in lengths.items()))
        inverse = {n: w for w, n in sorted(counts.items())}
        h = mix(h, len(inverse))
        h = mix(h, len({w[:2] for w in counts}))
    h = mix(h, sum(n * strsum(w) for w, n in total.items()))
    print("words", len(total))
    print("checksum", h)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 99)
