"""Speed of the models with several random effects (issue 12), as ratios within the same run.

1. Repeatability animal model by PCG. A pedigree of 100,000 animals (10 generations of 10,000,
   parents from the last three generations, 200 sires a generation); the 90,000 animals of
   generations 1-9 have 3 records each, a random third of them a 4th: 300,000 records. A record
   of lactation l of an animal born in generation g is made in year g + l, in its dam's herd
   (500 herds). y = herd-year + a + pe + e with sigma2_a = 0.3, sigma2_pe = 0.2, sigma2_e = 0.5
   (h2 0.3, repeatability 0.5). Herd-year is a fixed effect (~6,000 levels, as in a dairy
   evaluation; the "block" preconditioner solves the fixed-effect block whole by sparse LU).
   Timed in the same process, on the same pedigree and records, each by solve_mme(method="pcg",
   tol=1e-8):
   - baseline: the single-effect animal model, Z = Z_animal, K_inv = A^-1 (pe left in the
     residual: sigma2_e = sigma2_pe + sigma2_e);
   - ours: animal + pe, Z = [Z_animal, Z_pe], K_inv = [A^-1, None].
   Goal (issue 12): ours / baseline <= 2. The first call of each is timed whole; solve_mme's rank
   check of X (a dense eigendecomposition of the scaled X'X, O(n_b^3): about a minute for the
   ~6,000 herd-years, the same in both calls) is then skipped in `repeats` more calls, timed
   with their stages (assembly of C, preconditioner set-up, iterations). The same models with
   herd-year random (X = 1, K_inv = I) are timed too, and the problem built at 1/20 of the size
   (5,000 animals) is solved by PCG and by method="direct" (sparse LU) to compare the solutions.
2. AI-REML of a maternal model: simulate_livestock with 4 generations of 420 dams x 3 offspring
   (5,040 records), G0 direct-maternal with a negative covariance, a common environment of the
   dam (litter / maternal permanent environment) and herds as fixed effects; reml(method="ai")
   with Z = [(Z_direct, Z_maternal), Z_c], K = [A, None].
   Goal (issue 12): at most 30 evaluations of the REML likelihood. Each evaluation factorises
   the n x n V (O(n^3)); they are counted exactly, see count_evaluations.

Run: .venv/bin/python benchmarks/models_speed.py [pcg] [reml] [--repeats N]
"""

import importlib
import sys
import time

import numpy as np
from _timing import Wrapped  # benchmarks/_timing.py

import lmmbook

SIGMA2_A, SIGMA2_PE, SIGMA2_E = 0.3, 0.2, 0.5
SIGMA2_HY = 1.0  # variance of the simulated herd-year effects


