"""Livestock records with several random effects and a known truth (chapter 4).

A herd is bred over generations by random mating; each record carries the animal's direct genetic
value, its dam's maternal genetic value, a common environment shared by all offspring of a dam (a
litter, or the maternal permanent environment of a cow's calves), a permanent environment of the
animal shared by its repeated records, a herd effect and a residual. Every effect can be switched
off, so one simulator serves the repeatability, common-environment and maternal models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _checks, model
from .errors import InputError
from .pedigree import Pedigree

__all__ = ["LivestockData", "simulate_livestock"]


@dataclass(frozen=True, eq=False)
class LivestockData:
    """Simulated records and the truth behind them.

    Attributes
    ----------
    pedigree : pandas.DataFrame
        ``animal`` (1, 2, ...), ``sire``, ``dam`` (0 = unknown), ``sex``, ``generation``, ``herd``.
    records : pandas.DataFrame
        One row per record: ``record`` (ID), ``animal``, ``dam``, ``herd``, ``parity`` (the
        record's number for an animal with repeated records, 1, 2, ...), ``y``.
    truth : pandas.DataFrame
        Indexed by animal: ``direct`` and ``maternal`` genetic values (maternal 0 without a
        maternal effect), ``pe`` (permanent environment of its own records) and ``c`` (common
        environment the animal gives its offspring, as a dam).
    G0 : (k, k) ndarray
        Covariance matrix of the genetic effects (direct; direct and maternal).
    sigma2_pe, sigma2_c, sigma2_e : float
        Variances of the permanent environment, the common environment and the residual.
    """

    pedigree: pd.DataFrame
    records: pd.DataFrame
    truth: pd.DataFrame
    G0: np.ndarray
    sigma2_pe: float
    sigma2_c: float
    sigma2_e: float


def simulate_livestock(
    n_generations: int = 4,
    n_dams: int = 200,
    n_sires: int = 10,
    *,
    offspring_per_dam: int = 2,
    n_records: int = 1,
    G0: float | np.ndarray = 20.0,
    sigma2_pe: float = 0.0,
    sigma2_c: float = 0.0,
    sigma2_e: float = 60.0,
    n_herds: int = 10,
    herd_sd: float = 10.0,
    mean: float = 100.0,
    seed: int,
) -> LivestockData:
    """Simulate a randomly mated herd with records carrying several random effects.

    Parameters
    ----------
    n_generations : int
        Generations of recorded offspring after the founders (generation 0, not recorded).
    n_dams, n_sires : int
        Dams drawn at random among the females of the last two generations (a cow has calves in
        several years), sires among the males of the last one (the founders: ``n_dams +
        n_sires`` animals, as many females as dams).
    offspring_per_dam : int
        Offspring of each dam per generation, all by one sire: full sibs sharing the dam's common
        environment (a litter), or a cow's calves over the years. The herd keeps
        ``n_dams * offspring_per_dam`` animals per generation.
    n_records : int
        Records per recorded animal (lactations), sharing its permanent environment.
    G0 : float or (2, 2) array_like
        Variance of the direct genetic effect, or the covariance matrix of the direct and maternal
        genetic effects (the maternal value of a dam enters every record of her offspring).
    sigma2_pe, sigma2_c, sigma2_e : float
        Permanent-environment, common-environment (per dam) and residual variances; 0 switches
        pe or c off. sigma2_e must be positive.
    n_herds, herd_sd, mean : optional
        Herds (fixed effects, drawn N(mean, herd_sd^2)); an animal lives in its dam's herd.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    LivestockData

    Notes
    -----
    Chapter 4. Founders draw (a, m) ~ N(0, G0); offspring the mean of the parents' values plus
    Mendelian sampling N(0, (1/2 - (F_s + F_d)/4) G0) (Willham 1963's model, both effects passed
    down like any additive genetic value).

    Examples
    --------
    >>> import lmmbook
    >>> d = lmmbook.simulate_livestock(2, 30, 3, n_records=3, sigma2_pe=10.0, seed=1)
    >>> len(d.pedigree), len(d.records), int(d.records.groupby("animal").size().max())
    (153, 360, 3)
    """
    for name, value in (("n_generations", n_generations), ("n_dams", n_dams),
                        ("n_sires", n_sires), ("offspring_per_dam", offspring_per_dam),
                        ("n_records", n_records), ("n_herds", n_herds)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    k = 1 if np.ndim(G0) == 0 else len(np.asarray(G0))
    if k > 2:
        raise InputError(f"G0 must be a variance or a (2, 2) direct-maternal matrix, got {G0!r}.")
    G0 = model.covariance_matrix("G0", G0, k)
    for name, value in (("sigma2_pe", sigma2_pe), ("sigma2_c", sigma2_c)):
        if not (np.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be zero or positive, got {value!r}.")
    sigma2_e = _checks.positive_variance("sigma2_e", sigma2_e)
    per_generation = n_dams * offspring_per_dam
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(G0)

    n0 = n_dams + n_sires
    sex = [np.r_[np.ones(n_dams, int), np.zeros(n_sires, int)]]  # 1 female, 0 male
    sire, dam = [np.zeros(n0, int)], [np.zeros(n0, int)]
    herd = [rng.integers(0, n_herds, n0)]
    genetic = [rng.standard_normal((n0, k)) @ L.T]
    first_id = [0]
    for g in range(1, n_generations + 1):
        # dams from the last two generations (cows stay in the herd), sires from the last one
        start = first_id[-1]
        females = start + np.flatnonzero(sex[-1] == 1)
        if g >= 2:
            females = np.r_[first_id[-2] + np.flatnonzero(sex[-2] == 1), females]
        males = start + np.flatnonzero(sex[-1] == 0)
        if len(females) < n_dams or len(males) < n_sires:
            raise InputError(
                f"generation {g - 1} leaves {len(females)} females and {len(males)} males, fewer "
                f"than the {n_dams} dams and {n_sires} sires wanted: raise offspring_per_dam.")
        dams_g = rng.choice(females, n_dams, replace=False)
        sires_g = rng.choice(males, n_sires, replace=False)
        d_of = np.repeat(dams_g, offspring_per_dam)
        s_of = np.repeat(rng.choice(sires_g, n_dams), offspring_per_dam)
        first_id.append(start + len(sex[-1]))
        sire.append(s_of + 1)
        dam.append(d_of + 1)
        sex.append(rng.integers(0, 2, per_generation))
        all_herd = np.concatenate(herd)
        herd.append(all_herd[d_of])
        all_sire, all_dam = np.concatenate(sire), np.concatenate(dam)
        F = Pedigree(np.arange(1, len(all_sire) + 1), all_sire, all_dam).inbreeding()
        all_genetic = np.concatenate(genetic)
        sampling = np.sqrt(0.5 - 0.25 * (F[s_of] + F[d_of]))[:, None]
        genetic.append(0.5 * (all_genetic[s_of] + all_genetic[d_of])
                       + sampling * (rng.standard_normal((per_generation, k)) @ L.T))

    ids = np.arange(1, sum(len(s) for s in sex) + 1)
    generation = np.repeat(np.arange(n_generations + 1), [len(s) for s in sex])
    sex_all, sire_all, dam_all = (np.concatenate(v) for v in (sex, sire, dam))
    herd_all, genetic_all = np.concatenate(herd), np.concatenate(genetic)
    direct = genetic_all[:, 0]
    maternal = genetic_all[:, 1] if k == 2 else np.zeros(len(ids))
    pe = rng.normal(0.0, np.sqrt(sigma2_pe), len(ids)) if sigma2_pe > 0 else np.zeros(len(ids))
    c = rng.normal(0.0, np.sqrt(sigma2_c), len(ids)) if sigma2_c > 0 else np.zeros(len(ids))
    herd_effect = rng.normal(mean, herd_sd, n_herds)

    recorded = np.flatnonzero(generation > 0)
    animal = np.repeat(recorded, n_records)
    parity = np.tile(np.arange(1, n_records + 1), len(recorded))
    d = dam_all[animal] - 1
    y = (herd_effect[herd_all[animal]] + direct[animal] + maternal[d] + c[d] + pe[animal]
         + rng.normal(0.0, np.sqrt(sigma2_e), len(animal)))
    records = pd.DataFrame({
        "record": np.arange(1, len(animal) + 1), "animal": ids[animal], "dam": dam_all[animal],
        "herd": herd_all[animal] + 1, "parity": parity, "y": np.round(y, 2),
    })
    pedigree = pd.DataFrame({
        "animal": ids, "sire": sire_all, "dam": dam_all, "sex": np.where(sex_all == 1, "F", "M"),
        "generation": generation, "herd": herd_all + 1,
    })
    truth = pd.DataFrame({"direct": direct, "maternal": maternal, "pe": pe, "c": c},
                         index=pd.Index(ids, name="animal"))
    return LivestockData(pedigree, records, truth, G0, float(sigma2_pe), float(sigma2_c),
                         sigma2_e)
