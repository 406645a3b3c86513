"""Single-step GBLUP by PCG at scale: time per stage, ratios to one dense inversion, peak memory.

Simulated data (chapter 3's pedigree simulator, genes dropped down it):
- "100k": 10 discrete generations of 10,000 (100 sires a generation, 2 % unknown sires);
  6,000 genotyped animals: every sire, then animals of the two youngest generations at random;
- "1M": 10 generations of 100,000, also 100 sires a generation (AI bulls, each with about 1,000
  offspring; effective size ~400 as in "100k"): with pedigree_scale.py's 1,000 sires a generation
  the animals are so little inbred (effective size ~3,900) that G's diagonal is mostly sampling
  noise (its correlation with A22's was 0.17); 30,000 genotyped as above.
Genotypes (4,000 SNPs, int8) are dropped down the pedigree for the genotyped animals and their
ancestors only: founder alleles at frequencies drawn from U(0.05, 0.95), each offspring receives
one of each parent's two alleles at random at every locus (unlinked loci; a parent of unknown
identity passes a base-population allele). The first 300 SNPs are QTL, dropped the same way for
every animal; their effects make the true breeding values, scaled to sigma2_a = 0.3 in the
founders. Records y = 100 + tbv + e (h2 = 0.3) for every animal of generations 1-8; the youngest
generation has none, and the correlation of its genotyped animals' GEBVs with their true
breeding values is printed as a check of correctness (the QTL are among the SNPs, so G carries
their Mendelian sampling).

Goals (issue 13), each timing one end-to-end call of ``lmmbook.ssgblup(method="pcg", tol=1e-8)``
from the genotypes (G, A22, tuning, both inverses or the APY parts, the Schur factorisation that
applies A22^-1, PCG):
- 100k, G_t^-1 dense: <= 6x one LAPACK Cholesky inversion (potrf + potri, the fastest dense
  inversion) of a 6000 x 6000 SPD matrix, timed in the same run (numpy.linalg.inv, an LU
  inverse, is printed for reference);
- 100k, APY with a core of 2,000: <= 2x the same baseline;
- 1M with APY (core 2,500): minutes, peak memory under 12 GiB (run only when asked for).
Each stage is timed inside the call by wrapping the functions ssgblup calls (microseconds of
overhead per call), so the stages and the total come from the same run. Compiled code is loaded
beforehand by a small single-step fit. Peak memory is that of the whole process (ru_maxrss).
Run: .venv/bin/python benchmarks/singlestep_speed.py [full] [apy] [1M]   (default: full apy)
"""

import contextlib
import resource
import sys
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import scipy.linalg as la

import lmmbook
from lmmbook import markers, mme, singlestep
from lmmbook.pedigree import Pedigree, _Ancestry

N_SNP, N_QTL, H2, SIGMA2_A = 4_000, 300, 0.3, 0.3
PCG = "PCG: A^-1 x, vectors, preconditioner"


# --- data ---------------------------------------------------------------------------------


def drop_genes(sire, dam, generation, p, rng, chunk=256):
    """Genotypes (n, len(p)) int8 by gene dropping, for animals listed parents first (0-based
    parent rows, -1 unknown) in discrete generations: one generation at a time, vectorised,
    loci in chunks (two int8 haplotypes per animal and locus of the chunk)."""
    n, m = len(sire), len(p)
    out = np.empty((n, m), np.int8)
    gens = [np.flatnonzero(generation == g) for g in np.unique(generation)]
    for lo in range(0, m, chunk):
        q = p[lo:lo + chunk]
        h0 = np.empty((n, len(q)), np.int8)
        h1 = np.empty((n, len(q)), np.int8)
        for idx in gens:
            for h, parent in ((h0, sire[idx]), (h1, dam[idx])):
                known = parent >= 0
                pick = rng.random((int(known.sum()), len(q))) < 0.5
                h[idx[known]] = np.where(pick, h1[parent[known]], h0[parent[known]])
                h[idx[~known]] = rng.random((int((~known).sum()), len(q))) < q
        out[:, lo:lo + chunk] = h0 + h1
    return out


def ancestors_and(rows, sire, dam, generation):
    """Mask of the animals in ``rows`` and all their ancestors (parents are a generation older)."""
    keep = np.zeros(len(sire), bool)
    keep[rows] = True
    for g in range(int(generation.max()), 0, -1):
        mine = keep & (generation == g)
        for parent in (sire[mine], dam[mine]):
            keep[parent[parent >= 0]] = True
    return keep


