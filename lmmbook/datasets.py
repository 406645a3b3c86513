"""Small published data sets, typed once from their source, for the chapters and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DuplicateIdError, InputError, UnknownIdError, format_ids
from .readers import GenotypeData, read_plink

__all__ = ["MiceData", "MrodeExample", "WheatData", "dyestuff", "mice", "mrode_example_3_1",
           "mrode_example_5_1", "mrode_example_5_2", "mrode_example_6_1", "mrode_example_6_2",
           "mrode_example_8_1", "mrode_example_11_13", "mrode_example_12_1",
           "mrode_example_12_2", "wheat", "DATA"]

#: The folder of the data sets shipped inside the package (see its README.md for sources,
#: citations and licence); nothing is fetched at run time.
DATA = Path(__file__).resolve().parent / "data"


def mrode_example_3_1() -> pd.DataFrame:
    """Pre-weaning gain of eight beef calves: Mrode's Example 3.1 (animal model BLUP).

    Returns
    -------
    pandas.DataFrame
        One row per animal, indexed by ``animal`` (1..8), with ``sire`` and ``dam`` (0 = unknown),
        ``sex`` ("male"/"female", missing for the three founders without a record) and ``y``, the
        weaning weight gain in kg (NaN for animals without a record).

    Notes
    -----
    Mrode, *Linear Models for the Prediction of Animal Breeding Values*, Example 3.1, analysed
    with sigma2_a = 20 and sigma2_e = 40. No animal is inbred.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_3_1
    >>> df = mrode_example_3_1()
    >>> df.loc[7, ["sire", "dam"]].astype(int).tolist(), float(df.loc[7, "y"])
    ([4, 5], 3.5)
    >>> int(df["y"].notna().sum())
    5
    """
    return pd.DataFrame(
        {
            "animal": np.arange(1, 9),
            "sire": [0, 0, 0, 1, 3, 1, 4, 3],
            "dam": [0, 0, 0, 0, 2, 2, 5, 6],
            "sex": [None, None, None, "male", "female", "female", "male", "male"],
            "y": [np.nan, np.nan, np.nan, 4.5, 2.9, 3.9, 3.5, 5.0],
        }
    ).set_index("animal")


def dyestuff() -> pd.DataFrame:
    """Yield of dyestuff from five samples of each of six batches of an intermediate product.

    Returns
    -------
    pandas.DataFrame
        30 rows with ``batch`` ("A".."F") and ``yield_`` (grams of standard colour; the trailing
        underscore keeps clear of Python's keyword).

    Notes
    -----
    Davies (1947), *Statistical Methods in Research and Production*, distributed as ``Dyestuff``
    with R's lme4, whose REML fit of ``Yield ~ 1 + (1 | Batch)`` is the classic first example of a
    mixed model: batch variance 1764, residual variance 2451 (printed rounded), intercept 1527.50
    (standard error 19.38), REML criterion 319.7. The design is balanced, so REML equals the
    ANOVA estimates: sigma2_e = 58830 / 24 = 2451.25 and sigma2_batch = (MS_batch - MS_e) / 5 =
    1764.05.

    Examples
    --------
    >>> from lmmbook.datasets import dyestuff
    >>> d = dyestuff()
    >>> d.groupby("batch")["yield_"].mean().tolist()
    [1505.0, 1528.0, 1564.0, 1498.0, 1600.0, 1470.0]
    """
    yields = [
        1545, 1440, 1440, 1520, 1580,
        1540, 1555, 1490, 1560, 1495,
        1595, 1550, 1605, 1510, 1560,
        1445, 1440, 1595, 1465, 1545,
        1595, 1630, 1515, 1635, 1625,
        1520, 1455, 1450, 1480, 1445,
    ]
    return pd.DataFrame({"batch": np.repeat(list("ABCDEF"), 5), "yield_": np.array(yields, float)})


@dataclass(frozen=True, eq=False)
class MrodeExample:
    """A worked example of Mrode & Pocrnic (2023): pedigree, records and the variances used.

    Attributes
    ----------
    pedigree : pandas.DataFrame
        ``animal``, ``sire``, ``dam`` (0 = unknown), parents before offspring.
    records : pandas.DataFrame
        One row per record, columns as named in the book's table.
    variances : dict
        The variance components (and covariances) the book analyses the example with.
    genotypes : pandas.DataFrame or None
        Allele counts (0/1/2), one row per genotyped animal (indexed by its ID), one column per
        SNP; None for examples without genotypes.
    """

    pedigree: pd.DataFrame
    records: pd.DataFrame
    variances: dict = field(default_factory=dict)
    genotypes: pd.DataFrame | None = None


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(StringIO(text.strip()))


def _founders_and(n_founders: int, rows: str) -> pd.DataFrame:
    founders = "\n".join(f"{i},0,0" for i in range(1, n_founders + 1))
    return _csv("animal,sire,dam\n" + founders + "\n" + rows.strip())


def mrode_example_5_1() -> MrodeExample:
    """Fat yield of five cows in two lactations: the repeatability model of Example 5.1.

    Returns
    -------
    MrodeExample
        Eight animals; ten records with ``cow``, ``parity`` (1, 2), ``hys`` (herd-year-season
        1-4) and ``fat_yield`` (kg); variances ``sigma2_a`` = 20, ``sigma2_pe`` = 12,
        ``sigma2_e`` = 28.

    Notes
    -----
    Mrode & Pocrnic (2023), *Linear Models for the Prediction of the Genetic Merit of Animals*,
    4th ed., Section 5.1. HYS 1 and 2 occur with parity 1 only, HYS 3 and 4 with parity 2 only, so
    HYS and parity are confounded twice; the book sets HYS 1 = HYS 3 = 0.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_5_1
    >>> ex = mrode_example_5_1()
    >>> len(ex.pedigree), len(ex.records), ex.records["cow"].nunique()
    (8, 10, 5)
    """
    pedigree = _founders_and(3, """
4,1,2
5,3,2
6,1,5
7,3,4
8,1,7""")
    records = _csv("""
cow,parity,hys,fat_yield
4,1,1,201
4,2,3,280
5,1,1,150
5,2,4,200
6,1,2,160
6,2,3,190
7,1,1,180
7,2,3,250
8,1,2,285
8,2,4,300""")
    records["fat_yield"] = records["fat_yield"].astype(float)
    return MrodeExample(pedigree, records,
                        {"sigma2_a": 20.0, "sigma2_pe": 12.0, "sigma2_e": 28.0})


def mrode_example_5_2() -> MrodeExample:
    """Weaning weight of ten piglets in three litters: the common-environment model of
    Example 5.2.

    Returns
    -------
    MrodeExample
        Fifteen animals; ten records with ``piglet``, ``sex`` ("M", "F"), ``litter_dam`` (the
        dam, which identifies the litter) and ``weaning_weight`` (kg); variances
        ``sigma2_a`` = 20, ``sigma2_c`` = 15, ``sigma2_e`` = 65.

    Notes
    -----
    Mrode & Pocrnic (2023), Section 5.3.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_5_2
    >>> ex = mrode_example_5_2()
    >>> ex.records.groupby("litter_dam").size().tolist()
    [3, 4, 3]
    """
    pedigree = _founders_and(5, """
6,1,2
7,1,2
8,1,2
9,3,4
10,3,4
11,3,4
12,3,4
13,1,5
14,1,5
15,1,5""")
    records = _csv("""
piglet,sex,litter_dam,weaning_weight
6,M,2,90
7,F,2,70
8,F,2,65
9,F,4,98
10,M,4,106
11,F,4,60
12,F,4,80
13,M,5,100
14,F,5,85
15,M,5,68""")
    records["weaning_weight"] = records["weaning_weight"].astype(float)
    return MrodeExample(pedigree, records,
                        {"sigma2_a": 20.0, "sigma2_c": 15.0, "sigma2_e": 65.0})


def _bivariate_variances() -> dict:
    return {"G0": [[20.0, 18.0], [18.0, 40.0]], "R0": [[40.0, 11.0], [11.0, 30.0]]}


def mrode_example_6_1() -> MrodeExample:
    """Pre- and post-weaning gain of five beef calves: the bivariate animal model of
    Example 6.1.

    Returns
    -------
    MrodeExample
        Eight animals (Example 3.1's pedigree); five records with ``calf`` (4-8), ``sex``
        ("M", "F"), ``wwg`` (pre-weaning gain, kg) and ``pwg`` (post-weaning gain, kg), both
        traits recorded on every calf; variances ``G0`` = [[20, 18], [18, 40]] (genetic) and
        ``R0`` = [[40, 11], [11, 30]] (residual), traits in the order WWG, PWG, given as nested
        lists of floats (``np.array(ex.variances["G0"])`` for a matrix).

    Notes
    -----
    Mrode & Pocrnic (2023), Sections 6.1-6.2: Var(a) = G0 kron A, Var(e) = R0 kron I, the same X
    (sex) and Z for both traits (genetic correlation 0.636, residual 0.318). Alone, each trait
    is a single-trait analysis with sigma2_a = 20, sigma2_e = 40 (WWG, the data of Example 3.1)
    or sigma2_a = 40, sigma2_e = 30 (PWG).

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_6_1
    >>> ex = mrode_example_6_1()
    >>> len(ex.pedigree), len(ex.records), int(ex.records["pwg"].isna().sum())
    (8, 5, 0)
    """
    pedigree = _founders_and(3, """
4,1,0
5,3,2
6,1,2
7,4,5
8,3,6""")
    records = _csv("""
calf,sex,wwg,pwg
4,M,4.5,6.8
5,F,2.9,5.0
6,F,3.9,6.8
7,M,3.5,6.0
8,M,5.0,7.5""")
    records[["wwg", "pwg"]] = records[["wwg", "pwg"]].astype(float)
    return MrodeExample(pedigree, records, _bivariate_variances())


def mrode_example_6_2() -> MrodeExample:
    """Example 6.1 with a sixth calf and two post-weaning gains missing: the bivariate animal
    model with missing records of Example 6.2.

    Returns
    -------
    MrodeExample
        Nine animals (calf 9, sire 7, dam unknown, added to Example 6.1's pedigree); six records
        with ``calf`` (4-9), ``sex``, ``wwg`` and ``pwg`` as in :func:`mrode_example_6_1`,
        ``pwg`` NaN for calves 4 and 9; ``G0`` and ``R0`` as there (nested lists of floats).

    Notes
    -----
    Mrode & Pocrnic (2023), Section 6.3. The residual covariance of a calf is the sub-matrix of
    R0 for the traits recorded on it, so R^-1 is block diagonal by calf: R0^-1 for calves 5-8,
    1/40 (WWG only) for calves 4 and 9.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_6_2
    >>> ex = mrode_example_6_2()
    >>> len(ex.pedigree), len(ex.records), int(ex.records["pwg"].isna().sum())
    (9, 6, 2)
    """
    pedigree = _founders_and(3, """
4,1,0
5,3,2
6,1,2
7,4,5
8,3,6
9,7,0""")
    records = _csv("""
calf,sex,wwg,pwg
4,M,4.5,
5,F,2.9,5.0
6,F,3.9,6.8
7,M,3.5,6.0
8,M,5.0,7.5
9,F,4.0,""")
    records[["wwg", "pwg"]] = records[["wwg", "pwg"]].astype(float)
    return MrodeExample(pedigree, records, _bivariate_variances())


def mrode_example_8_1() -> MrodeExample:
    """Birth weight of ten beef calves: the maternal animal model of Example 8.1.

    Returns
    -------
    MrodeExample
        Fourteen animals; ten records with ``calf``, ``dam``, ``herd`` (1-3), ``pen`` (1, 2) and
        ``birth_weight`` (kg); variances ``G0`` = [[150, -40], [-40, 90]] (direct, maternal),
        ``sigma2_pe`` = 40 (maternal permanent environment) and ``sigma2_e`` = 350.

    Notes
    -----
    Mrode & Pocrnic (2023), Sections 8.1-8.2. Herd and pen are confounded once; the book sets
    herd 1 = 0.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_8_1
    >>> ex = mrode_example_8_1()
    >>> sorted(ex.records["dam"].unique().tolist())
    [2, 5, 6, 7]
    """
    pedigree = _founders_and(4, """
5,1,2
6,3,2
7,4,6
8,3,5
9,1,6
10,3,2
11,3,7
12,8,7
13,9,2
14,3,6""")
    records = _csv("""
calf,dam,herd,pen,birth_weight
5,2,1,1,35
6,2,1,2,20
7,6,1,2,25
8,5,1,1,40
9,6,2,1,42
10,2,2,2,22
11,7,2,2,35
12,7,3,2,34
13,2,3,1,20
14,6,3,2,40""")
    records["birth_weight"] = records["birth_weight"].astype(float)
    return MrodeExample(pedigree, records,
                        {"G0": np.array([[150.0, -40.0], [-40.0, 90.0]]), "sigma2_pe": 40.0,
                         "sigma2_e": 350.0})


def mrode_example_11_13() -> MrodeExample:
    """Example 6.1's five calves genotyped for ten SNPs: the bivariate GBLUP of Example 11.13.

    Returns
    -------
    MrodeExample
        ``records`` equal to those of :func:`mrode_example_6_1` (``calf``, ``sex``, ``wwg``,
        ``pwg``); ``genotypes`` (5 x 10, ``snp1``..``snp10`` as floats, indexed by calf);
        ``G0`` and ``R0`` as in Example 6.1 (nested lists of floats); ``pedigree`` that of
        Example 6.1 (eight animals).

    Notes
    -----
    Mrode & Pocrnic (2023), Section 11.8 (the multivariate genomic model); the function is
    named after the example number. Var(a) = G0 kron G, Var(e) = R0 kron I, with G by VanRaden's
    first method and the five calves' own allele frequencies (2 sum p(1-p) = 4.08). G of five
    animals is singular (G 1 = 0), so the book's equations use the inverse of G + 0.01 I. The
    book's model uses no pedigree, only the five genotyped calves; ``pedigree`` is Example 6.1's,
    for comparing with the pedigree-based analysis or blending.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_11_13
    >>> ex = mrode_example_11_13()
    >>> ex.genotypes.shape, ex.genotypes.index.tolist() == ex.records["calf"].tolist()
    ((5, 10), True)
    """
    ex = mrode_example_6_1()
    genotypes = _csv("""
calf,snp1,snp2,snp3,snp4,snp5,snp6,snp7,snp8,snp9,snp10
4,0,2,1,1,1,2,0,1,1,1
5,2,1,2,1,1,0,1,0,2,0
6,1,2,1,0,0,1,1,1,2,0
7,1,2,2,1,0,1,1,1,2,1
8,1,1,1,1,1,0,1,1,2,0""").set_index("calf").astype(float)
    return MrodeExample(ex.pedigree, ex.records, _bivariate_variances(), genotypes)


def mrode_example_12_1() -> MrodeExample:
    """Fat DYD of fourteen genotyped bulls and their ancestors: single-step GBLUP, Example 12.1.

    Returns
    -------
    MrodeExample
        26 animals (1-12 ungenotyped ancestors; bulls 13-26 genotyped for ten SNPs); records of
        the 14 bulls with ``bull``, ``role`` ("reference" for 13-20, "candidate" for 21-26, whose
        DYD serve only for validation), ``dyd`` (kg of fat) and ``edc``; ``genotypes`` (14 x 10,
        indexed by bull); variances ``sigma2_a`` = 35.241 and ``sigma2_e`` = 245.

    Notes
    -----
    Mrode & Pocrnic (2023), Section 12.2 (Aguilar et al. 2010; Christensen & Lund 2010): G by
    VanRaden's first method with the bulls' allele frequencies, blended 0.95 G + 0.05 A22 and
    tuned to A22 (Chen et al. 2011). The same data serve Example 12.2 (APY,
    :func:`mrode_example_12_2`).

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_12_1
    >>> ex = mrode_example_12_1()
    >>> len(ex.pedigree), ex.genotypes.shape, int((ex.records["role"] == "reference").sum())
    (26, (14, 10), 8)
    """
    pedigree = _founders_and(14, """
15,13,4
16,15,2
17,15,5
18,14,6
19,14,9
20,14,9
21,1,3
22,14,8
23,14,11
24,14,10
25,14,7
26,14,12""")
    table = _csv("""
bull,role,dyd,edc,snp1,snp2,snp3,snp4,snp5,snp6,snp7,snp8,snp9,snp10
13,reference,9.0,558,2,0,1,1,0,0,0,2,1,2
14,reference,13.4,722,1,0,0,0,0,2,0,2,1,0
15,reference,12.7,300,1,1,2,1,1,0,0,2,1,2
16,reference,15.4,73,0,0,2,1,0,1,0,2,2,1
17,reference,5.9,52,0,1,1,2,0,0,0,2,1,2
18,reference,7.7,87,1,1,0,1,0,2,0,2,2,1
19,reference,10.2,64,0,0,1,1,0,2,0,2,2,0
20,reference,4.8,103,0,1,1,0,0,1,0,2,2,0
21,candidate,7.6,13,2,0,0,0,0,1,2,2,1,2
22,candidate,8.8,125,0,0,0,1,1,2,0,2,0,0
23,candidate,9.8,93,0,1,1,0,0,1,0,2,2,1
24,candidate,9.2,66,1,0,0,0,1,1,0,2,0,0
25,candidate,11.5,75,0,0,0,1,1,2,0,2,1,0
26,candidate,13.3,33,1,0,1,1,0,2,0,1,0,0""")
    snps = [f"snp{i}" for i in range(1, 11)]
    genotypes = table.set_index("bull")[snps].astype(float)
    records = table.drop(columns=snps)
    return MrodeExample(pedigree, records, {"sigma2_a": 35.241, "sigma2_e": 245.0}, genotypes)


def mrode_example_12_2() -> MrodeExample:
    """Example 12.1's bulls with the APY core of Example 12.2: bulls 15, 20, 22 and 26.

    Returns
    -------
    MrodeExample
        As :func:`mrode_example_12_1`, with a column ``apy_set`` ("core" or "noncore") in
        ``records``.

    Notes
    -----
    Mrode & Pocrnic (2023), Section 12.4 (Misztal et al. 2014): the APY inverse of the unblended
    G, and GBLUP with it. The book prints G_APY^-1 with the core first.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_12_2
    >>> ex = mrode_example_12_2()
    >>> ex.records.loc[ex.records["apy_set"] == "core", "bull"].tolist()
    [15, 20, 22, 26]
    """
    ex = mrode_example_12_1()
    records = ex.records.assign(
        apy_set=np.where(ex.records["bull"].isin([15, 20, 22, 26]), "core", "noncore"))
    return MrodeExample(ex.pedigree, records, ex.variances, ex.genotypes)


@dataclass(frozen=True, eq=False)
class MiceData:
    """The heterogeneous-stock mice: genotypes and phenotypes, rows joined by ID.

    Attributes
    ----------
    genotypes : GenotypeData
        1,814 mice x 10,346 SNPs from ``mice.bed/.bim/.fam`` (:func:`lmmbook.read_plink`): ``ids``
        the IID, ``families`` the full-sib family (FID), ``sex`` 1 male / 2 female, ``snps`` the
        map (chromosomes 1-19 and X).
    phenotypes : pandas.DataFrame
        ``mice_pheno.csv`` with its columns as named there (``id``, ``family``, ``Obesity.BMI``,
        ``Obesity.BodyLength``, ``GENDER``, ``Litter``, ``cage``, ``Biochem.*`` ...), one row per
        genotyped mouse in the order of ``genotypes.ids`` and indexed by that ID (the ``id``
        column kept as well); empty cells are NaN.
    """

    genotypes: GenotypeData
    phenotypes: pd.DataFrame


def _mice_from(folder: Path) -> MiceData:
    genotypes = read_plink(folder / "mice")
    csv = folder / "mice_pheno.csv"
    pheno = pd.read_csv(csv, dtype={"id": str, "family": str})
    if pheno["id"].isna().any() or pheno["id"].duplicated().any():
        bad = pheno.loc[pheno["id"].isna() | pheno["id"].duplicated(), "id"]
        raise DuplicateIdError(f"{csv}: the id column has missing or repeated IDs "
                               f"({format_ids(bad.tolist())}).")
    ids = pd.Index(genotypes.ids)
    by_id = pheno.set_index("id", drop=False)
    no_record = ids.difference(by_id.index, sort=False)
    not_genotyped = by_id.index.difference(ids, sort=False)
    if len(no_record) or len(not_genotyped):
        raise UnknownIdError(
            f"{csv} and {genotypes.source} do not name the same mice: "
            f"{len(no_record)} genotyped without a phenotype row ({format_ids(no_record)}), "
            f"{len(not_genotyped)} phenotyped but not genotyped ({format_ids(not_genotyped)}).")
    pheno = by_id.loc[ids]
    pheno.index = pd.Index(genotypes.ids)
    clash = pheno["family"].to_numpy() != genotypes.families
    if clash.any():
        raise InputError(f"{csv}: the family of {format_ids(ids[clash])} differs from the FID "
                         "of the .fam.")
    return MiceData(genotypes, pheno)


def mice() -> MiceData:
    """1,814 heterogeneous-stock mice genotyped for 10,346 SNPs, with body mass index, body
    length, weights and biochemistry: the data of Legarra et al. (2008).

    Returns
    -------
    MiceData
        ``genotypes`` (a :class:`lmmbook.readers.GenotypeData`, counts of the .bim's A1) and
        ``phenotypes`` (a DataFrame), joined by ID: the phenotype row of each mouse is found by
        its ``id`` (the IID of the .fam), not by row order, and the loader refuses the files if a
        genotyped mouse has no phenotype row, a phenotyped mouse no genotypes, or a ``family``
        differs from the FID.

    Notes
    -----
    Valdar et al. (2006), Nature Genetics 38: 879-887 (the Wellcome Trust Centre for Human
    Genetics' heterogeneous stock); used for genomic prediction within and across full-sib
    families by Legarra, Robert-Granie, Manfredi & Elsen (2008), Genetics 180: 611-618. Read
    from the copy in ``lmmbook/data/mice/`` (PLINK 1 fileset and CSV converted from
    ``mice.RData`` of the R package BGLR 1.1.5; Perez & de los Campos 2014). **Licence:** GPL-3,
    as part of BGLR 1.1.5 (not lmmbook's BSD licence); see ``lmmbook/data/README.md``. No
    network is needed. The SNPs have no missing calls. ``Obesity.BMI`` is as distributed (mean
    about -0.46, SD 0.06, a transformed scale: it is not recomputed from ``Obesity.EndNormalBW``
    and ``Obesity.BodyLength``); the biochemistry traits have missing values. The .bim's cM
    column is 0 throughout, and males carry some heterozygous calls on X. The positions
    (``snps["position"]``, labelled base pairs) do not look physical: chromosome 1 ends at
    118 "Mb" and the autosomes add up to 1,555, the length of the mouse genetic map in cM; use
    them to order markers along a chromosome (chapter 10).

    Examples
    --------
    >>> from lmmbook.datasets import mice
    >>> data = mice()
    >>> data.genotypes.M.shape, len(data.phenotypes)
    ((1814, 10346), 1814)
    >>> bool((data.phenotypes["id"].to_numpy() == data.genotypes.ids).all())
    True
    >>> data.phenotypes["GENDER"].value_counts().to_dict()
    {'M': 934, 'F': 880}
    """
    return _mice_from(DATA / "mice")


@dataclass(frozen=True, eq=False)
class WheatData:
    """The CIMMYT wheat lines: markers, yields, pedigree relationships and folds, by line.

    Attributes
    ----------
    genotypes : pandas.DataFrame
        599 lines x 1,279 DArT markers, 0/1 (presence/absence) as floats, indexed by ``line``.
    yield_ : pandas.DataFrame
        Grain yield in the mega-environments ``env1``, ``env2``, ``env4``, ``env5`` (each
        standardised as distributed), indexed by ``line``.
    A : pandas.DataFrame
        (599, 599) additive relationships from the pedigree, rows and columns labelled by line.
    folds : pandas.Series
        ``fold`` (1-10) of each line: the standard ten-fold partition, indexed by ``line``.
    """

    genotypes: pd.DataFrame
    yield_: pd.DataFrame
    A: pd.DataFrame
    folds: pd.Series


def _by_line(frame: pd.DataFrame | pd.Series, lines: pd.Index, what: str):
    other = frame.index
    if other.duplicated().any() or not other.sort_values().equals(lines.sort_values()):
        raise UnknownIdError(f"{what} does not list the {len(lines)} lines of the markers once "
                             f"each: {format_ids(other.symmetric_difference(lines))} differ.")
    return frame.loc[lines]


def _wheat_from(folder: Path) -> WheatData:
    genotypes = pd.read_csv(folder / "wheat_markers.csv.gz", index_col="line").astype(float)
    lines = genotypes.index
    if lines.duplicated().any():
        raise DuplicateIdError(f"{folder / 'wheat_markers.csv.gz'} repeats line(s) "
                               f"{format_ids(lines[lines.duplicated()])}.")
    yield_ = _by_line(pd.read_csv(folder / "wheat_yield.csv", index_col="line").astype(float),
                      lines, "wheat_yield.csv")
    A = pd.read_csv(folder / "wheat_A.csv.gz", index_col=0)
    A.index.name = "line"
    A.columns = pd.Index(A.columns.astype(int), name="line")
    if not A.columns.equals(A.index):
        raise InputError("wheat_A.csv.gz: the columns are not labelled like the rows.")
    A = _by_line(A, lines, "wheat_A.csv.gz")[lines]
    folds = _by_line(pd.read_csv(folder / "wheat_folds.csv", index_col="line")["fold"], lines,
                     "wheat_folds.csv")
    return WheatData(genotypes, yield_, A, folds)


def wheat() -> WheatData:
    """599 CIMMYT wheat lines with 1,279 DArT markers, grain yield in four environments, the
    pedigree relationship matrix and the standard ten folds: the data of Crossa et al. (2010).

    Returns
    -------
    WheatData
        ``genotypes``, ``yield_``, ``A`` and ``folds``, all indexed by line (integers) in the
        same order (that of the marker file; each file is joined by line, not by row order).

    Notes
    -----
    Crossa et al. (2010), Genetics 186: 713-724: pedigree and marker (DArT) prediction of grain
    yield in the CIMMYT global wheat programme; the data as distributed with the R package BGLR
    1.1.5 (``wheat.RData``; Perez & de los Campos 2014, Genetics 198: 483-495), converted to CSV
    in ``lmmbook/data/wheat/``. **Licence:** GPL-3, as part of BGLR 1.1.5 (not lmmbook's BSD
    licence); see ``lmmbook/data/README.md``. No network is needed. The lines are inbred, so a
    marker is 0 or 1 (absence or presence), never a heterozygote, and the diagonal of A is
    about 2 (1 + F with F near 1).

    Examples
    --------
    >>> from lmmbook.datasets import wheat
    >>> data = wheat()
    >>> data.genotypes.shape, data.yield_.columns.tolist(), data.A.shape
    ((599, 1279), ['env1', 'env2', 'env4', 'env5'], (599, 599))
    >>> sorted(data.folds.unique().tolist()) == list(range(1, 11))
    True
    """
    return _wheat_from(DATA / "wheat")
