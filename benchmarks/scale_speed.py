"""SNP-BLUP from a PLINK fileset at scale: chunked PCG against the dense marker-space solve.

Simulates a fileset on disk (haplotypes with LD between neighbouring markers, 1% missing calls,
10% of the animals without a record), then runs, each in a fresh process so that its peak
resident memory is its own:

- chunked: ``snp_blup(y, X, read_plink(prefix, chunks=k), sigma2_alpha=..., sigma2_e=...)`` -
  PCG on the marker-space MME, genotypes streamed from the .bed in int8 blocks;
- dense: the whole matrix read as float64, centred, W_o'W_o built (BLAS syrk), the MME with the
  fixed effects solved by Cholesky, GEBVs W alpha.

It prints the times, their ratio (goal <= 0.5), the peak memory of each process (goal for the
chunked one < 0.6 GiB at 30,000 x 4,000), the PCG iterations and the largest difference between
the two sets of GEBVs.

    python benchmarks/scale_speed.py                 # 30,000 x 4,000
    python benchmarks/scale_speed.py --n 5000 --m 1000
    python benchmarks/scale_speed.py --n 100000 --m 5000 --no-dense
    python benchmarks/scale_speed.py --large         # 100,000 x 50,000, chunked only (1.25 GB .bed;
                                                     # simulating it alone takes several minutes)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@njit(cache=True)
def _next_marker(hap, p, alpha, g, calls, rng):
    """One marker: each haplotype keeps its allele at the previous marker with probability 0.95
    (LD between neighbours) or draws a new one with frequency p; 1% of the calls missing. One
    uniform per haplotype decides all three."""
    n = hap.shape[1]
    for i in range(n):
        count = 0
        missing = False
        for h in range(2):
            u = rng.random()
            if u < 0.05:
                hap[h, i] = 1 if u < 0.05 * p else 0
            elif h == 0 and u < 0.06:
                missing = True
            count += hap[h, i]
        g[i] += alpha * count
        calls[i] = -127 if missing else count


def simulate(folder: Path, n: int, m: int, seed: int = 1) -> Path:
    """Write folder/g.bed/.bim/.fam and folder/y.npy, column by column (never n x m in memory)."""
    from bed_reader import create_bed

    rng = np.random.default_rng(seed)
    p = rng.beta(0.8, 0.8, m).clip(0.02, 0.98)
    alpha = rng.normal(size=m)
    hap = (rng.random((2, n)) < p[0]).astype(np.int8)
    g = np.zeros(n)
    calls = np.empty(n, np.int8)
    prefix = folder / "g"
    with create_bed(prefix.with_suffix(".bed"), iid_count=n, sid_count=m,
                    properties={"iid": [f"a{i}" for i in range(n)]}) as bed:
        for j in range(m):
            _next_marker(hap, p[j], alpha[j], g, calls, rng)
            bed.write(calls)
    var_g = float(np.var(g))
    y = g + rng.normal(scale=np.sqrt(var_g), size=n)  # h2 = 0.5
    y[rng.random(n) < 0.1] = np.nan
    het = np.sum(2 * p * (1 - p))
    np.save(folder / "y.npy", y)
    # alpha_j ~ N(0, 1) so sigma2_alpha = 1 and sigma2_e = var(g) (about 2 sum pq with LD aside)
    (folder / "variances.json").write_text(json.dumps({"sigma2_alpha": 1.0, "sigma2_e": var_g,
                                                       "two_sum_pq": float(het)}))
    return prefix


def run_chunked(prefix: Path, chunk: int, cache_bytes: int) -> dict:
    import lmmbook

    base = peak_rss_gib()
    y = np.load(prefix.parent / "y.npy")
    var = json.loads((prefix.parent / "variances.json").read_text())
    X = np.ones((len(y), 1))
    start = time.perf_counter()
    lazy = lmmbook.read_plink(prefix, chunks=chunk)
    fit = lmmbook.snp_blup(y, X, lazy, sigma2_alpha=var["sigma2_alpha"],
                           sigma2_e=var["sigma2_e"], cache_bytes=cache_bytes)
    seconds = time.perf_counter() - start
    np.save(prefix.parent / "gebv_chunked.npy", fit.gebv)
    return {"seconds": seconds, "iterations": fit.iterations, "peak_gib": peak_rss_gib(),
            "import_gib": base}


def run_dense(prefix: Path) -> dict:
    from scipy.linalg import cho_factor, cho_solve
    from scipy.linalg.blas import dsyrk

    import lmmbook
    from lmmbook.markers import as_genotypes, centred_polymorphic

    base = peak_rss_gib()
    y = np.load(prefix.parent / "y.npy")
    var = json.loads((prefix.parent / "variances.json").read_text())
    X = np.ones((len(y), 1))
    start = time.perf_counter()
    geno = as_genotypes(lmmbook.read_plink(prefix))
    W, poly, _ = centred_polymorphic(geno, geno.allele_freq)
    o = np.isfinite(y)
    W_o, X_o = W[o], X[o]
    q = X.shape[1]
    C = np.empty((q + W.shape[1],) * 2)
    C[q:, q:] = dsyrk(1.0, W_o, trans=1, lower=1)  # lower triangle of W_o'W_o
    C[q:, q:] += var["sigma2_e"] / var["sigma2_alpha"] * np.eye(W.shape[1])
    C[q:, :q] = W_o.T @ X_o
    C[:q, :q] = X_o.T @ X_o
    sol = cho_solve(cho_factor(C, lower=True), np.concatenate([X_o.T @ y[o], W_o.T @ y[o]]))
    gebv = W @ sol[q:]
    seconds = time.perf_counter() - start
    np.save(prefix.parent / "gebv_dense.npy", gebv)
    return {"seconds": seconds, "peak_gib": peak_rss_gib(), "import_gib": base}


def child(kind: str, prefix: Path, chunk: int, cache_bytes: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--prefix", str(prefix),
                          "--chunk", str(chunk), "--cache-bytes", str(cache_bytes)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--m", type=int, default=4_000)
    parser.add_argument("--chunk", type=int, default=2_000, help="animals per block")
    parser.add_argument("--cache-bytes", type=int, default=None,
                        help="int8 blocks kept in memory (default 0.5 GiB; 2.5 GiB with --large)")
    parser.add_argument("--large", action="store_true",
                        help="100,000 x 50,000, chunked only (dense: 40 GB of float64)")
    parser.add_argument("--no-dense", action="store_true", help="the chunked run only")
    parser.add_argument("--folder", type=Path, help="keep the fileset here (default: a temp dir)")
    parser.add_argument("--child", choices=["chunked", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = run_chunked(args.prefix, args.chunk, args.cache_bytes) if args.child == "chunked" \
            else run_dense(args.prefix)
        print(json.dumps(run))
        return
    if args.large:
        args.n, args.m = 100_000, 50_000
    if args.cache_bytes is None:
        args.cache_bytes = 5 * 2**29 if args.large else 2**29
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        prefix = simulate(folder, args.n, args.m)
        bed_gib = prefix.with_suffix(".bed").stat().st_size / 2**30
        print(f"n = {args.n:,}, m = {args.m:,}: .bed {bed_gib:.3f} GiB simulated in "
              f"{time.perf_counter() - start:.1f} s (dense float64 would be "
              f"{8 * args.n * args.m / 2**30:.2f} GiB)")
        chunked = child("chunked", prefix, args.chunk, args.cache_bytes)
        print(f"chunked PCG: {chunked['seconds']:.2f} s, {chunked['iterations']} iterations, "
              f"peak RSS {chunked['peak_gib']:.3f} GiB (after imports {chunked['import_gib']:.3f};"
              f" blocks of {args.chunk} animals, cache {args.cache_bytes / 2**30:.2f} GiB)")
        if args.large or args.no_dense:
            return
        dense = child("dense", prefix, args.chunk, args.cache_bytes)
        print(f"dense marker space: {dense['seconds']:.2f} s, peak RSS {dense['peak_gib']:.3f} GiB")
        diff = np.abs(np.load(folder / "gebv_chunked.npy") - np.load(folder / "gebv_dense.npy"))
        scale = np.abs(np.load(folder / "gebv_dense.npy")).max()
        print(f"chunked / dense time: {chunked['seconds'] / dense['seconds']:.2f}x (goal <= 0.5); "
              f"max |GEBV difference| / max |GEBV| = {diff.max() / scale:.1e}")


if __name__ == "__main__":
    main()