def simulate(per_generation, n_sires, n_genotyped, seed=1):
    t0 = time.perf_counter()
    d = lmmbook.simulate_pedigree(9, per_generation, n_sires=n_sires, unknown_sire_rate=0.02,
                                  seed=seed)
    rng = np.random.default_rng(seed + 1)
    animal = d["animal"].to_numpy()
    sire0 = d["sire"].to_numpy() - 1  # IDs are 1..n in row order: rows, -1 unknown
    dam0 = d["dam"].to_numpy() - 1
    generation = d["generation"].to_numpy()
    sires = np.unique(sire0[sire0 >= 0])
    young = np.setdiff1d(np.flatnonzero(generation >= generation.max() - 1), sires)
    g_rows = np.sort(np.concatenate(
        [sires, rng.choice(young, n_genotyped - len(sires), replace=False)]))
    p = rng.uniform(0.05, 0.95, N_SNP)

    # QTL for everyone (true breeding values), the other SNPs for the genotyped and ancestors
    qtl = drop_genes(sire0, dam0, generation, p[:N_QTL], rng)
    keep = np.flatnonzero(ancestors_and(g_rows, sire0, dam0, generation))
    new = np.full(len(animal), -1)
    new[keep] = np.arange(len(keep))
    sub = [np.where(par[keep] >= 0, new[np.maximum(par[keep], 0)], -1) for par in (sire0, dam0)]
    rest = drop_genes(*sub, generation[keep], p[N_QTL:], rng)
    M = np.concatenate([qtl[g_rows], rest[new[g_rows]]], axis=1)
    del rest

    alpha = rng.normal(0.0, 1.0, N_QTL)
    alpha *= np.sqrt(SIGMA2_A / np.sum(2 * p[:N_QTL] * (1 - p[:N_QTL]) * alpha**2))
    tbv = (qtl - 2 * p[:N_QTL]) @ alpha
    del qtl
    recorded = (generation >= 1) & (generation < generation.max())
    e = rng.normal(0.0, np.sqrt(SIGMA2_A * (1 - H2) / H2), len(animal))
    y = pd.Series(100 + tbv[recorded] + e[recorded], index=animal[recorded])
    ped = Pedigree(animal, d["sire"].to_numpy(), d["dam"].to_numpy())
    return {"ped": ped, "M": M, "animal": animal, "ids": animal[g_rows], "y": y, "tbv": tbv,
            "young": g_rows[generation[g_rows] == generation.max()], "n_ancestry": len(keep),
            "seconds": time.perf_counter() - t0}


# --- stage timers -------------------------------------------------------------------------


class Stages:
    """Wraps the functions ssgblup calls and adds up the seconds spent in each, exclusive of the
    wrapped functions it calls in turn (so the stages add up to the whole call), and the calls;
    ``inclusive`` keeps the whole time of a few."""

    def __init__(self):
        self.seconds, self.calls, self.inclusive = defaultdict(float), defaultdict(int), {}
        self._children = []

    def wrap(self, name, f):
        def timed_f(*args, **kwargs):
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = self._children.pop()
                self.seconds[name] += elapsed - nested
                self.inclusive[name] = self.inclusive.get(name, 0.0) + elapsed
                self.calls[name] += 1
                if self._children:
                    self._children[-1] += elapsed
        return timed_f

    @contextlib.contextmanager
    def installed(self):
        targets = [
            (markers, "centred_polymorphic", "W (centred genotypes, missing calls)"),
            (markers, "cross_product", "G = W W'/c, float64"),
            (markers, "centred_cross_product", "G = W W'/c"),
            (singlestep, "_genomic_columns", "G[:, core], diag G"),
            (Pedigree, "inbreeding", "inbreeding"),
            (Pedigree, "_ancestry_of", "ancestry of the genotyped"),
            (_Ancestry, "columns", "A22 or A22[:, core] besides the A x"),
            (_Ancestry, "times", "A x products (Colleau)"),
            (singlestep, "_offdiagonal_correlation", "correlation of G's and A22's elements"),
            (Pedigree, "A_inverse", "A^-1"),
            (singlestep, "_spd_inverse", "G_t^-1 (potrf + potri)"),
            (singlestep, "_apy", "APY parts (chol G_cc, P, m)"),
            (np.linalg, "eigvalsh", "APY rank check (eigvalsh G_cc)"),
            (mme, "_pcg", "PCG: A^-1 x, vectors, preconditioner"),
            (singlestep._GenomicParts, "G_inv_times", "PCG: G_t^-1 x"),
        ]
        saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
        schur = singlestep._Schur
        init = self.wrap("Schur: A^-1 of the ancestry, splu(A^uu)", schur.__init__)
        product = self.wrap("PCG: A22^-1 x", schur.__matmul__)

        class TimedSchur(schur):
            def __init__(self, *args, **kwargs):
                init(self, *args, **kwargs)

            def __matmul__(self, x):
                return product(self, x)

        try:
            for (owner, attr, name), (_, _, f) in zip(targets, saved, strict=True):
                setattr(owner, attr, self.wrap(name, f))
            singlestep._Schur = TimedSchur
            yield self
        finally:
            for owner, attr, f in saved:
                setattr(owner, attr, f)
            singlestep._Schur = schur


