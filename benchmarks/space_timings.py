"""Time GBLUP in the animal space against SNP-BLUP in the marker space, for chapter 6's figure.

For m = 1000 markers and n from 250 to 4000 animals, times lmmbook.snp_blup in the animal space
(W W'/c and its eigendecomposition, O(n^2 m + n^3)) and in the marker space (a thin SVD of the
n x m centred markers, O(n m min(n, m)) with a larger constant), the same REML fit otherwise;
the median of 3 runs each. Writes book/data/space-timings.csv, which the chapter plots:
timings are measured once and stored, never recomputed when the chapter runs (nbval compares
outputs, and timings change from run to run). The machine and the date are in the file's header.
Run: .venv/bin/python benchmarks/space_timings.py
"""

import datetime
import os
import platform
from pathlib import Path

import numpy as np
from _timing import timed  # benchmarks/_timing.py

import lmmbook

OUT = Path(__file__).resolve().parent.parent / "book" / "data" / "space-timings.csv"




def main(m=1000, sizes=(250, 500, 1000, 1500, 2000, 3000, 4000)):
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        p = rng.uniform(0.05, 0.95, m)
        M = rng.binomial(2, p, size=(n, m)).astype(float)
        y = (M - 2 * p) @ rng.normal(0, 0.02, m) + rng.normal(0, 1, n)
        X = np.ones((n, 1))
        t_animal, t_marker = (
            timed(lambda M=M, y=y, X=X, s=space: lmmbook.snp_blup(y, X, M, space=s),
                  summary=np.median)
            for space in ("animals", "markers"))
        rows.append((n, t_animal, t_marker))
        print(n, round(t_animal, 3), round(t_marker, 3))
    header = (f"# measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} "
              f"cores, {platform.python_implementation()} {platform.python_version()}, m = {m}, "
              "median of 3 runs\n")
    with OUT.open("w") as f:
        f.write(header + "n,animal_space_s,marker_space_s\n")
        for n, a, b in rows:
            f.write(f"{n},{a:.4f},{b:.4f}\n")


if __name__ == "__main__":
    main()
