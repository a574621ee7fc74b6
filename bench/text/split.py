"""bma's train/valid/test split (src/data/mod.rs `split_indices`, src/rng.rs), in Python.

The stratified split of `data::load`: per class (classes sorted by label), the samples'
row indices are shuffled with bma's xoshiro256++ generator seeded by splitmix64, and
cut at round(m * train) and round(m * valid). `python3 split.py --selftest` prints the
indices the Rust test `split_indices_match_the_python_replica` expects.
"""
import math
import sys

MASK = (1 << 64) - 1


def _splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Rng:
    def __init__(self, seed):
        st = seed & MASK
        self.s = []
        for _ in range(4):
            st, v = _splitmix64(st)
            self.s.append(v)

    def next_u64(self):
        s = self.s
        result = (_rotl((s[0] + s[3]) & MASK, 23) + s[0]) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def below(self, n):
        return 0 if n == 0 else (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def _round(x):
    # Rust's f64::round: half away from zero (x >= 0 here).
    return math.floor(x + 0.5)


def split_indices(labels, fractions, seed):
    """Train, valid and test row indices for class labels (strings), as bma splits them."""
    classes = sorted(set(labels))
    total = sum(fractions)
    a, b = fractions[0] / total, fractions[1] / total
    rng = Rng(seed)
    groups = [[] for _ in classes]
    index = {c: i for i, c in enumerate(classes)}
    for i, y in enumerate(labels):
        groups[index[y]].append(i)
    tr, va, te = [], [], []
    for g in groups:
        rng.shuffle(g)
        m = len(g)
        ntr = min(_round(m * a), m)
        nva = min(_round(m * b), m - ntr)
        tr += g[:ntr]
        va += g[ntr:ntr + nva]
        te += g[ntr + nva:]
    for part in (va, te):
        if not part and len(tr) > 1:
            part.append(tr.pop())
    for part in (tr, va, te):
        rng.shuffle(part)
    return tr, va, te


if __name__ == "__main__" and sys.argv[1:] == ["--selftest"]:
    labels = ["b", "a", "b", "a", "a", "b", "a", "b", "b", "b", "a", "a", "b", "a", "b", "b", "a", "b", "a", "a"]
    print(split_indices(labels, [0.6, 0.2, 0.2], 3))
    print(Rng(7).next_u64(), Rng(7).below(1000))