def repeatability_problem(per_generation=10_000, n_herds=500, n_sires=200, seed=1):
    """Pedigree, A^-1, herd-year X, Z_animal, Z_pe and y of the repeatability model."""
    ped_frame = lmmbook.simulate_pedigree(9, per_generation, n_sires=n_sires, overlapping=3,
                                          sigma2_a=SIGMA2_A, seed=seed)
    rng = np.random.default_rng(seed + 1)
    generation = ped_frame["generation"].to_numpy()
    dam = ped_frame["dam"].to_numpy() - 1  # row of the dam, -1 for a founder
    herd = rng.integers(0, n_herds, len(ped_frame))
    for g in range(1, generation.max() + 1):  # an animal lives in its dam's herd
        born = np.flatnonzero(generation == g)
        herd[born] = herd[dam[born]]
    recorded = np.flatnonzero(generation > 0)
    lactations = np.full(len(recorded), 3)
    lactations[rng.choice(len(recorded), len(recorded) // 3, replace=False)] = 4
    row = np.repeat(recorded, lactations)  # the animal (pedigree row) of each record
    lactation = np.concatenate([np.arange(1, k + 1) for k in lactations])
    year = generation[row] + lactation
    herd_year = herd[row] * 100 + year
    hy_levels, hy_of_record = np.unique(herd_year, return_inverse=True)
    hy_effect = rng.normal(0.0, np.sqrt(SIGMA2_HY), len(hy_levels))
    pe = rng.normal(0.0, np.sqrt(SIGMA2_PE), len(ped_frame))
    y = (hy_effect[hy_of_record] + ped_frame["tbv"].to_numpy()[row] + pe[row]
         + rng.normal(0.0, np.sqrt(SIGMA2_E), len(row)))

    animal_ids = ped_frame["animal"].to_numpy()
    ped = lmmbook.Pedigree(animal_ids, ped_frame["sire"].to_numpy(), ped_frame["dam"].to_numpy())
    A_inv = ped.A_inverse()
    X = lmmbook.incidence(herd_year).matrix
    Z_animal = ped.incidence(animal_ids[row]).matrix
    Z_pe = lmmbook.incidence(animal_ids[row]).matrix  # one level per recorded animal
    return {"y": y, "X": X, "Z_animal": Z_animal, "Z_pe": Z_pe, "A_inv": A_inv,
            "animals": len(ped), "recorded": len(recorded), "herd_years": len(hy_levels),
            "tbv": ped_frame.set_index("animal").loc[ped.ids, "tbv"].to_numpy()}  # u's order


def solve(p, with_pe, herd_year="fixed", method="pcg", tol=1e-8):
    """The animal model, with pe or without it (then pe is left in the residual), and herd-year
    fixed (X = the herd-year incidence) or random (X = 1, herd-years with K_inv = I)."""
    X, Z, K_inv, sigma2_u = p["X"], [p["Z_animal"]], [p["A_inv"]], [SIGMA2_A]
    if with_pe:
        Z, K_inv, sigma2_u = Z + [p["Z_pe"]], K_inv + [None], sigma2_u + [SIGMA2_PE]
    if herd_year == "random":
        X = np.ones((len(p["y"]), 1))
        Z, K_inv, sigma2_u = Z + [p["X"]], K_inv + [None], sigma2_u + [SIGMA2_HY]
    if len(Z) == 1:  # the single-effect call, as chapter 3 writes it
        Z, K_inv, sigma2_u = Z[0], K_inv[0], sigma2_u[0]
    sigma2_e = SIGMA2_E if with_pe else SIGMA2_PE + SIGMA2_E
    return lmmbook.solve_mme(p["y"], X, Z, K_inv, sigma2_u, sigma2_e, method=method, tol=tol)


def animal_effect(fit):
    return fit.u[0] if isinstance(fit.u, tuple) else fit.u


def StageClock() -> Wrapped:  # noqa: N802 (used like the class it replaced)
    """Seconds spent in solve_mme's stages, by wrapping the functions it calls (benchmark only):
    the rank check of X, the assembly of C, the preconditioner's set-up and the PCG iterations."""
    return Wrapped(**{
        "rank check of X": ("lmmbook._checks", "full_column_rank", None),
        "assemble C": ("lmmbook.model", "coefficient_matrix", None),
        "preconditioner": ("lmmbook.mme", "_preconditioner", None),
        "iterations": ("lmmbook.mme", "_pcg", None),
    })


class RankCheckSkipped:
    """Replace solve_mme's rank check of X by a no-op (benchmark only, for calls after a first
    one that has checked the same X): the check forms the dense n_b x n_b X'X and its
    eigenvalues, O(n_b^3) in the herd-years, the same work in every model with this X."""

    def __enter__(self):
        self.module = importlib.import_module("lmmbook._checks")
        self.original = self.module.full_column_rank
        self.module.full_column_rank = lambda *args, **kwargs: None
        return self

    def __exit__(self, *exc):
        self.module.full_column_rank = self.original


def best_run(f, repeats):
    """(seconds, stage seconds, result) of the fastest of ``repeats`` calls of f."""
    best = None
    for _ in range(repeats):
        with StageClock() as clock:
            start = time.perf_counter()
            result = f()
            seconds = time.perf_counter() - start
        if best is None or seconds < best[0]:
            best = (seconds, clock.seconds, result)
    return best


def max_relative_difference(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def check_against_direct(per_generation=500, n_herds=25, n_sires=10):
    p = repeatability_problem(per_generation, n_herds, n_sires, seed=3)
    print(f"\ncheck on {p['animals']:,} animals, {len(p['y']):,} records, "
          f"{p['herd_years']:,} herd-years (fixed): PCG against method='direct' (sparse LU), "
          "max |PCG - direct| / max |direct|")
    for name, with_pe in (("animal", False), ("animal + pe", True)):
        direct = solve(p, with_pe, method="direct")
        u_dir = direct.u if isinstance(direct.u, tuple) else (direct.u,)
        for tol in (1e-8, 1e-10):
            pcg = solve(p, with_pe, tol=tol)
            u_pcg = pcg.u if isinstance(pcg.u, tuple) else (pcg.u,)
            parts = [f"b {max_relative_difference(pcg.b, direct.b):.0e}"]
            parts += [f"{label} {max_relative_difference(a, d):.0e}"
                      for label, a, d in zip(("a", "pe"), u_pcg, u_dir, strict=False)]
            print(f"  {name:<12} tol {tol:.0e}: {pcg.n_iter:>4} iterations; " + ", ".join(parts))


def pcg_benchmark(repeats):
    start = time.perf_counter()
    p = repeatability_problem()
    print(f"repeatability model: {p['animals']:,} animals, {p['recorded']:,} with records, "
          f"{len(p['y']):,} records, {p['herd_years']:,} herd-years; built in "
          f"{time.perf_counter() - start:.1f} s. PCG to a relative residual of 1e-8.")
    stage_names = ", ".join(list(StageClock().targets)[1:])
    print(f"\nherd-year fixed. First call: the whole solve_mme; then best of {repeats} with the "
          f"rank check of X skipped\n(the same X, checked by the first call); stages: "
          f"{stage_names} (s)")
    print(f"  {'model':<18} {'equations':>10} {'first (s)':>10} {'rank check':>11} "
          f"{'then (s)':>9} {'iter':>5}  stages")
    rows = {}
    for name, with_pe in (("animal (baseline)", False), ("animal + pe", True)):
        first, first_stages, fit = best_run(lambda with_pe=with_pe: solve(p, with_pe), 1)
        with RankCheckSkipped():
            seconds, stages, fit = best_run(lambda with_pe=with_pe: solve(p, with_pe), repeats)
        n_u = sum(len(u) for u in fit.u) if isinstance(fit.u, tuple) else len(fit.u)
        print(f"  {name:<18} {len(fit.b) + n_u:>10,} {first:>10.2f} "
              f"{first_stages['rank check of X']:>11.2f} {seconds:>9.2f} {fit.n_iter:>5}  "
              + ", ".join(f"{v:.2f}" for k, v in stages.items() if k != "rank check of X"))
        rows[with_pe] = (first, seconds, fit)
    for label, j in (("whole first calls", 0), ("without the rank check", 1)):
        ratio = rows[True][j] / rows[False][j]
        print(f"  ratio (animal + pe) / animal, {label}: {ratio:.2f}   (goal <= 2: "
              f"{'met' if ratio <= 2 else 'NOT met'})")
    r = [np.corrcoef(animal_effect(rows[with_pe][2]), p["tbv"])[0, 1] for with_pe in (0, 1)]
    print(f"  r(EBV, TBV) over all animals: animal model {r[0]:.3f}, with pe {r[1]:.3f}")

    print(f"\nherd-year random instead (X = 1, K_inv = I for the herd-years), best of {repeats}; "
          f"stages: {stage_names} (s)")
    print(f"  {'model':<18} {'equations':>10} {'time (s)':>9} {'iter':>5}  stages")
    random_rows = {}
    for name, with_pe in (("animal + hy", False), ("animal + pe + hy", True)):
        seconds, stages, fit = best_run(
            lambda with_pe=with_pe: solve(p, with_pe, "random"), repeats)
        n_u = sum(len(u) for u in fit.u)
        print(f"  {name:<18} {len(fit.b) + n_u:>10,} {seconds:>9.2f} {fit.n_iter:>5}  "
              + ", ".join(f"{v:.2f}" for k, v in stages.items() if k != "rank check of X"))
        random_rows[with_pe] = seconds
    ratio = random_rows[True] / random_rows[False]
    print(f"  ratio (animal + pe + hy) / (animal + hy): {ratio:.2f}   (goal <= 2: "
          f"{'met' if ratio <= 2 else 'NOT met'})")
    check_against_direct()


def count_evaluations():
    """Count the REML likelihood evaluations: every evaluation builds one reml._VState (V, its
    Cholesky factor, P and the log-likelihood), the AI steps, step halvings and EM fallbacks
    alike, so the benchmark wraps its __init__ with a counter (reml is both a function and a
    module of lmmbook, hence importlib)."""
    state = importlib.import_module("lmmbook.reml")._VState
    original = state.__init__
    counter = {"evaluations": 0, "seconds": 0.0}

    def counted(self, *args, **kwargs):
        start = time.perf_counter()
        original(self, *args, **kwargs)
        counter["evaluations"] += 1
        counter["seconds"] += time.perf_counter() - start

    state.__init__ = counted
    return counter, lambda: setattr(state, "__init__", original)


def reml_benchmark(n_dams=420):
    G0 = np.array([[20.0, -4.0], [-4.0, 10.0]])  # direct-maternal correlation -0.28
    sigma2_c, sigma2_e = 6.0, 60.0
    d = lmmbook.simulate_livestock(4, n_dams, 20, offspring_per_dam=3, G0=G0, sigma2_c=sigma2_c,
                                   sigma2_e=sigma2_e, n_herds=20, seed=7)
    rec = d.records
    ped = lmmbook.Pedigree.from_frame(d.pedigree)
    start = time.perf_counter()
    A = ped.A()
    t_a = time.perf_counter() - start
    X = lmmbook.incidence(rec["herd"])
    Z_direct, Z_maternal = ped.incidence(rec["animal"]), ped.incidence(rec["dam"])
    Z_c = lmmbook.incidence(rec["dam"])
    print(f"\nmaternal model: {len(rec):,} records, {len(ped):,} animals in A ({t_a:.1f} s), "
          f"{len(Z_c.levels)} dams, {X.matrix.shape[1]} herds (fixed)")
    counter, restore = count_evaluations()
    start = time.perf_counter()
    try:
        fit = lmmbook.reml(rec["y"], X, [(Z_direct, Z_maternal), Z_c], [A, None], method="ai",
                           names=["direct", "maternal", "c"])
    finally:
        restore()
    seconds = time.perf_counter() - start
    n_eval = counter["evaluations"]
    print(f"  AI-REML: {fit.n_iter} iterations, {n_eval} likelihood evaluations (goal <= 30: "
          f"{'met' if n_eval <= 30 else 'NOT met'}), converged {fit.converged}")
    print(f"  {seconds:.1f} s in all, {counter['seconds']:.1f} s of it in the evaluations "
          f"({counter['seconds'] / n_eval:.1f} s each)")
    truth = [G0[0, 0], G0[1, 0], G0[1, 1], sigma2_c, sigma2_e]
    table = fit.components()
    print(f"  {'parameter':<24} {'truth':>8} {'estimate':>9} {'(SE)':>8}")
    for name, t in zip(fit.parameter_names, truth, strict=True):
        row = table.loc[name]
        print(f"  {name:<24} {t:>8.2f} {row['estimate']:>9.2f} {f'({row.se:.2f})':>8}")


def main(args):
    repeats = 3
    if "--repeats" in args:
        i = args.index("--repeats")
        repeats = int(args[i + 1])
        args = args[:i] + args[i + 2:]
    which = args or ["pcg", "reml"]
    if "pcg" in which:
        pcg_benchmark(repeats)
    if "reml" in which:
        reml_benchmark()


if __name__ == "__main__":
    main(sys.argv[1:])
