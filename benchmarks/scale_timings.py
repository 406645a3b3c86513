"""Time chunked SNP-BLUP against the dense marker-space solve over sizes, for chapter 13's figure.

For each size q x m a PLINK fileset is simulated on disk (``scale_speed.simulate``: LD between
neighbouring markers, 1 % missing calls, 10 % of the animals without a record), then each solver
runs in a fresh process so that its peak resident memory is its own:

- ``chunked``: ``snp_blup(y, X, read_plink(prefix, chunks=2000), sigma2_alpha=..., sigma2_e=...)``
  (PCG to a relative residual of 1e-10, block-Jacobi over 64 markers);
- ``jacobi``: the same equations with the diagonal preconditioner alone
  (``lmmbook.chunked.solve_snp_blup(..., block_size=1)``), on the sizes marked below;
- ``dense``: the whole matrix read as float64, centred, W_o'W_o by syrk and the MME by Cholesky
  (``scale_speed.run_dense``), on the sizes where it fits in memory.

Writes book/data/scale-timings.csv (one row per size and solver: seconds, PCG iterations, peak
memory of the process in GiB). Timings are measured once and stored, never recomputed when the
chapter runs (nbval compares outputs, and timings change from run to run); the machine, the date
and the load are in the file's header.
Run: .venv/bin/python benchmarks/scale_timings.py   (about 10 minutes on two free cores)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_speed import peak_rss_gib, run_chunked, run_dense, simulate  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "book" / "data" / "scale-timings.csv"

#: (q, m, solvers): the dense solve where a float64 copy of the genotypes fits in a few GiB
SIZES = [
    (5_000, 1_000, ("chunked", "jacobi", "dense")),
    (10_000, 2_000, ("chunked", "jacobi", "dense")),
    (20_000, 3_000, ("chunked", "jacobi", "dense")),
    (30_000, 4_000, ("chunked", "jacobi", "dense")),
    (50_000, 10_000, ("chunked",)),
    (100_000, 10_000, ("chunked",)),
]
CHUNK = 2_000
CACHE = 2**29


def run_jacobi(prefix: Path, chunk: int, cache_bytes: int) -> dict:
    """The chunked PCG with the diagonal (Jacobi) preconditioner: block_size=1."""
    import time

    import lmmbook
    from lmmbook import chunked

    base = peak_rss_gib()
    y = np.load(prefix.parent / "y.npy")
    var = json.loads((prefix.parent / "variances.json").read_text())
    X = np.ones((len(y), 1))
    start = time.perf_counter()
    engine = chunked.BlockEngine(lmmbook.read_plink(prefix, chunks=chunk), cache_bytes=cache_bytes)
    sol = chunked.solve_snp_blup(engine, y, X, var["sigma2_e"] / var["sigma2_alpha"],
                                 block_size=1)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "iterations": sol.iterations, "peak_gib": peak_rss_gib(),
            "import_gib": base}


RUNS = {"chunked": run_chunked, "jacobi": run_jacobi, "dense": run_dense}


def child(kind: str, prefix: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(prefix)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(RUNS[sys.argv[2]](Path(sys.argv[3]), CHUNK, CACHE)
                         if sys.argv[2] != "dense" else run_dense(Path(sys.argv[3]))))
        return
    load = os.getloadavg()[0]
    rows = []
    for q, m, solvers in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            prefix = simulate(Path(tmp), q, m)
            for kind in solvers:
                run = child(kind, prefix)
                rows.append((q, m, kind, run["seconds"], run.get("iterations", ""),
                             run["peak_gib"]))
                print(q, m, kind, round(run["seconds"], 2), run.get("iterations", ""),
                      round(run["peak_gib"], 3), flush=True)
    load = max(load, os.getloadavg()[0])
    header = (f"# measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} "
              f"cores, {platform.python_implementation()} {platform.python_version()}, blocks of "
              f"{CHUNK} animals, cache {CACHE / 2**30:.2f} GiB, PCG to 1e-10; load average up to "
              f"{load:.0f} (other jobs shared the cores); benchmarks/scale_timings.py\n")
    with OUT.open("w") as f:
        f.write(header + "q,m,solver,seconds,iterations,peak_gib\n")
        for q, m, kind, s, it, peak in rows:
            f.write(f"{q},{m},{kind},{s:.2f},{it},{peak:.3f}\n")


if __name__ == "__main__":
    main()
