"""Data with a known truth, seeded, for the chapters and the tests.

Every simulator takes a ``seed`` and draws only from ``numpy.random.default_rng(seed)``: the same
seed gives the same data on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import _checks
from .errors import InputError
from .pedigree import Pedigree

__all__ = ["Population", "VarietyTrial", "simulate_pedigree", "simulate_population",
           "simulate_variety_trial"]


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


@dataclass(frozen=True, eq=False)
class Population:
    """A simulated genotyped population with its pedigree, true breeding values and phenotypes.

    Attributes
    ----------
    pedigree : pandas.DataFrame
        ``animal``, ``sire``, ``dam`` (0 = unknown), ``sex``, ``generation`` (one row per animal).
    ids : (n,) ndarray of int
        Animal IDs, the rows of ``genotypes``.
    genotypes : (n, m) ndarray
        Counts 0/1/2 (float), NaN for a missing call.
    snp_map : pandas.DataFrame
        ``snp`` (name), ``chromosome``, ``position_cM`` and ``qtl`` (bool), one row per locus.
    qtl_effects : pandas.Series
        Allele-substitution effect of each QTL, indexed by SNP name.
    tbv : pandas.Series
        True breeding value, indexed by animal, centred on the founders' mean.
    phenotypes : pandas.DataFrame
        Indexed by animal: ``sex``, ``herd``, ``y`` (NaN where not phenotyped).
    sigma2_a, sigma2_e : float
        Additive variance of the founders' true breeding values and the residual variance.
    base_allele_freq : (m,) ndarray
        Allele frequencies in the founders (generation 0).
    """

    pedigree: pd.DataFrame
    ids: np.ndarray
    genotypes: np.ndarray
    snp_map: pd.DataFrame
    qtl_effects: pd.Series
    tbv: pd.Series
    phenotypes: pd.DataFrame
    sigma2_a: float
    sigma2_e: float
    base_allele_freq: np.ndarray

    @property
    def snp_names(self) -> np.ndarray:
        return self.snp_map["snp"].to_numpy()

    def genotype_frame(self) -> pd.DataFrame:
        """The genotypes as a DataFrame: animals by SNPs."""
        return pd.DataFrame(self.genotypes, index=pd.Index(self.ids, name="animal"),
                            columns=self.snp_names)


def _gamete(rng, hap1, hap2, chrom_start, chrom_len_M, position_M):
    """One gamete: crossovers by Haldane's map (Poisson, uniform positions) on each chromosome,
    and a fair coin for which haplotype each chromosome starts on."""
    counts = rng.poisson(chrom_len_M)
    crossovers = [chrom_start[c] + rng.random(k) * chrom_len_M[c] for c, k in enumerate(counts)
                  if k]
    starts = chrom_start[rng.random(len(chrom_start)) < 0.5]  # switch strand at these starts
    points = np.sort(np.concatenate([starts, *crossovers])) if crossovers else np.sort(starts)
    from_second = (np.searchsorted(points, position_M, side="right") % 2).astype(bool)
    return np.where(from_second, hap2, hap1)


def simulate_population(
    n_generations: int = 4,
    n_per_generation: int = 400,
    n_sires: int = 20,
    *,
    n_snp: int = 2000,
    n_chromosomes: int = 5,
    chromosome_cM: float = 100.0,
    n_qtl: int = 100,
    h2: float = 0.4,
    n_herds: int = 10,
    historical_generations: int = 30,
    historical_size: int = 100,
    phenotyped_generations: Any = None,
    missing_rate: float = 0.0,
    seed: int,
) -> Population:
    """Simulate genomes along a pedigree: SNPs in linkage disequilibrium, QTL, phenotypes.

    Parameters
    ----------
    n_generations, n_per_generation, n_sires : int
        The recorded pedigree (:func:`simulate_pedigree`, discrete generations, random mating):
        founders are generation 0.
    n_snp, n_chromosomes, chromosome_cM : int, int, float
        Loci spread at random over chromosomes of this length (centimorgans).
    n_qtl : int
        Loci (among the SNPs, polymorphic in the founders) with an effect on the trait.
    h2 : float
        Heritability in the founders: QTL effects are scaled so that Var(tbv) = h2 there, and the
        residual variance is 1 - h2.
    n_herds : int
        Herds, a fixed effect with random levels assigned to animals.
    historical_generations, historical_size : int
        Generations of random mating in a small population before the pedigree starts: they create
        linkage disequilibrium between nearby loci and a realistic allele-frequency spectrum
        (starting frequencies Beta(0.8, 0.8)).
    phenotyped_generations : iterable of int, optional
        Generations with phenotypes; by default all but the last (the young candidates).
    missing_rate : float
        Share of genotype calls set to NaN at random.
    seed : int

    Returns
    -------
    Population

    Notes
    -----
    Gametes follow Haldane's map: the number of crossovers on a chromosome of L morgans is
    Poisson(L), at uniform positions; chromosomes assort independently. Breeding values are
    sum_k (x_ik - 2 p_k) alpha_k over the QTL with p_k the founders' frequencies.
    y = 10 + sex + herd + tbv + e, with sex effect 0.5 (males) and herd effects N(0, 0.25).

    Examples
    --------
    >>> import lmmbook
    >>> pop = lmmbook.simulate_population(2, 50, 5, n_snp=200, n_qtl=10, seed=1)
    >>> pop.genotypes.shape, sorted(set(pop.genotypes.ravel().tolist()))
    ((150, 200), [0.0, 1.0, 2.0])
    """
    if not 0 < h2 < 1:
        raise InputError(f"h2 must be strictly between 0 and 1, got {h2}.")
    if n_qtl < 1 or n_qtl > n_snp or n_chromosomes < 1 or n_snp < 1:
        raise InputError("need 1 <= n_qtl <= n_snp and n_chromosomes >= 1.")
    if not 0 <= missing_rate < 1:
        raise InputError(f"missing_rate must be in [0, 1), got {missing_rate}.")
    rng = np.random.default_rng(seed)
    # the genetic map: positions in morgans on one line, chromosome c starting at c * 10
    chrom = np.sort(rng.integers(0, n_chromosomes, n_snp))
    pos_cM = np.concatenate([np.sort(rng.random(np.sum(chrom == c)) * chromosome_cM)
                             for c in range(n_chromosomes)])
    chrom_start = np.arange(n_chromosomes) * 10.0 + 1e-9
    chrom_len_M = np.full(n_chromosomes, chromosome_cM / 100.0)
    position_M = chrom * 10.0 + 1e-9 + pos_cM / 100.0

    def gamete(h1, h2_):
        return _gamete(rng, h1, h2_, chrom_start, chrom_len_M, position_M)

    # historical population: drift and recombination build LD
    p0 = np.clip(rng.beta(0.8, 0.8, n_snp), 0.02, 0.98)
    size = historical_size
    H1 = (rng.random((size, n_snp)) < p0).astype(np.int8)
    H2 = (rng.random((size, n_snp)) < p0).astype(np.int8)
    for _ in range(historical_generations):
        parents = rng.integers(0, size, (size, 2))
        H1, H2 = (np.array([gamete(H1[a], H2[a]) for a in parents[:, 0]]),
                  np.array([gamete(H1[b], H2[b]) for b in parents[:, 1]]))

    ped = simulate_pedigree(n_generations, n_per_generation, n_sires, seed=int(rng.integers(2**31)))
    n = len(ped)
    pat = np.empty((n, n_snp), np.int8)
    mat = np.empty((n, n_snp), np.int8)
    founders = ped["generation"].to_numpy() == 0
    # founders sample two haplotypes from the historical population's last generation
    pick = rng.integers(0, size, (founders.sum(), 2))
    pat[founders] = np.where(rng.random((founders.sum(), 1)) < 0.5, H1[pick[:, 0]], H2[pick[:, 0]])
    mat[founders] = np.where(rng.random((founders.sum(), 1)) < 0.5, H1[pick[:, 1]], H2[pick[:, 1]])
    sire = ped["sire"].to_numpy() - 1
    dam = ped["dam"].to_numpy() - 1
    for i in np.flatnonzero(~founders):
        pat[i] = gamete(pat[sire[i]], mat[sire[i]])
        mat[i] = gamete(pat[dam[i]], mat[dam[i]])
    X = (pat + mat).astype(float)

    base_p = X[founders].mean(axis=0) / 2.0
    candidates = np.flatnonzero((base_p > 0) & (base_p < 1))
    if len(candidates) < n_qtl:
        raise InputError(f"only {len(candidates)} loci are polymorphic in the founders; ask for "
                         "fewer QTL or more SNPs.")
    qtl = np.sort(rng.choice(candidates, n_qtl, replace=False))
    alpha = rng.normal(0.0, 1.0, n_qtl)
    raw = (X[:, qtl] - 2.0 * base_p[qtl]) @ alpha
    scale = np.sqrt(h2 / raw[founders].var())
    alpha *= scale
    tbv = raw * scale

    names = np.array([f"snp{k + 1:0{len(str(n_snp))}d}" for k in range(n_snp)])
    sex = ped["sex"].to_numpy()
    herd = rng.integers(1, n_herds + 1, n)
    herd_effect = rng.normal(0.0, 0.5, n_herds)
    y = 10.0 + np.where(sex == "M", 0.5, 0.0) + herd_effect[herd - 1] + tbv + rng.normal(
        0.0, np.sqrt(1.0 - h2), n)
    generation = ped["generation"].to_numpy()
    shown = (range(n_generations) if phenotyped_generations is None
             else list(phenotyped_generations))
    y[~np.isin(generation, list(shown))] = np.nan
    if missing_rate > 0:
        X[rng.random(X.shape) < missing_rate] = np.nan
    ids = ped["animal"].to_numpy()
    index = pd.Index(ids, name="animal")
    return Population(
        pedigree=ped.drop(columns="tbv"),
        ids=ids,
        genotypes=X,
        snp_map=pd.DataFrame({"snp": names, "chromosome": chrom + 1, "position_cM": pos_cM,
                              "qtl": np.isin(np.arange(n_snp), qtl)}),
        qtl_effects=pd.Series(alpha, index=pd.Index(names[qtl], name="snp"), name="effect"),
        tbv=pd.Series(tbv, index=index, name="tbv"),
        phenotypes=pd.DataFrame({"sex": sex, "herd": [f"H{h:02d}" for h in herd], "y": y},
                                index=index),
        sigma2_a=float(h2),
        sigma2_e=float(1.0 - h2),
        base_allele_freq=base_p,
    )
