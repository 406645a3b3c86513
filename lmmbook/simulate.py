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

__all__ = ["VarietyTrial", "simulate_variety_trial"]


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
