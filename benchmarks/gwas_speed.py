"""Speed of gwas (every marker tested after a GBLUP fit) as a ratio to that fit, timed in the same
run, and its time and peak memory at a larger size.

(a) n = 2000 individuals, m = 2000 simulated markers (0/1/2, no missing calls), 5 QTL, h2 = 0.4;
    G = genomic_relationship(M) built outside the timed part. Baseline: gblup(y, X, G) (REML by
    the spectral method, BLUE, GEBV, PEV). Timed: gwas(fit, M) with method="backsolve",
    method="single_marker", and window=50 (backsolve + windows). Goal (issue 16): backsolve
    <= 1x the fit. Best of 3. Checks: the back-solved z equals the single-marker z to 1e-8, and
    the QTL are among the top hits.
(b) n = 5000, m = 50,000 (markers stored as int8; lmmbook converts them to float64 inside):
    gwas after the fit, run once, its time and the peak resident memory of the process
    (resource.getrusage ru_maxrss) before and after it. Goal: under a minute.
Run: .venv/bin/python benchmarks/gwas_speed.py [a] [b] [n m]   (both parts by default)
"""

import resource
import sys
import time

import numpy as np
from _timing import Wrapped, timed  # benchmarks/_timing.py

import lmmbook


def peak_gib() -> float:
    """The peak resident memory of this process so far (Linux gives ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def simulate(n, m, n_qtl=5, h2=0.4, seed=16, dtype=float):
    """0/1/2 markers (independent loci), y = 3 + the QTL's part + noise with heritability h2."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(n, m)).astype(dtype)
    qtl = np.sort(rng.choice(m, n_qtl, replace=False))
    g = (M[:, qtl] - 2 * p[qtl]) @ rng.normal(0, 1, n_qtl)
    g *= np.sqrt(h2 / g.var())
    y = 3 + g + rng.normal(0, np.sqrt(1 - h2), n)
    return M, y, np.ones((n, 1)), qtl


def part_a(n=2000, m=2000):
    M, y, X, qtl = simulate(n, m)
    G = lmmbook.genomic_relationship(M)
    t_fit = timed(lambda: lmmbook.gblup(y, X, G), 3)
    fit = lmmbook.gblup(y, X, G)
    t_bs = timed(lambda: lmmbook.gwas(fit, M), 3)
    t_sm = timed(lambda: lmmbook.gwas(fit, M, method="single_marker"), 3)
    t_win = timed(lambda: lmmbook.gwas(fit, M, window=50), 3)
    bs = lmmbook.gwas(fit, M)
    sm = lmmbook.gwas(fit, M, method="single_marker")
    res = lmmbook.gwas(fit, M, window=50)
    print(f"(a) n = {n}, m = {m}, {len(qtl)} QTL, h2 = {fit.h2:.3f}; best of 3")
    print(f"    gblup fit (baseline)      {t_fit:6.2f} s")
    for label, t in [("gwas backsolve", t_bs), ("gwas single_marker", t_sm),
                     ("gwas backsolve, window=50", t_win)]:
        print(f"    {label:<26}{t:6.2f} s  ratio {t / t_fit:.2f}")
    print("    goal: backsolve <= 1x the fit")
    with Wrapped(backsolve=("lmmbook.gwas", "backsolve_snp_effects", None),
                 G_oo=("lmmbook.gwas", "cross_product", None),
                 eigh=("lmmbook._spectral", "rotate_eigh", None)) as stages:
        start = time.perf_counter()
        lmmbook.gwas(fit, M)
        total = time.perf_counter() - start
    rest = total - sum(stages.seconds.values())
    print(f"    inside one backsolve call ({total:.2f} s): back-solving the GEBVs "
          f"{stages.seconds['backsolve']:.2f} s, G_oo rebuilt {stages.seconds['G_oo']:.2f} s, "
          f"its eigendecomposition {stages.seconds['eigh']:.2f} s, the rest (W_o'U, "
          f"diag(W_o'PW_o)) {rest:.2f} s")
    z_bs, z_sm = bs["z"].to_numpy(), sm["z"].to_numpy()
    same_nan = bool(np.array_equal(np.isnan(z_bs), np.isnan(z_sm)))
    diff = np.nanmax(np.abs(z_bs - z_sm))
    top = np.argsort(-np.abs(np.nan_to_num(z_bs)))[:len(qtl)]
    top20 = np.argsort(-np.abs(np.nan_to_num(z_bs)))[:20]
    print(f"    backsolve z == single_marker z: max |diff| < 1e-8: {diff < 1e-8} "
          f"(same NaNs: {same_nan}); QTL among the top {len(qtl)} hits: "
          f"{len(np.intersect1d(top, qtl))}/{len(qtl)}, among the top 20: "
          f"{len(np.intersect1d(top20, qtl))}/{len(qtl)}; Bonferroni hits "
          f"{int(np.sum(bs['p'] < 0.05 / m))}; window shares sum to "
          f"{float(res.windows['share'].sum()):.6f}")


def part_b(n=5000, m=50_000):
    start = time.perf_counter()
    M, y, X, qtl = simulate(n, m, dtype=np.int8)
    G = lmmbook.genomic_relationship(M)
    fit = lmmbook.gblup(y, X, G)
    t_setup = time.perf_counter() - start
    before = peak_gib()
    start = time.perf_counter()
    bs = lmmbook.gwas(fit, M)
    t_gwas = time.perf_counter() - start
    after = peak_gib()
    top = np.argsort(-np.abs(np.nan_to_num(bs["z"].to_numpy())))[:len(qtl)]
    print(f"(b) n = {n}, m = {m} (int8 markers, {M.nbytes / 2**30:.2f} GiB; as float64 "
          f"{M.size * 8 / 2**30:.2f} GiB), h2 = {fit.h2:.3f}; once")
    print(f"    simulation + G + gblup fit {t_setup:6.1f} s (peak memory {before:.2f} GiB)")
    print(f"    gwas backsolve             {t_gwas:6.1f} s (goal < 60 s); peak memory of the "
          f"process after it {after:.2f} GiB (+{after - before:.2f} GiB)")
    print(f"    QTL among the top {len(qtl)} hits: {len(np.intersect1d(top, qtl))}/{len(qtl)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    sizes = [int(a) for a in args if a.isdigit()]
    parts = [a for a in args if a in ("a", "b")] or ["a", "b"]
    if "a" in parts:
        part_a()
    if "b" in parts:
        part_b(*sizes[:2])
