"""Speed of snp_blup (REML + marker effects + GEBVs) as a ratio to one n x n eigh.

n = 5000 individuals, m = 2000 simulated markers: the marker-space route needs a thin SVD of the
5000 x 2000 centred markers instead of the eigendecomposition of a 5000 x 5000 G.
Goal (issue 7): ratio <= 0.5. Best of two repeats each.
Run: .venv/bin/python benchmarks/snpblup_speed.py [n m]
"""

import sys

import numpy as np
from _timing import timed  # benchmarks/_timing.py

import lmmbook


def main(n=5000, m=2000):
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    W = M - 2 * p
    y = 3 + W @ rng.normal(0, np.sqrt(0.4 / (2 * np.sum(p * (1 - p)))), m) + rng.normal(
        0, np.sqrt(0.6), n)
    X = np.ones((n, 1))
    G = lmmbook.genomic_relationship(M)
    t_eigh = timed(lambda: np.linalg.eigh(G), 2)
    t_snp = timed(lambda: lmmbook.snp_blup(y, X, M), 2)
    fit = lmmbook.snp_blup(y, X, M)
    print(f"n = {n}, m = {m}: eigh {t_eigh:.2f} s, snp_blup {t_snp:.2f} s, "
          f"ratio {t_snp / t_eigh:.2f} (goal <= 0.5); h2 = {fit.h2:.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
