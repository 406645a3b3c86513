"""Simulated genomes along a pedigree, with selection and a known truth (chapters 5-8).

A historical population of size Ne builds linkage disequilibrium over many chromosomes; its last
generation founds a pedigree along which gametes are drawn with Haldane crossovers; parents may be
chosen by truncation on phenotype or on pedigree EBV; QTL may sit on or off the marker panel.
Like every simulator of the package it draws only from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import InputError
from .mme import solve_mme
from .pedigree import Pedigree

__all__ = ["Population", "simulate_population"]


@dataclass(frozen=True, eq=False)
class Population:
    """A simulated genotyped population with its pedigree, true breeding values and phenotypes.

    Attributes
    ----------
    pedigree : pandas.DataFrame
        ``animal``, ``sire``, ``dam`` (0 = unknown), ``sex`` ("M" or "F") and ``generation``
        (0 = founders), one row per animal, parents before their offspring.
    ids : (q,) ndarray of int
        Animal IDs, the rows of ``genotypes``, ``qtl_genotypes`` and of every frame below.
    genotypes : (q, m) ndarray
        The marker panel (the "chip"): counts 0/1/2 (float), NaN for a missing call.
    snp_map : pandas.DataFrame
        One row per marker of the panel: ``snp`` (name), ``chromosome`` (1, 2, ...),
        ``position_cM`` (from the start of its chromosome) and ``qtl`` (True where the marker is
        itself a QTL; never with ``qtl_on_chip=False``).
    qtl_map : pandas.DataFrame
        One row per QTL: ``qtl`` (name: the SNP's name when the QTL is on the panel, else
        ``qtl1``, ``qtl2``, ...), ``chromosome``, ``position_cM``, ``effect`` (allele
        substitution effect alpha), ``base_freq`` (frequency in the founders) and ``on_chip``.
    qtl_effects : pandas.Series
        ``qtl_map``'s effects indexed by QTL name (for QTL on the panel, by SNP name).
    qtl_genotypes : (q, n_qtl) ndarray
        Counts 0/1/2 (float, never missing) at the QTL, columns in ``qtl_map`` order.
    tbv : pandas.Series
        True breeding value, indexed by animal, centred on the founders' mean:
        ``(qtl_genotypes - 2 base_freq) @ effect``.
    phenotypes : pandas.DataFrame
        Indexed by animal: ``sex``, ``herd``, ``y`` (NaN where not phenotyped).
    sigma2_a, sigma2_e : float
        Additive variance of the founders' true breeding values (h2) and the residual variance
        (1 - h2).
    base_allele_freq : (m,) ndarray
        Allele frequencies of the panel's markers in the founders (generation 0).
    chromosome_cM : (n_chromosomes,) ndarray
        Length of each chromosome in centimorgans.
    Ne, historical_generations : int
        Size of the historical population and how many generations it was run.
    selection : {None, "phenotype", "ebv"}
        How the parents of each generation were chosen.
    selection_summary : pandas.DataFrame
        One row per generation after the founders (indexed by ``generation``):
        ``male_candidates``, ``female_candidates``, ``sires``, ``dams``, ``sire_proportion``,
        ``dam_proportion`` (selected / candidates), ``sire_mean_tbv`` (mean true breeding
        value of the chosen sires) and ``mean_tbv`` (of the animals born in that generation).
    selection_criteria : pandas.DataFrame
        One row per candidate and generation bred: ``generation`` (of the offspring), ``animal``,
        ``sex``, ``criterion`` (own phenotype, pedigree EBV, or NaN for random choice) and
        ``selected``.
    """

    pedigree: pd.DataFrame
    ids: np.ndarray
    genotypes: np.ndarray
    snp_map: pd.DataFrame
    qtl_map: pd.DataFrame
    qtl_effects: pd.Series
    qtl_genotypes: np.ndarray
    tbv: pd.Series
    phenotypes: pd.DataFrame
    sigma2_a: float
    sigma2_e: float
    base_allele_freq: np.ndarray
    chromosome_cM: np.ndarray
    Ne: int
    historical_generations: int
    selection: str | None
    selection_summary: pd.DataFrame
    selection_criteria: pd.DataFrame

    @property
    def snp_names(self) -> np.ndarray:
        """(m,) names of the panel's markers, the columns of ``genotypes``."""
        return self.snp_map["snp"].to_numpy()

    @property
    def snp_chromosome(self) -> np.ndarray:
        """(m,) chromosome (1, 2, ...) of each marker of the panel."""
        return self.snp_map["chromosome"].to_numpy()

    @property
    def snp_position_cM(self) -> np.ndarray:
        """(m,) position of each marker from the start of its chromosome, in centimorgans."""
        return self.snp_map["position_cM"].to_numpy()

    @property
    def genome_length_M(self) -> float:
        """Total length of the genome in morgans (the L of M_e = 2 Ne L / ln(Ne L))."""
        return float(self.chromosome_cM.sum() / 100.0)

    @property
    def animals(self) -> pd.DataFrame:
        """One row per animal: pedigree, ``herd``, ``y`` and ``tbv``, indexed by animal."""
        frame = self.pedigree.set_index("animal")
        return frame.assign(herd=self.phenotypes["herd"], y=self.phenotypes["y"], tbv=self.tbv)

    def genotype_frame(self) -> pd.DataFrame:
        """The genotypes as a DataFrame: animals by SNPs."""
        return pd.DataFrame(self.genotypes, index=pd.Index(self.ids, name="animal"),
                            columns=self.snp_names)


