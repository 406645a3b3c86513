"""Speed of lmmbook.reml(method="spectral") as a ratio to one numpy.linalg.eigh of the same size.

Builds a genomic-like relationship matrix (VanRaden's G from simulated 0/1/2 genotypes at 2000
markers) for n = 2000 and n = 5000 animals, simulates phenotypes with h2 = 0.4 and an intercept,
and times, in the same process and on the same matrix:

- baseline: one ``numpy.linalg.eigh(G)``;
- ours: ``lmmbook.reml(y, X, K=G)`` (the eigendecomposition, the 1-D search, the BLUPs, the
  standard errors; input validation included).

Goal (chapter 2): ours / baseline <= 1.3 at both sizes. Each timing is the best of `repeats`.
Run: .venv/bin/python benchmarks/reml_speed.py [n ...]
"""

import sys

import numpy as np
from _timing import timed  # benchmarks/_timing.py

import lmmbook


def genomic_problem(n, m=2000, h2=0.4, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, m) * 0.9 + 0.05
    M = rng.binomial(2, p, size=(n, m)).astype(float)
    W = M - 2 * p
    G = W @ W.T / (2 * np.sum(p * (1 - p)))
    alpha = rng.normal(0, np.sqrt(h2 / (2 * np.sum(p * (1 - p)))), m)
    y = 10 + W @ alpha + rng.normal(0, np.sqrt(1 - h2), n)
    return y, np.ones((n, 1)), G




def main(sizes):
    header = f"{'n':>6} {'eigh (s)':>10} {'reml (s)':>10} {'ratio':>7}"
    print(header + "  sigma2_u  sigma2_e  evaluations")
    for n in sizes:
        y, X, G = genomic_problem(n)
        repeats = 3 if n <= 2000 else 2
        t_eigh = timed(lambda G=G: np.linalg.eigh(G), repeats)
        fit = lmmbook.reml(y, X, K=G)
        t_reml = timed(lambda y=y, X=X, G=G: lmmbook.reml(y, X, K=G), repeats)
        print(f"{n:>6} {t_eigh:>10.2f} {t_reml:>10.2f} {t_reml / t_eigh:>7.2f}  "
              f"{fit.sigma2_u:8.4f}  {fit.sigma2_e:8.4f}  {fit.n_iter}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 5000])
