"""Data with a known truth, seeded, for the chapters and the tests.

Every simulator takes a ``seed`` and draws only from ``numpy.random.default_rng(seed)``: the same
seed gives the same data on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _checks
from .errors import InputError
from .pedigree import Pedigree

__all__ = ["VarietyTrial", "simulate_pedigree", "simulate_variety_trial"]


@dataclass(frozen=True, eq=False)
class VarietyTrial:
    """A simulated multi-environment variety trial and the truth behind it.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per plot: ``plot`` (ID), ``variety``, ``environment`` and ``y`` (yield, t/ha,
        rounded to 0.01 as a scale would record it).
    u : pandas.Series
        True genetic value of each variety (deviation from the environment mean), indexed by
        variety.
    b : pandas.Series
        True mean of each environment, indexed by environment.
    sigma2_u, sigma2_e : float
        The variances u and the plot errors were drawn with.
    """

    data: pd.DataFrame
    u: pd.Series
    b: pd.Series
    sigma2_u: float
    sigma2_e: float


def simulate_variety_trial(
    n_varieties: int = 40,
    n_environments: int = 4,
    *,
    records: tuple[int, int] = (1, 12),
    sigma2_u: float = 0.25,
    sigma2_e: float = 1.0,
    environment_means: np.ndarray | None = None,
    seed: int,
) -> VarietyTrial:
    """Simulate a variety trial: y = environment mean + variety value + plot error.

    Parameters
    ----------
    n_varieties, n_environments : int
        Numbers of varieties (random effects) and environments (fixed effects).
    records : (int, int), optional
        Inclusive range of the number of plots per variety; each variety's number is drawn
        uniformly from it, so varieties are unequally replicated, as in real trials.
    sigma2_u, sigma2_e : float, optional
        Genetic variance among varieties and plot-error variance (t/ha squared).
    environment_means : (n_environments,) array_like, optional
        True environment means; by default 8 t/ha plus draws of standard deviation 1.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    VarietyTrial

    Notes
    -----
    The model of chapter 1, equation ``(eq-lmm)``, with K = I: u ~ N(0, sigma2_u I),
    e ~ N(0, sigma2_e I). Each plot's environment is drawn uniformly, so some varieties miss some
    environments. Varieties are named ``V01``, ``V02``, ... and environments ``E1``, ``E2``, ...

    Examples
    --------
    >>> import lmmbook
    >>> trial = lmmbook.simulate_variety_trial(5, 2, records=(2, 4), seed=1)
    >>> trial.data.columns.tolist()
    ['plot', 'variety', 'environment', 'y']
    >>> trial.u.index.tolist()
    ['V1', 'V2', 'V3', 'V4', 'V5']
    """
    if n_varieties < 1 or n_environments < 1:
        raise InputError("n_varieties and n_environments must be at least 1.")
    low, high = records
    if not 1 <= low <= high:
        raise InputError(f"records must be (low, high) with 1 <= low <= high, got {records}.")
    sigma2_u = _checks.positive_variance("sigma2_u", sigma2_u)
    sigma2_e = _checks.positive_variance("sigma2_e", sigma2_e)
    rng = np.random.default_rng(seed)

    varieties = [f"V{i + 1:0{len(str(n_varieties))}d}" for i in range(n_varieties)]
    environments = [f"E{j + 1}" for j in range(n_environments)]
    if environment_means is None:
        environment_means = 8.0 + rng.normal(0.0, 1.0, n_environments)
    environment_means = np.asarray(environment_means, dtype=float)
    _checks.same_length("environment_means", n_environments, "n_environments",
                        len(environment_means), unit="entries")
    u = rng.normal(0.0, np.sqrt(sigma2_u), n_varieties)

    plots_per_variety = rng.integers(low, high + 1, n_varieties)
    variety_of_plot = np.repeat(np.arange(n_varieties), plots_per_variety)
    n = len(variety_of_plot)
    environment_of_plot = rng.integers(0, n_environments, n)
    empty = sorted(set(range(n_environments)) - set(environment_of_plot.tolist()))
    if empty:
        raise InputError(
            f"environment(s) {', '.join(environments[j] for j in empty)} received no plot "
            f"({n} plots in all); raise records or n_varieties, or lower n_environments."
        )
    e = rng.normal(0.0, np.sqrt(sigma2_e), n)
    y = environment_means[environment_of_plot] + u[variety_of_plot] + e

    data = pd.DataFrame({
        "plot": [f"P{k + 1:04d}" for k in range(n)],
        "variety": np.asarray(varieties)[variety_of_plot],
        "environment": np.asarray(environments)[environment_of_plot],
        "y": np.round(y, 2),
    })
    return VarietyTrial(
        data=data,
        u=pd.Series(u, index=pd.Index(varieties, name="variety"), name="u"),
        b=pd.Series(environment_means, index=pd.Index(environments, name="environment"), name="b"),
        sigma2_u=sigma2_u,
        sigma2_e=sigma2_e,
    )


def simulate_pedigree(
    n_generations: int = 5,
    n_per_generation: int = 200,
    n_sires: int = 10,
    n_dams: int | None = None,
    *,
    overlapping: int = 1,
    mating: str = "random",
    unknown_sire_rate: float = 0.0,
    sigma2_a: float = 1.0,
    seed: int,
) -> pd.DataFrame:
    """Simulate a recorded pedigree with true breeding values passed down it.

    Parameters
    ----------
    n_generations : int
        Generations after the founders (the founders are generation 0).
    n_per_generation : int
        Animals born per generation (and founders), half of them male on average.
    n_sires, n_dams : int
        Parents chosen per generation among the males and the females of the parental
        generations; by default every female is a dam.
    overlapping : int, optional
        How many previous generations the parents come from: 1 gives discrete generations, 3 lets
        parents be born up to three generations earlier.
    mating : {"random", "assortative"}
        Random pairs, or the best sire (by true breeding value) with the best dams.
    unknown_sire_rate : float, optional
        Share of animals whose sire is recorded as unknown (0), as with natural service.
    sigma2_a : float, optional
        Additive genetic variance of the founders.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        One row per animal: ``animal`` (1, 2, ...; IDs that cannot be mistaken for "unknown"),
        ``sire`` and ``dam`` (0 = unknown), ``sex``, ``generation`` and ``tbv``, the true breeding
        value: founders draw N(0, sigma2_a), offspring the parents' mean plus Mendelian sampling
        N(0, (1/2 - (F_s + F_d)/4) sigma2_a), F from the simulated pedigree.

    Examples
    --------
    >>> import lmmbook
    >>> ped = lmmbook.simulate_pedigree(3, 50, n_sires=5, seed=1)
    >>> len(ped), int(ped["generation"].max()), ped.loc[ped["generation"] > 0, "sire"].nunique()
    (200, 3, 15)
    """
    if mating not in ("random", "assortative"):
        raise InputError(f"mating must be 'random' or 'assortative', got {mating!r}.")
    if n_generations < 0 or n_per_generation < 2 or n_sires < 1 or overlapping < 1:
        raise InputError("need n_generations >= 0, n_per_generation >= 2, n_sires >= 1 and "
                         "overlapping >= 1.")
    if not 0.0 <= unknown_sire_rate < 1.0:
        raise InputError(f"unknown_sire_rate must be in [0, 1), got {unknown_sire_rate}.")
    sigma2_a = _checks.positive_variance("sigma2_a", sigma2_a)
    rng = np.random.default_rng(seed)
    n = n_per_generation
    total = n * (n_generations + 1)
    sire = np.zeros(total, np.int64)
    dam = np.zeros(total, np.int64)
    sex = rng.integers(0, 2, total)  # 0 male, 1 female
    generation = np.repeat(np.arange(n_generations + 1), n)
    tbv = np.zeros(total)
    tbv[:n] = rng.normal(0.0, np.sqrt(sigma2_a), n)
    for g in range(1, n_generations + 1):
        pool = np.flatnonzero((generation >= g - overlapping) & (generation < g))
        males, females = pool[sex[pool] == 0], pool[sex[pool] == 1]
        if len(males) == 0 or len(females) == 0:
            raise InputError(f"generation {g} has no {'males' if len(males) == 0 else 'females'}"
                             " to breed from; raise n_per_generation.")
        sires = rng.choice(males, min(n_sires, len(males)), replace=False)
        dams = females if n_dams is None else rng.choice(females, min(n_dams, len(females)),
                                                         replace=False)
        born = np.arange(g * n, (g + 1) * n)
        if mating == "random":
            s_of = rng.choice(sires, n)
            d_of = rng.choice(dams, n)
        else:  # best sires with best dams: rank both and pair rank by rank
            s_rank = sires[np.argsort(-tbv[sires])]
            d_rank = dams[np.argsort(-tbv[dams])]
            d_of = rng.choice(dams, n)
            position = np.searchsorted(-tbv[d_rank], -tbv[d_of])  # rank of each chosen dam
            s_of = s_rank[np.minimum(position * len(s_rank) // len(d_rank), len(s_rank) - 1)]
        sire[born], dam[born] = s_of + 1, d_of + 1
        # Mendelian sampling with the inbreeding of the parents so far
        F = Pedigree(np.arange(1, (g + 1) * n + 1), sire[:(g + 1) * n], dam[:(g + 1) * n]
                     ).inbreeding()
        d_var = 0.5 - 0.25 * (F[s_of] + F[d_of])
        tbv[born] = 0.5 * (tbv[s_of] + tbv[d_of]) + rng.normal(0.0, 1.0, n) * np.sqrt(
            d_var * sigma2_a)
    hidden = (generation > 0) & (rng.random(total) < unknown_sire_rate)
    sire[hidden] = 0
    return pd.DataFrame({
        "animal": np.arange(1, total + 1), "sire": sire, "dam": dam,
        "sex": np.where(sex == 0, "M", "F"), "generation": generation, "tbv": tbv,
    })