class _Genome:
    """Loci on chromosomes: chromosome (0-based) and position (morgans) of each locus, sorted.

    ``coordinate`` puts the chromosomes end to end; ``start[c]:end[c]`` are chromosome c's loci.
    """

    def __init__(self, lengths_M: np.ndarray, chromosome: np.ndarray, position_M: np.ndarray):
        self.lengths_M = lengths_M
        self.chromosome = chromosome
        self.position_M = position_M
        self.edges = np.r_[0.0, np.cumsum(lengths_M)]
        self.coordinate = self.edges[chromosome] + position_M
        c = np.arange(len(lengths_M))
        self.start = np.searchsorted(chromosome, c, side="left")
        self.end = np.searchsorted(chromosome, c, side="right")

    @classmethod
    def draw(cls, rng: np.random.Generator, n_loci: int, lengths_M: np.ndarray) -> _Genome:
        """Loci at uniform positions over the whole genome: a chromosome's share of the loci is
        its share of the length."""
        edges = np.r_[0.0, np.cumsum(lengths_M)]
        coordinate = np.sort(rng.random(n_loci)) * edges[-1]
        chromosome = np.minimum(np.searchsorted(edges, coordinate, side="right") - 1,
                                len(lengths_M) - 1)
        return cls(lengths_M, chromosome, coordinate - edges[chromosome])

    def subset(self, loci: np.ndarray) -> _Genome:
        return _Genome(self.lengths_M, self.chromosome[loci], self.position_M[loci])