# --- runs ---------------------------------------------------------------------------------


def baseline(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    K = B @ B.T / n + np.eye(n)
    del B

    def potr():
        c, info = la.lapack.dpotrf(K, lower=1)
        inv, info2 = la.lapack.dpotri(c, lower=1, overwrite_c=1)
        assert info == 0 and info2 == 0

    t_chol = min(_seconds(potr) for _ in range(2))
    t_lu = _seconds(lambda: np.linalg.inv(K))
    return t_chol, t_lu


def _seconds(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def warm_up():
    """Load the compiled loops once (numba's cache still costs ~0.5 s a process). Its founders'
    sons are hardly inbred, so the diagonals of G and A22 need not correlate: no check."""
    data = simulate(200, 10, 120, seed=7)
    core = data["ids"][:40]
    for c in (None, core):
        lmmbook.ssgblup(data["y"], np.ones((len(data["ped"]), 1)), data["ped"], data["M"],
                        data["ids"], sigma2_u=SIGMA2_A, sigma2_e=SIGMA2_A * (1 - H2) / H2,
                        core=c, method="pcg", min_correlation=None)


def ped_ids_of(data, rows):
    return data["animal"][rows]


def fit(data, core):
    ped = data["ped"]
    X = np.ones((len(ped), 1))
    stages = Stages()
    with stages.installed():
        start = time.perf_counter()
        res = lmmbook.ssgblup(data["y"], X, ped, data["M"], data["ids"], sigma2_u=SIGMA2_A,
                              sigma2_e=SIGMA2_A * (1 - H2) / H2, core=core, method="pcg",
                              tol=1e-8)
        total = time.perf_counter() - start
    young = data["young"]
    u_young = res.u[ped.index(ped_ids_of(data, young))]
    r = float(np.corrcoef(u_young, data["tbv"][young])[0, 1])
    return res, total, stages, r


def report(label, data, core, t_base, goal):
    res, total, st, r = fit(data, core)
    print(f"\n{label}: {len(data['ped']):,} animals ({data['n_ancestry']:,} genotyped or their "
          f"ancestors), {len(data['ids']):,} genotyped, {data['M'].shape[1]:,} SNPs, "
          f"{res.n_obs:,} records" + ("" if core is None else f", APY core {len(core):,}")
          + f"  [data simulated in {data['seconds']:.1f} s]")
    for name, sec in st.seconds.items():
        calls = st.calls[name]
        per = f"  ({calls} calls, {1e3 * sec / calls:.1f} ms each)" if calls > 2 else ""
        print(f"  {name:<44} {sec:8.2f} s{per}")
    print(f"  {'the rest (checks, tuning, blending, rhs)':<44} "
          f"{total - sum(st.seconds.values()):8.2f} s")
    t_pcg = st.inclusive[PCG]
    print(f"  PCG: {res.n_iter} iterations to 1e-8 in {t_pcg:.2f} s, "
          f"{1e3 * t_pcg / max(res.n_iter, 1):.1f} ms per iteration")
    print(f"  tuning a = {res.tuning[0]:.3f}, b = {res.tuning[1]:.3f}; r(diag G, diag A22) = "
          f"{res.correlations[0]:.3f}, r(offdiag) = {res.correlations[1]:.3f}")
    print(f"  r(GEBV, TBV) of the {len(data['young']):,} genotyped young animals without "
          f"records: {r:.3f}")
    line = f"  end to end {total:.1f} s"
    if t_base:
        line += f" = {total / t_base:.2f}x the dense inversion (goal <= {goal})"
    print(line)
    return total


def main(which):
    warm_up()
    if {"full", "apy"} & set(which):
        t_chol, t_lu = baseline()
        print(f"baseline: Cholesky inversion (dpotrf + dpotri) of a 6000 x 6000 SPD matrix "
              f"{t_chol:.2f} s (best of 2); numpy.linalg.inv {t_lu:.2f} s (reference)")
        data = simulate(10_000, 100, 6_000)
        if "full" in which:
            report("100k, G_t^-1 dense", data, None, t_chol, 6)
        if "apy" in which:
            core = np.random.default_rng(3).choice(data["ids"], 2_000, replace=False)
            report("100k, APY", data, core, t_chol, 2)
        del data
    if "1M" in which:
        data = simulate(100_000, 100, 30_000)
        core = np.random.default_rng(3).choice(data["ids"], 2_500, replace=False)
        report("1M, APY", data, core, None, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"\npeak memory of this process: {peak:.2f} GiB" + (" (goal for 1M: < 12)"
                                                              if "1M" in which else ""))


if __name__ == "__main__":
    main(sys.argv[1:] or ["full", "apy"])
