"""A million animals: building the pedigree, inbreeding, A^-1 and animal-model BLUP by PCG.

Two simulated pedigrees of 1,000,000 animals (chapter 3):
- "beef-like": 10 discrete generations of 100,000, 1,000 sires a generation, 2 % unknown sires;
- "dairy-like": 20 generations of 50,000, 50 sires a generation (deep and highly related, where
  the classic inbreeding algorithms slow down most).
Records: one per animal of generation >= 1 (90 % or 95 % of the animals), y = mu + tbv + e with
h2 = 0.3, a fixed effect per generation.

Compiled code is loaded once before timing (a warm-up on a 4-animal pedigree). Printed as ratios
to a baseline timed in the same run: assembling a 1M x 1M scipy.sparse CSC
matrix from 9M COO entries (the unavoidable cost of A^-1's nonzeros).
Goals (issue 5): Pedigree from IDs + inbreeding + A^-1 <= 5x the baseline; PCG to a relative
residual of 1e-8 <= 60 s; peak memory <= 4 GiB.
Run: .venv/bin/python benchmarks/pedigree_scale.py [beef|dairy ...]
"""

import resource
import sys
import time

import numpy as np

import lmmbook


def baseline(n=1_000_000, nnz=9_000_000, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, n, nnz), rng.integers(0, n, nnz)
    vals = rng.random(nnz)
    import scipy.sparse as sp

    start = time.perf_counter()
    sp.csc_array((vals, (rows, cols)), shape=(n, n))
    return time.perf_counter() - start


def warm_up():
    """Load the compiled loops once (numba's cache still costs ~0.5 s per process): the benchmark
    measures the algorithms, not that one-off."""
    ped = lmmbook.Pedigree([1, 2, 3, 4], [0, 0, 1, 1], [0, 0, 2, 2])
    ped.inbreeding()
    ped.A_inverse()


def run(name, generations, per_generation, sires, unknown):
    t0 = time.perf_counter()
    d = lmmbook.simulate_pedigree(generations - 1, per_generation, n_sires=sires,
                                  unknown_sire_rate=unknown, sigma2_a=0.3, seed=1)
    t_sim = time.perf_counter() - t0
    animal, sire, dam = d["animal"].to_numpy(), d["sire"].to_numpy(), d["dam"].to_numpy()

    start = time.perf_counter()
    ped = lmmbook.Pedigree(animal, sire, dam)
    t_ped = time.perf_counter() - start
    start = time.perf_counter()
    F = ped.inbreeding()
    t_f = time.perf_counter() - start
    start = time.perf_counter()
    A_inv = ped.A_inverse()
    t_ainv = time.perf_counter() - start

    rng = np.random.default_rng(2)
    rec = d[d["generation"] > 0]
    y = 100 + rec["tbv"].to_numpy() + rng.normal(0, np.sqrt(0.7), len(rec))
    X = lmmbook.incidence(rec["generation"].to_numpy())
    Z = ped.incidence(rec["animal"].to_numpy())
    start = time.perf_counter()
    fit = lmmbook.solve_mme(y, X, Z, A_inv, 0.3, 0.7, method="pcg", tol=1e-8)
    t_pcg = time.perf_counter() - start
    r = np.corrcoef(fit.u[ped.index(rec["animal"].to_numpy())], rec["tbv"])[0, 1]
    return {"name": name, "animals": len(ped), "records": len(rec), "simulate": t_sim,
            "pedigree": t_ped, "inbreeding": t_f, "A_inverse": t_ainv, "pcg": t_pcg,
            "iterations": fit.n_iter, "mean F": F.mean(), "max F": F.max(),
            "nnz A_inv": A_inv.nnz, "r(EBV, TBV)": r}


def main(which):
    warm_up()
    t_base = min(baseline() for _ in range(3))
    print(f"baseline: assemble 1M x 1M CSC from 9M COO entries: {t_base:.2f} s")
    setups = {"beef": (10, 100_000, 1_000, 0.02), "dairy": (20, 50_000, 50, 0.0)}
    for name in which:
        res = run(name, *setups[name])
        build = res["pedigree"] + res["inbreeding"] + res["A_inverse"]
        print(f"\n{name}-like: {res['animals']:,} animals, {res['records']:,} records "
              f"(simulated in {res['simulate']:.1f} s)")
        print(f"  Pedigree from IDs {res['pedigree']:.2f} s, inbreeding {res['inbreeding']:.2f} s "
              f"(mean F {res['mean F']:.4f}, max {res['max F']:.3f}), "
              f"A^-1 {res['A_inverse']:.2f} s ({res['nnz A_inv']:,} nonzeros)")
        print(f"  build / baseline = {build / t_base:.2f}   (goal <= 5)")
        print(f"  PCG to 1e-8: {res['pcg']:.1f} s, {res['iterations']} iterations (goal <= 60 s); "
              f"r(EBV, TBV) = {res['r(EBV, TBV)']:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"\npeak memory of this process: {peak:.2f} GiB (goal <= 4)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["beef", "dairy"])