def _meiosis(rng: np.random.Generator, pat: np.ndarray, mat: np.ndarray, parents: np.ndarray,
             genome: _Genome) -> np.ndarray:
    """One gamete from each parent in ``parents`` (rows of the (., m) haplotypes pat and mat).

    Haldane's map: on a chromosome of L morgans the crossovers are Poisson(L) at uniform
    positions (no interference); each chromosome starts on a random one of the parent's two
    haplotypes, independently of the other chromosomes. Vectorised over gametes: every
    "switch" (a crossover, or a start on the second haplotype) is marked at the first locus
    after it, and the running parity of the marks picks the haplotype at each locus.
    """
    n_gametes, m = len(parents), pat.shape[1]
    n_chrom = len(genome.lengths_M)
    counts = rng.poisson(genome.lengths_M, (n_gametes, n_chrom)).ravel()
    which = np.repeat(np.arange(n_gametes * n_chrom), counts)
    g, c = which // n_chrom, which % n_chrom
    column = np.searchsorted(genome.coordinate,
                             genome.edges[c] + rng.random(len(which)) * genome.lengths_M[c])
    column = np.where(column < genome.end[c], column, m)  # past the last locus: nothing to switch
    g0, c0 = np.nonzero(rng.random((n_gametes, n_chrom)) < 0.5)  # start on the second haplotype
    column0 = np.where(genome.start[c0] < genome.end[c0], genome.start[c0], m)
    switch = np.zeros(n_gametes * (m + 1), np.uint8)
    np.bitwise_xor.at(switch, np.concatenate([g * (m + 1) + column, g0 * (m + 1) + column0]), 1)
    second = np.bitwise_xor.accumulate(switch.reshape(n_gametes, m + 1)[:, :m], axis=1)
    return np.where(second.view(bool), mat[parents], pat[parents])


def _chromosome_lengths(n_chromosomes: int, chromosome_cM: Any,
                        genome_length_M: float | None) -> np.ndarray:
    """Chromosome lengths in morgans from the caller's choice of arguments."""
    if n_chromosomes < 1:
        raise InputError(f"n_chromosomes must be at least 1, got {n_chromosomes}.")
    if chromosome_cM is not None and genome_length_M is not None:
        raise InputError("give either chromosome_cM (each chromosome's length) or "
                         "genome_length_M (the total, split equally), not both.")
    if genome_length_M is not None:
        if not np.isfinite(genome_length_M) or genome_length_M <= 0:
            raise InputError(f"genome_length_M must be positive, got {genome_length_M}.")
        return np.full(n_chromosomes, genome_length_M / n_chromosomes)
    cM = np.atleast_1d(np.asarray(100.0 if chromosome_cM is None else chromosome_cM, float))
    if cM.ndim != 1 or len(cM) not in (1, n_chromosomes):
        raise InputError(f"chromosome_cM must be one length or {n_chromosomes} lengths "
                         f"(n_chromosomes), got {len(cM)}.")
    if not np.all(np.isfinite(cM) & (cM > 0)):
        raise InputError(f"chromosome lengths must be positive, got {cM.tolist()}.")
    return np.broadcast_to(cM, (n_chromosomes,)) / 100.0


def _fixed_design(male: np.ndarray, herd: np.ndarray) -> np.ndarray:
    """X of the selection model: overall mean, male (when both sexes have records) and one
    column per herd with records but the first."""
    columns = [np.ones(len(male))]
    if 0 < male.sum() < len(male):
        columns.append(male.astype(float))
    columns += [(herd == h).astype(float) for h in np.unique(herd)[1:]]
    return np.column_stack(columns)


def _pedigree_ebv(sire: np.ndarray, dam: np.ndarray, y: np.ndarray, recorded: np.ndarray,
                  male: np.ndarray, herd: np.ndarray, sigma2_a: float,
                  sigma2_e: float) -> np.ndarray:
    """Pedigree BLUP of every animal (IDs 1..q, parents coded 1..q, 0 unknown) from the records
    of the ``recorded`` ones: Henderson's MME with the sparse A^-1, variances as given."""
    ids = np.arange(1, len(sire) + 1)
    ped = Pedigree(ids, sire, dam)
    rec = np.flatnonzero(recorded)
    fit = solve_mme(y[rec], _fixed_design(male[rec], herd[rec]), ped.incidence(ids[rec]),
                    ped.A_inverse(), sigma2_a, sigma2_e, compute_pev=False)
    return fit.u[ped.index(ids)]


def _best(candidates: np.ndarray, criterion: np.ndarray, k: int) -> np.ndarray:
    """Truncation selection: the k candidates with the highest criterion (ties by birth)."""
    return candidates[np.argsort(-criterion[candidates], kind="stable")[:k]]


