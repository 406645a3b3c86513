"""Speed of genomic_relationship and gblup as ratios to baselines timed in the same run.

For n = 2000 and n = 5000 individuals with m = 2000 simulated markers (0/1/2, no missing calls):
- genomic_relationship(M) (VanRaden 1) against one product W @ W.T of the centred float matrix;
- gblup(y, 1, G) (REML by the spectral method, BLUE, GEBV, PEV and reliabilities) against one
  numpy.linalg.eigh of the n x n G: the eigendecomposition is its only cubic step.
Goals (issue 6): both ratios <= 1.3. Each timing is the best of a few repeats.
Run: .venv/bin/python benchmarks/gblup_speed.py [n ...]
"""

import sys

import numpy as np
from _timing import timed  # benchmarks/_timing.py

import lmmbook


def main(sizes, m=2000):
    print(f"{'n':>6} {'W W^T (s)':>10} {'G (s)':>8} {'ratio':>6} {'eigh (s)':>9} "
          f"{'gblup (s)':>10} {'ratio':>6}  h2")
    for n in sizes:
        rng = np.random.default_rng(n)
        p = rng.uniform(0.05, 0.95, m)
        M = rng.binomial(2, p, size=(n, m)).astype(float)
        W = M - M.mean(axis=0)
        repeats = 3 if n <= 2000 else 2
        t_mm = timed(lambda W=W: W @ W.T, repeats)
        t_g = timed(lambda M=M: lmmbook.genomic_relationship(M), repeats)
        G = lmmbook.genomic_relationship(M)
        beta = rng.normal(0, np.sqrt(0.4 / (2 * np.sum(p * (1 - p)))), m)
        y = 3 + W @ beta + rng.normal(0, np.sqrt(0.6), n)
        X = np.ones((n, 1))
        t_eigh = timed(lambda G=G: np.linalg.eigh(G), repeats)
        t_gblup = timed(lambda y=y, X=X, G=G: lmmbook.gblup(y, X, G), repeats)
        fit = lmmbook.gblup(y, X, G)
        print(f"{n:>6} {t_mm:>10.2f} {t_g:>8.2f} {t_g / t_mm:>6.2f} {t_eigh:>9.2f} "
              f"{t_gblup:>10.2f} {t_gblup / t_eigh:>6.2f}  {fit.h2:.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 5000])
