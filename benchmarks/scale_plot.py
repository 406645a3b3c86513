"""Draw the README's scaling figure from the timings that benchmarks/scale_timings.py measured.

    .venv/bin/python benchmarks/scale_plot.py   # writes benchmarks/scale-timings.png

Time and peak memory against the number of genotypes q x m, for the chunked PCG (block-Jacobi),
the same with the Jacobi preconditioner, and the dense marker-space solve (build W'W, Cholesky),
each measured once in its own process (book/data/scale-timings.csv, the data of chapter 13's
figure; its first line says when and under what load).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "book" / "data" / "scale-timings.csv"
OUT = Path(__file__).with_name("scale-timings.png")
STYLE = {"chunked": ("chunked PCG, block-Jacobi", "C0", "o"),
         "jacobi": ("chunked PCG, Jacobi", "C1", "s"),
         "dense": ("dense: W'W and Cholesky", "C3", "^")}


def main() -> None:
    runs = pd.read_csv(DATA, comment="#")
    runs["genotypes"] = runs["q"] * runs["m"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for solver, (label, colour, marker) in STYLE.items():
        part = runs[runs["solver"] == solver].sort_values("genotypes")
        ax_t.plot(part["genotypes"], part["seconds"], marker=marker, color=colour, label=label)
        ax_m.plot(part["genotypes"], part["peak_gib"], marker=marker, color=colour, label=label)
    for ax, what in ((ax_t, "time (s)"), (ax_m, "peak memory of the process (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("genotypes q x m")
        ax.set_ylabel(what)
        ax.grid(True, which="major", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle("SNP-BLUP at given variances from a .bed (2 cores; "
                 "see book/data/scale-timings.csv)", fontsize=10)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