def simulate_population(
    n_generations: int = 4,
    n_per_generation: int = 400,
    n_sires: int = 20,
    *,
    n_dams: int | None = None,
    n_snp: int = 2000,
    n_chromosomes: int = 5,
    chromosome_cM: Any = None,
    genome_length_M: float | None = None,
    n_qtl: int = 100,
    qtl_on_chip: bool = True,
    h2: float = 0.4,
    n_herds: int = 10,
    Ne: int | None = None,
    historical_generations: int = 100,
    historical_size: int | None = None,
    selection: Literal["phenotype", "ebv"] | None = None,
    overlapping: int = 1,
    phenotyped_generations: Any = None,
    missing_rate: float = 0.0,
    seed: int,
) -> Population:
    """Simulate genomes along a pedigree: markers in linkage disequilibrium, QTL, selection.

    Parameters
    ----------
    n_generations, n_per_generation : int
        The recorded population: ``n_per_generation`` founders (generation 0), then
        ``n_generations`` generations of as many animals each, half of them male on average.
    n_sires : int
        Sires chosen for each generation among the male candidates (so the selected proportion
        of sires is ``n_sires`` / male candidates, reported in ``selection_summary``).
    n_dams : int, optional
        Dams chosen among the female candidates; by default every female candidate is a dam.
    n_snp : int
        Markers on the panel (the "chip").
    n_chromosomes : int
        Number of chromosomes.
    chromosome_cM : float or (n_chromosomes,) array_like, optional
        Length of each chromosome in centimorgans (one value for all, or one per chromosome);
        100 cM by default. Not with ``genome_length_M``.
    genome_length_M : float, optional
        Total genome length in morgans, split equally over the chromosomes (cattle: about 30 M
        on 29 autosomes). Not with ``chromosome_cM``.
    n_qtl : int
        Loci with an effect on the trait, all segregating in the founders.
    qtl_on_chip : bool
        True: the QTL are markers of the panel (the old textbook case). False: they are drawn
        among loci that are *not* on the panel, so that markers see them only through linkage
        disequilibrium, as with real causal variants.
    h2 : float
        Heritability in the founders: QTL effects are scaled so that Var(tbv) = h2 there, and the
        residual variance is 1 - h2.
    n_herds : int
        Herds, a fixed effect with random levels assigned to animals at birth.
    Ne : int, optional
        Size of the historical population (random mating, Wright-Fisher): its effective size,
        which sets the linkage disequilibrium. Default 100.
    historical_generations : int
        Generations the historical population is run before the founders are drawn from it;
        fewer than 6 ``Ne`` (beyond that drift would fix more than 95 % of the loci).
    historical_size : int, optional
        The former name of ``Ne``, still accepted.
    selection : {None, "phenotype", "ebv"}
        How the parents of generation t are chosen among the candidates (the animals born in the
        ``overlapping`` generations before t): at random (None), or by truncation, within sex,
        on the own phenotype ("phenotype") or on pedigree BLUP ("ebv") from every record of the
        animals born before t, with the true variances sigma2_a = h2 and sigma2_e = 1 - h2.
    overlapping : int
        How many generations the candidates span: 1 gives discrete generations.
    phenotyped_generations : iterable of int, optional
        Generations with phenotypes; by default all but the last (the young candidates).
        Selection sees only these records.
    missing_rate : float
        Share of genotype calls set to NaN at random (drawn last: the same seed gives the same
        genomes with or without missing calls).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Population
        With ``genotypes`` of shape (q, m), q = ``n_per_generation * (n_generations + 1)``
        animals and m = ``n_snp`` markers.

    Raises
    ------
    InputError
        An argument out of range (the message names it), ``historical_generations`` >= 6 Ne,
        too few loci segregating in the founders to build the panel, candidates of one sex
        missing, phenotype selection of unphenotyped candidates, or EBV selection before any
        record.

    Notes
    -----
    *Genome and history.* A pool of loci is spread uniformly over the genome (a chromosome's
    share of loci is its share of the length), with starting allele frequencies U(0, 1) in
    linkage equilibrium, and ``Ne`` individuals mate at random for ``historical_generations``
    generations. Drift and recombination build linkage disequilibrium: between loci c morgans
    apart, r^2 approaches Sved's (1971) 1 / (1 + 4 Ne c) for c larger than about
    1 / ``historical_generations`` (with the default 100, beyond ~1 cM; closer loci keep less
    LD than at equilibrium). Drift also fixes loci: a share exp(-T / (2 Ne)) still segregates
    after T generations, and the pool is drawn that much larger. The founders are the
    offspring of one more generation of random mating; the panel (and the QTL) are drawn among
    the loci segregating in them, as real chips are built from SNPs that segregate in the
    breed. Cost: about T * 2 Ne * (pool size) operations, 0.3 s for Ne = 100, T = 100 and
    3,000 markers plus 300 QTL on 30 chromosomes.

    *Meiosis.* Haldane's map: the number of crossovers on a chromosome of L morgans is
    Poisson(L), at uniform positions; chromosomes assort independently.

    *Trait.* Breeding values are sum_k (x_ik - 2 p_k) alpha_k over the QTL, with p_k the
    founders' frequencies and alpha_k ~ N(0, 1) scaled to Var(tbv) = h2 in the founders.
    Records y = 10 + sex + herd + tbv + e, with sex effect 0.5 (males) and herd effects
    N(0, 0.25), e ~ N(0, 1 - h2), drawn for every animal at birth.

    *Selection and mating.* Each generation, each dam is mated to one sire (sires share the
    dams equally, at random) and the ``n_per_generation`` offspring are spread evenly over the
    dams: with every female a dam, about two full sibs per dam. "ebv" solves the animal model
    y = mean + male + herd + animal with A^-1 (Henderson 1976, :func:`lmmbook.solve_mme`) once
    per generation. With selection the pedigree is built generation by generation; the
    chosen parents and every candidate's criterion are in ``selection_criteria``.

    *Defaults and a realistic setting.* The defaults keep the small teaching genome of the
    first edition (5 chromosomes of 1 M, QTL on the chip, no selection), which flatters genomic
    prediction (GBLUP accuracy of the young about 0.75, SD of g_ij among full sibs about
    0.12). Closer to a dairy population: ``simulate_population(4, 400, 20, n_snp=3000,
    n_chromosomes=30, genome_length_M=30.0, Ne=100, n_qtl=300, qtl_on_chip=False, h2=0.3,
    selection="ebv", seed=...)``, 2,000 animals in about a second, gives GBLUP accuracies of
    the young near 0.5 and a full-sib SD of g_ij near 0.06 (0.04 from the genome itself, as
    in real cattle; the rest is the sampling of 3,000 markers).

    References: Haldane (1919); Sved (1971) Theor. Pop. Biol. 2:125; Meuwissen, Hayes &
    Goddard (2001) Genetics 157:1819 (the design of simulations of genomic selection);
    Daetwyler et al. (2008) PLoS ONE 3:e3395 and Goddard (2009) Genetica 136:245 for the
    expected accuracy (:func:`lmmbook.expected_accuracy`).

    Examples
    --------
    >>> import lmmbook
    >>> pop = lmmbook.simulate_population(2, 50, 5, n_snp=200, n_qtl=10, seed=1)
    >>> pop.genotypes.shape, sorted(set(pop.genotypes.ravel().tolist()))
    ((150, 200), [0.0, 1.0, 2.0])

    Thirty chromosomes, QTL off the panel and two generations of selection on pedigree EBVs:

    >>> pop = lmmbook.simulate_population(
    ...     2, 60, 4, n_snp=300, n_chromosomes=30, genome_length_M=30.0, n_qtl=20,
    ...     qtl_on_chip=False, selection="ebv", h2=0.3, seed=2)
    >>> round(pop.genome_length_M, 6), bool(pop.snp_map["qtl"].any()), len(pop.qtl_map)
    (30.0, False, 20)
    >>> pop.selection_summary[["male_candidates", "sires", "sire_proportion"]].round(3)
                male_candidates  sires  sire_proportion
    generation
    1                        26      4            0.154
    2                        22      4            0.182
    """
    if not 0 < h2 < 1:
        raise InputError(f"h2 must be strictly between 0 and 1, got {h2}.")
    if n_snp < 1 or n_qtl < 1 or (qtl_on_chip and n_qtl > n_snp):
        raise InputError(f"need n_snp >= 1 and n_qtl >= 1, and n_qtl <= n_snp when the QTL are "
                         f"on the chip; got n_snp={n_snp}, n_qtl={n_qtl}.")
    if n_generations < 0 or n_per_generation < 2 or n_sires < 1 or overlapping < 1:
        raise InputError("need n_generations >= 0, n_per_generation >= 2, n_sires >= 1 and "
                         "overlapping >= 1.")
    if n_dams is not None and n_dams < 1:
        raise InputError(f"n_dams must be at least 1 (or None: every female), got {n_dams}.")
    if n_herds < 1:
        raise InputError(f"n_herds must be at least 1, got {n_herds}.")
    if selection not in (None, "phenotype", "ebv"):
        raise InputError(f"selection must be None, 'phenotype' or 'ebv', got {selection!r}.")
    if not 0 <= missing_rate < 1:
        raise InputError(f"missing_rate must be in [0, 1), got {missing_rate}.")
    if Ne is not None and historical_size is not None and Ne != historical_size:
        raise InputError(f"Ne={Ne} and historical_size={historical_size} name the same size; "
                         "give one (historical_size is the former name of Ne).")
    Ne = int(Ne if Ne is not None else historical_size if historical_size is not None else 100)
    if Ne < 2 or historical_generations < 0:
        raise InputError(f"need Ne >= 2 and historical_generations >= 0, got Ne={Ne}, "
                         f"historical_generations={historical_generations}.")
    lengths_M = _chromosome_lengths(n_chromosomes, chromosome_cM, genome_length_M)
    rng = np.random.default_rng(seed)
    n = n_per_generation

    # the historical population: drift and recombination build LD; the pool is drawn larger by
    # the share of loci that drift is expected to fix (exp(-T / 2Ne) still segregate)
    needed = n_snp + (0 if qtl_on_chip else n_qtl)
    still_segregating = np.exp(-historical_generations / (2.0 * Ne))
    if still_segregating < 0.05:
        raise InputError(
            f"{historical_generations} historical generations at Ne={Ne} would fix all but "
            f"{still_segregating:.2g} of the loci (exp(-T / 2Ne)); keep historical_generations "
            f"below 6 Ne = {6 * Ne}.")
    n_pool = int(np.ceil(1.3 * needed / still_segregating)) + 20
    pool = _Genome.draw(rng, n_pool, lengths_M)
    p_start = rng.random(n_pool)
    pat = (rng.random((Ne, n_pool)) < p_start).astype(np.int8)
    mat = (rng.random((Ne, n_pool)) < p_start).astype(np.int8)
    for _ in range(historical_generations):
        gametes = _meiosis(rng, pat, mat, rng.integers(0, Ne, 2 * Ne), pool)
        pat, mat = gametes[:Ne], gametes[Ne:]
    founders = _meiosis(rng, pat, mat, rng.integers(0, Ne, 2 * n), pool)

    # the panel and the QTL, among the loci that segregate in the founders
    p_founders = founders.mean(axis=0)
    segregating = np.flatnonzero((p_founders > 0) & (p_founders < 1))
    if len(segregating) < needed:
        raise InputError(
            f"only {len(segregating)} loci segregate in the founders after "
            f"{historical_generations} generations at Ne={Ne}, and {needed} are needed; ask for "
            "fewer markers or QTL, or fewer historical generations.")
    loci = np.sort(rng.choice(segregating, needed, replace=False))
    if qtl_on_chip:
        chip = np.arange(needed)
        qtl = np.sort(rng.choice(needed, n_qtl, replace=False))
    else:
        is_qtl = np.zeros(needed, bool)
        is_qtl[rng.choice(needed, n_qtl, replace=False)] = True
        chip, qtl = np.flatnonzero(~is_qtl), np.flatnonzero(is_qtl)
    genome = pool.subset(loci)

    total = n * (n_generations + 1)
    PAT = np.empty((total, needed), np.int8)
    MAT = np.empty((total, needed), np.int8)
    PAT[:n], MAT[:n] = founders[:n, loci], founders[n:, loci]
    generation = np.repeat(np.arange(n_generations + 1), n)
    sire = np.zeros(total, np.int64)
    dam = np.zeros(total, np.int64)
    sex = np.empty(total, np.int8)  # 0 male, 1 female
    herd = np.empty(total, np.int64)
    tbv = np.empty(total)
    y = np.empty(total)
    herd_effect = rng.normal(0.0, 0.5, n_herds)
    base_p = (PAT[:n] + MAT[:n]).mean(axis=0) / 2.0
    alpha = rng.normal(0.0, 1.0, n_qtl)
    raw = (PAT[:n, qtl] + MAT[:n, qtl] - 2.0 * base_p[qtl]) @ alpha
    alpha *= np.sqrt(h2 / raw.var())

    def born(rows):
        k = len(rows)
        sex[rows] = rng.integers(0, 2, k)
        herd[rows] = rng.integers(0, n_herds, k)
        tbv[rows] = (PAT[rows][:, qtl] + MAT[rows][:, qtl] - 2.0 * base_p[qtl]) @ alpha
        y[rows] = (10.0 + np.where(sex[rows] == 0, 0.5, 0.0) + herd_effect[herd[rows]]
                   + tbv[rows] + rng.normal(0.0, np.sqrt(1.0 - h2), k))

    born(np.arange(n))
    shown = (list(range(n_generations)) if phenotyped_generations is None
             else [int(g) for g in phenotyped_generations])
    phenotyped = np.isin(generation, shown)
    summary, criteria = [], []
    for t in range(1, n_generations + 1):
        so_far = t * n
        candidates = np.flatnonzero(generation[:so_far] >= t - overlapping)
        males, females = candidates[sex[candidates] == 0], candidates[sex[candidates] == 1]
        if len(males) == 0 or len(females) == 0:
            raise InputError(f"generation {t} has no {'males' if len(males) == 0 else 'females'}"
                             " among its candidates to breed from; raise n_per_generation.")
        n_s = min(n_sires, len(males))
        n_d = len(females) if n_dams is None else min(n_dams, len(females))
        if selection is None:
            criterion = np.full(so_far, np.nan)
            sires = rng.choice(males, n_s, replace=False)
            dams = females if n_dams is None else rng.choice(females, n_d, replace=False)
        else:
            if selection == "phenotype":
                unrecorded = candidates[~phenotyped[candidates]]
                if len(unrecorded):
                    raise InputError(
                        f"selection='phenotype' needs a record on every candidate, but "
                        f"generation(s) {sorted(set(generation[unrecorded].tolist()))} have no "
                        "phenotypes; add them to phenotyped_generations or use selection='ebv'.")
                criterion = y[:so_far]
            else:
                if not phenotyped[:so_far].any():
                    raise InputError(
                        f"selection='ebv' for generation {t} has no record to predict from: "
                        f"no animal born before it is in phenotyped_generations {sorted(shown)}.")
                criterion = _pedigree_ebv(sire[:so_far], dam[:so_far], y[:so_far],
                                          phenotyped[:so_far], sex[:so_far] == 0,
                                          herd[:so_far], h2, 1.0 - h2)
            sires = _best(males, criterion, n_s)
            dams = females if n_dams is None else _best(females, criterion, n_d)
        criteria.append(pd.DataFrame({
            "generation": t, "animal": candidates + 1,
            "sex": np.where(sex[candidates] == 0, "M", "F"), "criterion": criterion[candidates],
            "selected": np.isin(candidates, np.r_[sires, dams])}))
        # each dam mated to one sire, the sires sharing the dams equally; offspring spread evenly
        mate = sires[rng.permutation(len(dams)) % len(sires)]
        pair = rng.permutation(n) % len(dams)
        s_of, d_of = mate[pair], dams[pair]
        rows = np.arange(so_far, so_far + n)
        gametes = _meiosis(rng, PAT, MAT, np.r_[s_of, d_of], genome)
        PAT[rows], MAT[rows] = gametes[:n], gametes[n:]
        sire[rows], dam[rows] = s_of + 1, d_of + 1
        born(rows)
        summary.append((t, len(males), len(females), len(sires), len(dams),
                        len(sires) / len(males), len(dams) / len(females),
                        tbv[sires].mean(), tbv[rows].mean()))

    X_all = (PAT + MAT).astype(float)
    X = X_all[:, chip]
    y[~phenotyped] = np.nan
    if missing_rate > 0:
        X[rng.random(X.shape) < missing_rate] = np.nan
    ids = np.arange(1, total + 1)
    index = pd.Index(ids, name="animal")
    names = np.array([f"snp{k + 1:0{len(str(n_snp))}d}" for k in range(n_snp)])
    chrom_of = genome.chromosome + 1
    pos_cM = genome.position_M * 100.0
    if qtl_on_chip:
        qtl_names = names[qtl]
    else:
        qtl_names = np.array([f"qtl{k + 1:0{len(str(n_qtl))}d}" for k in range(n_qtl)])
    summary_columns = ["generation", "male_candidates", "female_candidates", "sires", "dams",
                       "sire_proportion", "dam_proportion", "sire_mean_tbv", "mean_tbv"]
    return Population(
        pedigree=pd.DataFrame({"animal": ids, "sire": sire, "dam": dam,
                               "sex": np.where(sex == 0, "M", "F"), "generation": generation}),
        ids=ids,
        genotypes=X,
        snp_map=pd.DataFrame({"snp": names, "chromosome": chrom_of[chip],
                              "position_cM": pos_cM[chip],
                              "qtl": np.isin(chip, qtl) if qtl_on_chip else np.zeros(n_snp, bool)}),
        qtl_map=pd.DataFrame({"qtl": qtl_names, "chromosome": chrom_of[qtl],
                              "position_cM": pos_cM[qtl], "effect": alpha,
                              "base_freq": base_p[qtl], "on_chip": bool(qtl_on_chip)}),
        qtl_effects=pd.Series(alpha, index=pd.Index(qtl_names, name="snp" if qtl_on_chip
                                                    else "qtl"), name="effect"),
        qtl_genotypes=X_all[:, qtl],
        tbv=pd.Series(tbv, index=index, name="tbv"),
        phenotypes=pd.DataFrame({"sex": np.where(sex == 0, "M", "F"),
                                 "herd": [f"H{h + 1:02d}" for h in herd], "y": y}, index=index),
        sigma2_a=float(h2),
        sigma2_e=float(1.0 - h2),
        base_allele_freq=base_p[chip],
        chromosome_cM=np.asarray(lengths_M * 100.0),
        Ne=Ne,
        historical_generations=int(historical_generations),
        selection=selection,
        selection_summary=pd.DataFrame(summary, columns=summary_columns).set_index("generation"),
        selection_criteria=(pd.concat(criteria, ignore_index=True) if criteria else
                            pd.DataFrame(columns=["generation", "animal", "sex", "criterion",
                                                  "selected"])),
    )
