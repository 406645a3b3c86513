"""Quality control of genotyped animals: call rate, heterozygosity, duplicated samples,
parent-offspring conflicts, recorded families and sex (the chapter on real data).

Everything is reported, nothing is dropped: :func:`sample_qc` returns one row per animal with
its measures and flags, the pairs of samples that look like one animal, and every genotyped
parent-offspring pair of a pedigree with its share of opposite homozygotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, format_ids
from .markers import Genotypes, as_genotypes
from .pedigree import Pedigree

__all__ = ["sample_qc", "SampleQC"]

#: Consistency constant of the median absolute deviation: 1.4826 MAD estimates the standard
#: deviation of a normal distribution.
MAD_TO_SD = 1.482602218505602

#: Rows of a block of pair counts (the block is rows x animals, a few of them at once in memory).
PAIR_BLOCK_ENTRIES = 2**22

#: Chromosome labels (case-insensitive, after a leading "chr") that are neither autosomes nor the
#: X: the Y, PLINK's XY (the pseudo-autosomal region) and the mitochondria.
NOT_AUTOSOMES = frozenset({"y", "xy", "mt", "m"})

_MALE = frozenset({"m", "male", "1"})
_FEMALE = frozenset({"f", "female", "2"})
_UNKNOWN = frozenset({"", "0", "-9", "u", "unknown", "nan", "none"})


@dataclass(frozen=True, eq=False)
class SampleQC:
    """What :func:`sample_qc` found; nothing is removed from the data.

    Attributes
    ----------
    animals : pandas.DataFrame
        One row per animal (indexed by ID, in the genotypes' order): ``call_rate``;
        ``heterozygosity`` (share of heterozygous calls on the autosomes) and ``het_z`` (its
        robust z-score); with X markers ``x_markers`` (X calls), ``x_heterozygosity``, ``x_F``
        (1 - observed / expected X heterozygosity), ``recorded_sex`` and ``genetic_sex``
        ("M", "F" or "" when unknown or unclear); with a pedigree ``parentage`` (the verdict of
        the parent-offspring check, "" if none); with families ``family_G`` (mean genomic
        relationship with the other genotyped members of its recorded family, NaN if none),
        ``family_z`` (its robust z-score), ``closest_family`` and ``closest_family_G`` (the other
        family it is most related to, on average). The flags: ``low_call_rate``, ``het_outlier``,
        ``duplicate`` (in a pair of ``duplicates``), ``parent_conflict`` (a genotyped parent
        conflicts with this animal), ``family_outlier`` (far less related to its recorded
        family than animals are to theirs), ``sex_mismatch`` (recorded and genetic sex differ) and
        ``issues`` (a readable list of them, "" for a clean animal).
    duplicates : pandas.DataFrame
        One row per pair of animals whose genotypes agree at least at ``duplicate`` of the
        markers called in both: ``id_1``, ``id_2``, ``markers`` (called in both), ``concordance``,
        most concordant first.
    parentage : pandas.DataFrame
        One row per genotyped offspring and genotyped parent: ``offspring``, ``role`` ("sire" or
        "dam"), ``parent``, ``markers`` (autosomal, called in both), ``opposite_homozygotes``,
        ``share`` (their share of ``markers``), ``conflict`` (``share`` above ``mendel``) and
        ``suspect``: "parent" when the other parent is genotyped and agrees, "offspring" when both
        parents conflict (the offspring's own sample or record is the likelier error),
        "parent or offspring" when the other parent is not genotyped, "" without a conflict.
        Empty without a pedigree.
    thresholds : dict
        The rules applied, by argument name of :func:`sample_qc`.
    """

    animals: pd.DataFrame
    duplicates: pd.DataFrame
    parentage: pd.DataFrame
    thresholds: dict = field(default_factory=dict)

    @property
    def flagged(self) -> np.ndarray:
        """IDs of the animals with at least one flag, in the genotypes' order."""
        return self.animals.index[self.animals["issues"] != ""].to_numpy()

    def to_frame(self) -> pd.DataFrame:
        """The per-animal table (a copy of ``animals``)."""
        return self.animals.copy()

    def summary(self) -> pd.DataFrame:
        """One row per check: the rule, how many animals (or pairs) it flags, and which."""
        a, t = self.animals, self.thresholds
        rows = [("call rate", f"< {t['call_rate']:g}", a.index[a["low_call_rate"]]),
                ("heterozygosity", f"|robust z| > {t['het_sd']:g}", a.index[a["het_outlier"]]),
                ("duplicates", f"concordance >= {t['duplicate']:g}", a.index[a["duplicate"]])]
        if "parent_conflict" in a:
            rows.append(("parentage", f"opposite homozygotes > {t['mendel']:g}",
                         a.index[a["parent_conflict"]]))
        if "family_outlier" in a:
            rows.append(("family", f"mean G with own family: robust z < -{t['family_sd']:g}",
                         a.index[a["family_outlier"]]))
        if "sex_mismatch" in a:
            low, high = t["sex_F"]
            rows.append(("sex", f"X F > {high:g} male, < {low:g} female",
                         a.index[a["sex_mismatch"]]))
        return pd.DataFrame({"rule": [r[1] for r in rows],
                             "flagged": [len(r[2]) for r in rows],
                             "ids": [format_ids(r[2]) if len(r[2]) else "" for r in rows]},
                            index=pd.Index([r[0] for r in rows], name="check"))


def sample_qc(genotypes: Any, *, pedigree: Pedigree | pd.DataFrame | None = None,
              families: Any = None, chromosome: Any = None, sex: Any = None,
              x_chromosome: Any = "X", call_rate: float = 0.9, het_sd: float = 4.0,
              duplicate: float = 0.98, mendel: float = 0.01, family_sd: float = 4.0,
              sex_F: tuple[float, float] = (0.2, 0.8), min_markers: int = 50) -> SampleQC:
    """Quality control of the animals: call rate, heterozygosity, duplicates, parentage, recorded
    families and sex.

    Parameters
    ----------
    genotypes : (n, m) genotypes
        0/1/2 counts with NaN for missing calls, as a DataFrame with the animals' IDs as index
        (needed with a pedigree or a sex given by ID), an array, or an object with ``M``-like
        genotypes that ``lmmbook.markers.as_genotypes`` accepts (a reader's result); if it has
        ``snps["chromosome"]`` (a SNP table), ``families`` and ``sex``, they are used unless
        ``chromosome``, ``families`` and ``sex`` are given.
    pedigree : lmmbook.Pedigree or pandas.DataFrame, optional
        Sires and dams (a DataFrame goes through :meth:`lmmbook.Pedigree.from_frame`). Every
        genotyped animal with a genotyped sire or dam is checked.
    families : (n,) array_like, pandas.Series or mapping, optional
        A recorded family of each animal (PLINK's FID: a full-sib or half-sib family, a line), in
        the rows' order or by ID; None or "" for none. Each animal's mean genomic relationship
        with the other genotyped members of its family is compared with everyone else's.
    chromosome : (m,) array_like or pandas.Series, optional
        Chromosome of each marker (a Series indexed by marker name is joined by name). Needed
        for the sex check; heterozygosity and parentage then use the autosomes only.
    sex : (n,) array_like, pandas.Series or mapping, optional
        Recorded sex, in the rows' order or (Series, mapping) by ID: "M"/"F", "male"/"female" or
        PLINK's codes (1 male, 2 female, any other number unknown); "", None or NaN for unknown.
    x_chromosome : str or int
        The label of the X in ``chromosome`` ("X" by default; e.g. 23 in a human PLINK file,
        30 in cattle). Markers labelled Y, XY (PLINK's pseudo-autosomal region) or MT are not
        autosomes and are not used for the sex check either.
    call_rate : float
        Flag animals called at fewer than this share of the markers (PLINK's ``--mind 0.1``).
    het_sd : float
        Flag animals whose autosomal heterozygosity lies more than this many robust standard
        deviations (1.4826 x the median absolute deviation) from the median.
    duplicate : float
        Report pairs whose genotypes agree at this share or more of the markers called in both.
    mendel : float
        Flag a parent-offspring pair whose share of opposite homozygotes (one 0, the other 2)
        exceeds this.
    family_sd : float
        Flag an animal whose mean relationship with its family lies more than this many robust
        standard deviations below the median of all animals' (only below: a sample from another
        family, or a wrong record).
    sex_F : (float, float)
        X-chromosome F below the first value calls an animal female, above the second male
        (PLINK's ``--check-sex`` defaults); in between its genetic sex is unclear ("").
    min_markers : int
        A pair (or an animal's X) with fewer markers called than this is not judged.

    Returns
    -------
    SampleQC
        ``animals``, ``duplicates``, ``parentage``; ``summary()`` counts the flags.

    Raises
    ------
    InputError
        A pedigree or a sex by ID without IDs in the genotypes, a pedigree that shares no ID
        with the genotypes, ``chromosome`` or ``sex`` of the wrong length, an unreadable sex code
        (the ID is named), a threshold out of range.

    Notes
    -----
    *Call rate and heterozygosity.* A low call rate signals poor DNA; heterozygosity far above
    the others signals a contaminated sample (a mixture of two animals is heterozygous wherever
    they differ), far below an inbred animal or a poor sample. Outliers are judged by the median
    and the median absolute deviation, which the outliers themselves do not pull (Anderson et al.
    2010 use 3 standard deviations of the mean); 4 robust SDs flag about 6 animals in 100,000
    of a normal distribution. Low heterozygosity is often real: in simulated populations of 800
    animals (Ne = 100), 3 to 8 animals per population were flagged low, inbred ones, and none high.

    *Duplicates.* With indicator matrices of the homozygotes Q (x = 0 or 2), of the centred
    counts Y = M - 1 (missing 0), of the heterozygotes H and of the calls C, animals i and j
    carry the same homozygote at (QQ' + YY')_ij / 2 markers, opposite homozygotes at
    (QQ' - YY')_ij / 2, and are both heterozygous at (HH')_ij, of (CC')_ij called in both:
    four products of (n, m) matrices (two without missing calls), taken in blocks of rows and
    in single precision, exact for integer counts below 2^24. A duplicate differs only by
    genotyping errors (well under 1 % on current chips), full sibs at a third or more of the
    markers; inbred lines of one cross can be nearly identical without being one sample, so
    a reported pair is a question, not a verdict.

    *Parentage.* A parent and its offspring share an allele at every marker, so opposite
    homozygotes are genotyping errors, whereas an unrelated animal shows them at
    sum_k 2 p_k^2 (1 - p_k)^2 / m of the markers (several percent). A conflicting parent next to
    one that agrees is the parent to suspect; when both conflict, the offspring's own sample
    (or identity) is. A genotyping error rate e gives a true pair a share of at most about e,
    so on a chip with errors near 1 % raise ``mendel``.

    *Families.* With G = W W' / c of VanRaden's first method on the autosomes (sample
    frequencies, missing calls at the mean), the sums of G over each family are W (W' F) / c
    for the (n, n_families) indicator F: O(n m n_families) work, never the n x n matrix. A
    family's members are related alike (full sibs by about 1/2), so a mean far below everyone
    else's marks a sample of another animal or a wrong family record; ``closest_family`` says
    where it belongs. Families related among themselves (sibships of one sire) do not trigger
    the flag, which looks only at the own family.

    *Sex.* Males carry one X: outside the pseudo-autosomal region they are homozygous, up to
    genotyping errors. As in PLINK's ``--check-sex`` (Purcell et al. 2007), F = 1 - O / E with
    O the heterozygous X calls of an animal and E = sum 2 p_k (1 - p_k) over its called X
    markers, p_k from all animals' calls: about 1 for males, about 0 for females. A female
    homozygous over most of her X (inbred) can pass 0.8: in twelve simulated populations 4 of
    4,769 females did (F up to 0.92), while no male fell below 0.96 with 0.2 % genotyping errors.
    An animal whose F lies between the two thresholds has ``genetic_sex`` "" and is not flagged.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> M = pd.DataFrame(rng.binomial(2, 0.5, size=(30, 400)).astype(float),
    ...                  index=[f"a{i}" for i in range(30)])
    >>> M.loc["copy"] = M.loc["a3"]
    >>> qc = sample_qc(M)
    >>> qc.duplicates[["id_1", "id_2", "concordance"]].to_numpy().tolist()
    [['a3', 'copy', 1.0]]
    >>> qc.flagged.tolist()
    ['a3', 'copy']
    """
    _check_thresholds(call_rate, het_sd, duplicate, mendel, family_sd, sex_F, min_markers)
    if chromosome is None:
        snps = getattr(genotypes, "snps", None)
        if isinstance(snps, pd.DataFrame) and "chromosome" in snps.columns:
            chromosome = snps["chromosome"].to_numpy()
    if sex is None:
        sex = getattr(genotypes, "sex", None)
    if families is None:
        families = getattr(genotypes, "families", None)
    geno = as_genotypes(genotypes, name="genotypes")
    M = geno.M
    n, m = M.shape
    ids = geno.ids if geno.ids is not None else np.arange(n)
    index = pd.Index(ids, name="animal")
    called = ~np.isnan(M)

    is_x = autosome = None
    if chromosome is not None:
        labels = _chromosome_labels(chromosome, geno)
        x_label = _label(x_chromosome)
        is_x = labels == x_label
        autosome = ~is_x & ~np.isin(labels, list(NOT_AUTOSOMES))
        if not autosome.any():
            raise InputError("no marker is on an autosome according to chromosome: check the "
                             f"labels (the X is {x_chromosome!r}).")
    auto = slice(None) if autosome is None else autosome
    recorded = None if sex is None else _sexes(sex, geno, index)  # checked before the work
    family = None if families is None else _families(families, geno, index)
    if pedigree is not None:
        if geno.ids is None:
            raise InputError("a pedigree is joined to the genotypes by ID: give the genotypes as "
                             "a DataFrame with the animals' IDs as index.")
        if isinstance(pedigree, pd.DataFrame):
            pedigree = Pedigree.from_frame(pedigree)
        if not pd.Index(pedigree.ids).isin(index).any():
            raise InputError(
                f"no genotyped animal is in the pedigree (genotypes: {format_ids(ids, 3)}; "
                f"pedigree: {format_ids(pedigree.ids, 3)}): the IDs must be of one kind "
                "(strings vs integers) and spelled alike.")

    table = pd.DataFrame(index=index)
    table["call_rate"] = called.mean(axis=1)
    M_auto = M[:, auto]
    auto_calls = (~np.isnan(M_auto)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        het = (M_auto == 1.0).sum(axis=1) / auto_calls
    table["heterozygosity"] = het
    table["het_z"] = _robust_z(het)
    table["low_call_rate"] = table["call_rate"].to_numpy() < call_rate
    table["het_outlier"] = np.abs(table["het_z"].to_numpy()) > het_sd

    pairs = _concordant_pairs(M, duplicate, min_markers)
    duplicates = pd.DataFrame({"id_1": ids[pairs[0]], "id_2": ids[pairs[1]],
                               "markers": pairs[2].astype(np.int64), "concordance": pairs[3]})
    duplicates = duplicates.sort_values("concordance", ascending=False, kind="stable")
    duplicates = duplicates.reset_index(drop=True)
    in_pair = np.zeros(n, bool)
    in_pair[pairs[0]] = in_pair[pairs[1]] = True
    table["duplicate"] = in_pair
    partners = {}
    for a, b in zip(pairs[0], pairs[1], strict=True):
        partners.setdefault(a, []).append(ids[b])
        partners.setdefault(b, []).append(ids[a])

    parentage = _empty_parentage()
    if pedigree is not None:
        parentage = _parentage(M_auto, ids, pedigree, mendel, min_markers)
        table["parentage"] = ""
        table["parent_conflict"] = False
        for child, rows in parentage[parentage["conflict"]].groupby("offspring", sort=False):
            roles = rows["role"].tolist()
            verdict = ("sire and dam conflict: check the offspring's sample" if len(roles) == 2
                       else f"{roles[0]} {rows['parent'].iloc[0]!r} conflicts")
            table.loc[child, "parentage"] = verdict
            table.loc[child, "parent_conflict"] = True

    if family is not None:
        _family_check(table, M_auto, family, family_sd)

    if is_x is not None and is_x.any():
        _sex_check(table, M[:, is_x], recorded, sex_F, min_markers)
    elif recorded is not None:  # a recorded sex without X markers: kept, not checked
        table["recorded_sex"] = recorded

    table["issues"] = _issues(table, partners, ids)
    thresholds = {"call_rate": call_rate, "het_sd": het_sd, "duplicate": duplicate,
                  "mendel": mendel, "family_sd": family_sd, "sex_F": tuple(sex_F),
                  "min_markers": min_markers}
    return SampleQC(table, duplicates, parentage, thresholds)


def _check_thresholds(call_rate, het_sd, duplicate, mendel, family_sd, sex_F,
                      min_markers) -> None:
    for name, value in (("call_rate", call_rate), ("duplicate", duplicate), ("mendel", mendel)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} is a share in [0, 1], got {value!r}.")
    for name, value in (("het_sd", het_sd), ("family_sd", family_sd)):
        if not value > 0:
            raise InputError(f"{name} must be a positive number of standard deviations, got "
                             f"{value!r}.")
    low, high = sex_F
    if not low <= high:
        raise InputError(f"sex_F = (female below, male above) needs the first value <= the "
                         f"second, got {tuple(sex_F)!r}.")
    if int(min_markers) < 1:
        raise InputError(f"min_markers must be at least 1, got {min_markers!r}.")


def _label(value: Any) -> str:
    text = str(value).strip().lower()
    return text[3:] if text.startswith("chr") else text


def _chromosome_labels(chromosome: Any, geno: Genotypes) -> np.ndarray:
    m = geno.M.shape[1]
    if isinstance(chromosome, pd.Series) and geno.snp_names is not None:
        chromosome = chromosome.reindex(geno.snp_names)
        if chromosome.isna().any():
            missing = np.asarray(geno.snp_names)[chromosome.isna().to_numpy()]
            raise InputError(f"chromosome has no entry for marker(s) {format_ids(missing)}.")
    values = np.asarray(chromosome, dtype=object).ravel()
    if len(values) != m:
        raise InputError(f"chromosome must give one chromosome per marker ({m}), got "
                         f"{len(values)}.")
    return np.array([_label(v) for v in values])


def _robust_z(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    if not finite.any():
        return np.full(len(x), np.nan)
    centre = np.median(x[finite])
    scale = MAD_TO_SD * np.median(np.abs(x[finite] - centre))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - centre) / scale if scale > 0 else np.where(x == centre, 0.0, np.inf)
    return np.where(finite, z, np.nan)


def _concordant_pairs(M: np.ndarray, threshold: float, min_markers: int):
    """Pairs (i < j) with at least min_markers called in both and concordance >= threshold:
    rows, columns, markers in both, concordance."""
    n, m = M.shape
    dtype = np.float32 if m < 2**24 else np.float64  # integer counts below 2^24 are exact
    called = ~np.isnan(M)
    complete = bool(called.all())
    Y = np.where(called, M - 1.0, 0.0).astype(dtype)
    Q = (Y * Y).astype(dtype)
    H = None if complete else (M == 1.0).astype(dtype)
    C = None if complete else called.astype(dtype)
    q = Q.sum(axis=1, dtype=np.float64)
    found = ([], [], [], [])
    block = max(1, PAIR_BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        rest = slice(start, n)
        QQ = (Q[rows] @ Q[rest].T).astype(np.float64)
        YY = (Y[rows] @ Y[rest].T).astype(np.float64)
        if complete:
            both = np.full(QQ.shape, float(m))
            HH = m - q[rows, None] - q[None, rest] + QQ
        else:
            both = (C[rows] @ C[rest].T).astype(np.float64)
            HH = (H[rows] @ H[rest].T).astype(np.float64)
        same = 0.5 * (QQ + YY) + HH
        with np.errstate(invalid="ignore", divide="ignore"):
            conc = same / both
        i, j = np.nonzero((conc >= threshold) & (both >= min_markers))
        j_abs = j + start
        upper = j_abs > i + start
        found[0].append(i[upper] + start)
        found[1].append(j_abs[upper])
        found[2].append(both[i[upper], j[upper]])
        found[3].append(conc[i[upper], j[upper]])
    return tuple(np.concatenate(f) if f else np.array([]) for f in found)


def _empty_parentage() -> pd.DataFrame:
    return pd.DataFrame({"offspring": pd.Series(dtype=object), "role": pd.Series(dtype=object),
                         "parent": pd.Series(dtype=object), "markers": pd.Series(dtype=np.int64),
                         "opposite_homozygotes": pd.Series(dtype=np.int64),
                         "share": pd.Series(dtype=float), "conflict": pd.Series(dtype=bool),
                         "suspect": pd.Series(dtype=object)})


def _parentage(M: np.ndarray, ids: np.ndarray, pedigree: Pedigree, mendel: float,
               min_markers: int) -> pd.DataFrame:
    genotyped = pd.Index(ids)
    row_in_ped = pd.Index(pedigree.ids).get_indexer(genotyped)
    geno_row_of_ped = np.full(len(pedigree), -1)
    geno_row_of_ped[row_in_ped[row_in_ped >= 0]] = np.flatnonzero(row_in_ped >= 0)
    child, parent, role = [], [], []
    for name, parents in (("sire", pedigree.sire), ("dam", pedigree.dam)):
        has = row_in_ped >= 0
        p_ped = np.where(has, parents[np.maximum(row_in_ped, 0)], -1)
        p_geno = np.where(p_ped >= 0, geno_row_of_ped[np.maximum(p_ped, 0)], -1)
        ok = has & (p_geno >= 0)
        child.append(np.flatnonzero(ok))
        parent.append(p_geno[ok])
        role.append(np.full(int(ok.sum()), name, dtype=object))
    child, parent, role = (np.concatenate(a) for a in (child, parent, role))
    order = np.lexsort((role == "dam", child))  # offspring in genotype order, sire first
    child, parent, role = child[order], parent[order], role[order]

    codes = np.where(np.isnan(M), 0, M - 1.0).astype(np.int8)  # -1, 0, 1; missing 0
    calls = (~np.isnan(M)).astype(np.int8)
    opposite = np.zeros(len(child), np.int64)
    both = np.zeros(len(child), np.int64)
    step = max(1, PAIR_BLOCK_ENTRIES // max(M.shape[1], 1))
    for s in range(0, len(child), step):
        c, p = child[s:s + step], parent[s:s + step]
        opposite[s:s + step] = (codes[c] * codes[p] == -1).sum(axis=1)
        both[s:s + step] = (calls[c] & calls[p]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = opposite / both
    conflict = (both >= min_markers) & (share > mendel)
    frame = pd.DataFrame({"offspring": ids[child], "role": role, "parent": ids[parent],
                          "markers": both, "opposite_homozygotes": opposite, "share": share,
                          "conflict": conflict})
    n_genotyped = frame.groupby("offspring", sort=False)["parent"].transform("size").to_numpy()
    n_conflicts = frame.groupby("offspring", sort=False)["conflict"].transform("sum").to_numpy()
    frame["suspect"] = np.select(
        [~conflict, n_conflicts == 2, n_genotyped == 2],
        ["", "offspring", "parent"], default="parent or offspring").astype(object)
    return frame if len(frame) else _empty_parentage()


def _per_animal(values: Any, name: str, geno: Genotypes, index: pd.Index) -> np.ndarray:
    """One value per genotyped animal, as an object array: a Series or mapping is joined by ID
    (a missing ID gives NaN), anything else must be in the rows' order."""
    if isinstance(values, Mapping) and not isinstance(values, pd.Series):
        values = pd.Series(values)
    if isinstance(values, pd.Series):
        if geno.ids is None:
            verb = "are" if name.endswith("s") else "is"
            raise InputError(f"{name} {verb} given by ID: give the genotypes as a DataFrame with "
                             f"the animals' IDs as index (or {name} in the rows' order).")
        return values.reindex(index).to_numpy(dtype=object)
    values = np.asarray(values, dtype=object).ravel()
    if len(values) != len(index):
        raise InputError(f"{name} must give one value per genotyped animal ({len(index)}) in the "
                         f"rows' order, got {len(values)}; or pass a Series by ID.")
    return values


def _sexes(sex: Any, geno: Genotypes, index: pd.Index) -> np.ndarray:
    values = _per_animal(sex, "sex", geno, index)
    out = np.full(len(values), "", dtype=object)
    for k, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[k] = "M" if v == 1 else "F" if v == 2 else ""  # PLINK: other codes unknown
            continue
        text = str(v.item() if isinstance(v, np.generic) else v).strip().lower()
        if text in _MALE:
            out[k] = "M"
        elif text in _FEMALE:
            out[k] = "F"
        elif text not in _UNKNOWN:
            raise InputError(f"sex of animal {index[k]!r} is {v!r}: use 'M'/'F', "
                             "'male'/'female' or PLINK's 1 (male) / 2 (female), and 0, None or "
                             "NaN for unknown.")
    return out


def _families(families: Any, geno: Genotypes, index: pd.Index) -> np.ndarray:
    """The family of each row as an object array, "" for none."""
    values = _per_animal(families, "families", geno, index)
    return np.array(["" if pd.isna(v) else str(v) for v in values], dtype=object)


def _family_check(table: pd.DataFrame, M: np.ndarray, family: np.ndarray, family_sd: float):
    """Mean G of each animal with its family and with the closest other family (see Notes)."""
    p = np.nanmean(M, axis=0) / 2.0
    poly = (p > 0) & (p < 1)
    W = M[:, poly] - 2.0 * p[poly]
    W[np.isnan(W)] = 0.0
    c = 2.0 * float(np.sum(p[poly] * (1.0 - p[poly])))
    has = family != ""
    codes, labels = pd.factorize(pd.Index(family[has]), sort=False)
    rows = np.flatnonzero(has)
    F = np.zeros((len(family), len(labels)))
    F[rows, codes] = 1.0
    sums = W @ (W.T @ F) / c  # (n, families): sum of G_ij over the members j of each family
    size = F.sum(axis=0)
    own = np.full(len(family), np.nan)
    mates = size[codes] - 1
    self_g = np.einsum("ij,ij->i", W[rows], W[rows]) / c
    with np.errstate(invalid="ignore", divide="ignore"):
        own[rows] = np.where(mates > 0, (sums[rows, codes] - self_g) / mates, np.nan)
    mean = sums / size
    mean[rows, codes] = -np.inf  # the closest OTHER family
    closest = np.full(len(family), "", dtype=object)
    closest_g = np.full(len(family), np.nan)
    if len(labels) > 1:
        best = np.argmax(mean, axis=1)
        closest = np.asarray(labels, dtype=object)[best]
        closest_g = mean[np.arange(len(family)), best]
    z = _robust_z(own)
    table["family_G"] = own
    table["family_z"] = z
    table["closest_family"] = closest
    table["closest_family_G"] = closest_g
    table["family_outlier"] = np.nan_to_num(z, nan=0.0) < -family_sd


def _sex_check(table: pd.DataFrame, X: np.ndarray, recorded: np.ndarray | None,
               sex_F: tuple[float, float], min_markers: int) -> None:
    called = ~np.isnan(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.nanmean(X, axis=0) / 2.0
    expected = np.where(called, 2.0 * p * (1.0 - p), 0.0).sum(axis=1)
    observed = (X == 1.0).sum(axis=1)
    x_calls = called.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        F = 1.0 - observed / expected
        x_het = observed / x_calls
    judged = (x_calls >= min_markers) & (expected > 0)
    F = np.where(judged, F, np.nan)
    low, high = sex_F
    genetic = np.where(F > high, "M", np.where(F < low, "F", "")).astype(object)
    table["x_markers"] = x_calls
    table["x_heterozygosity"] = x_het
    table["x_F"] = F
    if recorded is None:
        recorded = np.full(len(table), "", dtype=object)
    table["recorded_sex"] = recorded
    table["genetic_sex"] = genetic
    table["sex_mismatch"] = (recorded != "") & (genetic != "") & (recorded != genetic)


def _issues(table: pd.DataFrame, partners: dict, ids: np.ndarray) -> list[str]:
    out = []
    cols = table.columns
    for k in range(len(table)):
        row = table.iloc[k]
        found = []
        if row["low_call_rate"]:
            found.append(f"call rate {row['call_rate']:.3f}")
        if row["het_outlier"]:
            found.append(f"heterozygosity high (z = {row['het_z']:.1f}: a contaminated sample?)"
                         if row["het_z"] > 0 else
                         f"heterozygosity low (z = {row['het_z']:.1f}: inbred, or a poor sample)")
        if row["duplicate"]:
            found.append(f"duplicate of {format_ids(partners[k])}")
        if "parent_conflict" in cols and row["parent_conflict"]:
            found.append(row["parentage"])
        if "family_outlier" in cols and row["family_outlier"]:
            found.append(f"G with its family {row['family_G']:.2f} (z = {row['family_z']:.1f}); "
                         f"closest: family {row['closest_family']!r} "
                         f"({row['closest_family_G']:.2f})")
        if "sex_mismatch" in cols and row["sex_mismatch"]:
            found.append(f"recorded {row['recorded_sex']}, X says {row['genetic_sex']}")
        out.append("; ".join(found))
    return out
