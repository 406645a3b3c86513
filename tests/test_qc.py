"""sample_qc on a simulated population with planted errors, against dense references."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import lmmbook
from lmmbook import qc as qc_module
from lmmbook.errors import InputError
from lmmbook.markers import Genotypes, as_genotypes
from lmmbook.qc import sample_qc

ERROR_RATE = 0.002  # genotyping errors: a call replaced by another genotype


def _population(seed):
    """800 animals (4 generations of 200, 20 sires each), 3000 SNPs on 6 chromosomes; the sixth
    is treated as the X: a male's heterozygous call there becomes a homozygote (one X).
    Genotyping errors and 1 % missing calls at random."""
    pop = lmmbook.simulate_population(n_generations=3, n_per_generation=200, n_sires=20,
                                      n_snp=3000, n_chromosomes=6, seed=seed)
    rng = np.random.default_rng(seed + 100)
    M = pop.genotypes.copy()
    chromosome = np.where(pop.snp_chromosome == 6, "X", pop.snp_chromosome.astype(str))
    table = pop.pedigree.set_index("animal")
    sex = table["sex"].reindex(pop.ids).to_numpy()
    x = chromosome == "X"
    male = sex == "M"
    X = M[:, x]
    hemizygous = np.where(X == 1.0, 2.0 * (rng.random(X.shape) < 0.5), X)
    X[male] = hemizygous[male]
    M[:, x] = X
    error = rng.random(M.shape) < ERROR_RATE
    M[error] = (M[error] + rng.integers(1, 3, size=int(error.sum()))) % 3
    M[rng.random(M.shape) < 0.01] = np.nan
    ids = np.array([f"a{i}" for i in pop.ids], dtype=object)
    frame = pd.DataFrame(M, index=ids, columns=pop.snp_names)
    ped = pop.pedigree.assign(animal=lambda d: "a" + d["animal"].astype(str),
                              sire=lambda d: np.where(d["sire"] > 0, "a" + d["sire"].astype(str),
                                                      None),
                              dam=lambda d: np.where(d["dam"] > 0, "a" + d["dam"].astype(str),
                                                     None))
    return frame, ped, chromosome, pd.Series(sex, index=ids)


@pytest.fixture(scope="module")
def clean():
    return _population(5)


@pytest.fixture(scope="module")
def planted(clean):
    """The clean population with errors planted; returns the data and what was planted."""
    frame, ped, chromosome, sex = clean
    rng = np.random.default_rng(11)
    M = frame.copy()
    sex = sex.copy()
    ped = ped.copy()
    last = ped.loc[ped["generation"] == ped["generation"].max()]
    # low call rate
    for animal, share in (("a30", 0.15), ("a31", 0.3)):
        row = M.loc[animal].to_numpy().copy()
        row[rng.random(len(row)) < share] = np.nan
        M.loc[animal] = row
    # an exact copy and a near copy (1 % of calls changed) under new IDs
    M.loc["copy_of_a40"] = M.loc["a40"]
    near = M.loc["a41"].to_numpy().copy()
    change = (rng.random(len(near)) < 0.01) & ~np.isnan(near)
    near[change] = (near[change] + 1) % 3
    M.loc["near_a41"] = near
    sex["copy_of_a40"], sex["near_a41"] = sex["a40"], sex["a41"]
    # a contaminated sample: two unrelated founders' DNA mixed (heterozygous where they differ)
    a, b = M.loc["a50"].to_numpy(), M.loc["a150"].to_numpy()
    M.loc["mixed"] = np.where(a == b, a, np.where(np.isnan(a) | np.isnan(b), np.nan, 1.0))
    sex["mixed"] = "F"
    # an offspring attached to the wrong sire (another sire of its generation)
    child = last.iloc[0]
    wrong_sire = last.loc[last["sire"] != child["sire"], "sire"].iloc[0]
    ped.loc[ped["animal"] == child["animal"], "sire"] = wrong_sire
    # two samples swapped in the lab: offspring of different sires and dams
    other = last.loc[(last["sire"] != child["sire"]) & (last["sire"] != wrong_sire)
                     & (last["dam"] != child["dam"])].iloc[0]
    s1, s2 = last.iloc[1], last.loc[(last["sire"] != last.iloc[1]["sire"])
                                    & (last["dam"] != last.iloc[1]["dam"])
                                    & (last["animal"] != other["animal"])
                                    & (last["animal"] != child["animal"])].iloc[0]
    r1, r2 = M.loc[s1["animal"]].to_numpy().copy(), M.loc[s2["animal"]].to_numpy().copy()
    M.loc[s1["animal"]], M.loc[s2["animal"]] = r2, r1
    # a male recorded as female, a female recorded as male
    males = sex.index[(sex == "M") & sex.index.isin(ped["animal"])]
    females = sex.index[(sex == "F") & sex.index.isin(ped["animal"])]
    sex[males[3]], sex[females[3]] = "F", "M"
    truth = {"low_call_rate": ["a30", "a31"], "duplicates": {("a40", "copy_of_a40"),
                                                              ("a41", "near_a41")},
             "mixed": "mixed", "wrong_sire": (child["animal"], wrong_sire, child["dam"]),
             "swapped": [s1["animal"], s2["animal"]], "sex": [males[3], females[3]]}
    return M, ped, chromosome, sex, truth


def test_planted_errors_are_found_and_nothing_else_but_inbred_animals(planted):
    M, ped, chromosome, sex, truth = planted
    qc = sample_qc(M, pedigree=ped, chromosome=chromosome, sex=sex)
    a = qc.animals
    assert a.index.tolist() == M.index.tolist()
    # call rate
    assert a.index[a["low_call_rate"]].tolist() == truth["low_call_rate"]
    assert a.loc["a31", "call_rate"] == pytest.approx(0.99 * 0.7, abs=0.03)
    # duplicates: exactly the planted pairs, the exact copy first
    pairs = {tuple(sorted(p)) for p in zip(qc.duplicates["id_1"], qc.duplicates["id_2"],
                                            strict=True)}
    assert pairs == {tuple(sorted(p)) for p in truth["duplicates"]}
    assert qc.duplicates["id_2"].iloc[0] == "copy_of_a40"
    assert qc.duplicates["concordance"].iloc[0] == 1.0
    assert 0.98 <= qc.duplicates["concordance"].iloc[1] < 0.995
    assert "duplicate of 'copy_of_a40'" in a.loc["a40", "issues"]
    # heterozygosity: the mixed sample is the one high outlier
    high = a.index[a["het_outlier"] & (a["het_z"] > 0)].tolist()
    assert high == ["mixed"]
    # parentage: the wrong sire is named as the suspect, the dam is fine
    child, wrong_sire, dam = truth["wrong_sire"]
    rows = qc.parentage.set_index(["offspring", "role"])
    assert rows.loc[(child, "sire"), "parent"] == wrong_sire
    assert rows.loc[(child, "sire"), "conflict"] and rows.loc[(child, "sire"), "suspect"] == \
        "parent"
    assert not rows.loc[(child, "dam"), "conflict"] and rows.loc[(child, "dam"), "parent"] == dam
    assert a.loc[child, "parentage"] == f"sire {wrong_sire!r} conflicts"
    # swapped samples: both parents conflict, the offspring is the suspect
    for animal in truth["swapped"]:
        assert rows.loc[(animal, "sire"), "suspect"] == "offspring"
        assert rows.loc[(animal, "dam"), "suspect"] == "offspring"
        assert "check the offspring's sample" in a.loc[animal, "parentage"]
    conflicting = set(qc.parentage.loc[qc.parentage["conflict"], "offspring"])
    assert conflicting == {child, *truth["swapped"]}
    # true parent-offspring pairs: an opposite homozygote needs an error in one of the two calls
    # (probability <= 2 e) that lands on the one opposite genotype of the two others (1/2), so
    # the expected share is at most e
    sound = qc.parentage.loc[~qc.parentage["offspring"].isin(conflicting), "share"]
    assert sound.max() < 0.01
    assert 0 < sound.mean() < ERROR_RATE
    # sex
    # the two recorded wrongly, and the swapped samples if they are of different sexes
    s1, s2 = truth["swapped"]
    expected = set(truth["sex"]) | ({s1, s2} if sex[s1] != sex[s2] else set())
    mismatched = set(a.index[a["sex_mismatch"]])
    assert expected <= mismatched
    extra = sorted(mismatched - expected)
    assert _inbred_females(a.loc[extra]), a.loc[extra]
    male_recorded_female = truth["sex"][0]
    assert a.loc[male_recorded_female, "genetic_sex"] == "M"
    assert "recorded F, X says M" in a.loc[male_recorded_female, "issues"]
    # nothing else is flagged but animals of low heterozygosity (inbred: real, not an error)
    planted_ids = set(truth["low_call_rate"]) | {i for p in truth["duplicates"] for i in p} | {
        "mixed", child, *truth["swapped"], *truth["sex"]}
    others = set(qc.flagged) - planted_ids - set(extra)
    assert all(a.loc[i, "issues"].startswith("heterozygosity low") for i in others)
    assert len(others) <= 0.015 * len(a)
    summary = qc.summary()
    assert summary.loc["duplicates", "flagged"] == 4
    assert summary.loc["parentage", "flagged"] == 3
    assert summary.loc["sex", "flagged"] == len(expected) + len(extra)


def test_clean_population_flags_no_duplicate_parent_or_sex(clean):
    M, ped, chromosome, sex = clean
    qc = sample_qc(M, pedigree=ped, chromosome=chromosome, sex=sex)
    a = qc.animals
    assert len(qc.duplicates) == 0
    assert not qc.parentage["conflict"].any() and len(qc.parentage) == 2 * 600
    assert not a["low_call_rate"].any()
    # every male is called male; a female called male is an inbred one (X F between PLINK's 0.8
    # and 0.95, homozygous on most of her X), and rare
    assert (a.loc[sex == "M", "genetic_sex"] == "M").all()
    assert (a.loc[sex == "M", "x_F"] > 0.95).all()
    assert _inbred_females(a.loc[a["sex_mismatch"]])
    assert a["sex_mismatch"].sum() <= 0.01 * (sex == "F").sum()
    assert not (a["het_outlier"] & (a["het_z"] > 0)).any()
    # the low-heterozygosity flags are a small share (inbred animals of the simulation)
    assert a["het_outlier"].mean() <= 0.015


def _inbred_females(rows):
    """Recorded female, called male from an X F between 0.8 and 0.95 (not a male's ~1)."""
    return bool(((rows["recorded_sex"] == "F") & (rows["genetic_sex"] == "M")
                 & (rows["x_F"] < 0.95)).all())


def _dense_pair_counts(M):
    """Markers called in both and identical calls, by a loop over pairs (the reference)."""
    n = M.shape[0]
    both = np.zeros((n, n))
    same = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            ok = ~np.isnan(M[i]) & ~np.isnan(M[j])
            both[i, j] = ok.sum()
            same[i, j] = (M[i, ok] == M[j, ok]).sum()
    return both, same


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_concordance_from_products_against_a_loop_over_pairs(missing, monkeypatch):
    rng = np.random.default_rng(4)
    M = rng.binomial(2, rng.uniform(0.05, 0.95, 300), size=(37, 300)).astype(float)
    M[rng.random(M.shape) < missing] = np.nan
    both, same = _dense_pair_counts(M)
    monkeypatch.setattr(qc_module, "PAIR_BLOCK_ENTRIES", 5 * 37)  # blocks of 5 rows, a ragged one
    i, j, n_both, conc = qc_module._concordant_pairs(M, 0.0, 1)
    assert len(i) == 37 * 36 // 2 and np.all(i < j)
    np.testing.assert_array_equal(n_both, both[i, j])
    np.testing.assert_allclose(conc, same[i, j] / both[i, j], rtol=1e-12)


def test_parentage_counts_against_direct_counting(planted):
    M, ped, chromosome, sex, truth = planted
    qc = sample_qc(M, pedigree=ped, chromosome=chromosome, sex=sex)
    auto = M.loc[:, chromosome != "X"]
    for _, row in qc.parentage.sample(20, random_state=0).iterrows():
        c, p = auto.loc[row["offspring"]].to_numpy(), auto.loc[row["parent"]].to_numpy()
        ok = ~np.isnan(c) & ~np.isnan(p)
        assert row["markers"] == ok.sum()
        assert row["opposite_homozygotes"] == np.sum(np.abs(c[ok] - p[ok]) == 2)


def test_sex_check_from_a_reader_like_object():
    """An object that as_genotypes accepts, with a SNP table and sexes (the readers' result)."""

    @dataclass(frozen=True, eq=False)
    class Read(Genotypes):
        snps: pd.DataFrame = None
        sex: np.ndarray = None

    rng = np.random.default_rng(2)
    M = rng.binomial(2, 0.4, size=(60, 1000)).astype(float)
    males = np.arange(60) < 30
    M[np.ix_(males, np.arange(600, 1000))] = 2.0 * rng.integers(0, 2, size=(30, 400))
    geno = as_genotypes(pd.DataFrame(M, index=[f"s{i}" for i in range(60)]))
    snps = pd.DataFrame({"chromosome": ["1"] * 300 + ["2"] * 300 + ["X"] * 400})
    recorded = np.where(males, 1, 2)
    recorded[0] = 2  # a male recorded female
    recorded[59] = 0  # unknown
    recorded[58] = -9  # unknown too (PLINK: any code but 1 and 2)
    read = Read(geno.M, geno.ids, geno.snp_names, geno.col_sum, geno.col_calls, snps, recorded)
    qc = sample_qc(read)
    a = qc.animals
    assert a.index[a["sex_mismatch"]].tolist() == ["s0"]
    assert a["genetic_sex"].tolist() == ["M"] * 30 + ["F"] * 30
    assert a.loc["s59", "recorded_sex"] == "" and a.loc["s1", "recorded_sex"] == "M"
    assert a.loc["s58", "recorded_sex"] == "" and a.loc["s57", "recorded_sex"] == "F"
    assert (a["x_markers"] == 400).all()
    # heterozygosity on the autosomes only: the males' X does not make them outliers
    assert not a["het_outlier"].any()
    # arguments win over the object's attributes: without an X no sex check
    assert "sex_mismatch" not in sample_qc(read, chromosome=["1"] * 1000).animals


def test_the_pseudo_autosomal_region_is_left_out():
    rng = np.random.default_rng(8)
    M = rng.binomial(2, 0.5, size=(40, 300)).astype(float)
    M[:20, 200:280] = 2.0 * rng.integers(0, 2, size=(20, 80))  # males: X outside the PAR
    chromosome = ["1"] * 200 + ["X"] * 80 + ["XY"] * 20  # PAR: heterozygous males too
    qc = sample_qc(M, chromosome=chromosome, sex=["M"] * 20 + ["F"] * 20)
    assert (qc.animals["x_markers"] == 80).all()
    assert not qc.animals["sex_mismatch"].any()
    assert (qc.animals["x_F"].iloc[:20] == 1.0).all()


def test_errors_name_what_is_wrong(planted):
    M, ped, chromosome, sex, _ = planted
    with pytest.raises(InputError, match="joined to the genotypes by ID"):
        sample_qc(M.to_numpy(), pedigree=ped)
    other = ped.assign(animal="x" + ped["animal"], sire=None, dam=None)
    with pytest.raises(InputError, match="no genotyped animal is in the pedigree"):
        sample_qc(M, pedigree=other)
    with pytest.raises(InputError, match=r"one chromosome per marker \(3000\), got 2"):
        sample_qc(M, chromosome=["1", "X"])
    bad = sex.copy()
    bad["a7"] = "bull"
    with pytest.raises(InputError, match="sex of animal 'a7' is 'bull'"):
        sample_qc(M, chromosome=chromosome, sex=bad)
    with pytest.raises(InputError, match=r"one value per genotyped animal \(803\)"):
        sample_qc(M, chromosome=chromosome, sex=["M", "F"])
    with pytest.raises(InputError, match="sex is given by ID"):
        sample_qc(M.to_numpy(), chromosome=chromosome, sex=sex)
    with pytest.raises(InputError, match=r"duplicate is a share in \[0, 1\]"):
        sample_qc(M, duplicate=1.5)
    with pytest.raises(InputError, match="no marker is on an autosome"):
        sample_qc(M, chromosome=["X"] * 3000)


def test_reports_never_drop_and_small_pairs_are_not_judged():
    M = pd.DataFrame([[0, 1, 2, np.nan], [0, 1, 2, 1], [2, 1, 0, 0]], index=["a", "b", "c"],
                     dtype=float)
    qc = sample_qc(M, min_markers=3)
    assert qc.duplicates[["id_1", "id_2", "markers"]].to_numpy().tolist() == [["a", "b", 3]]
    assert len(sample_qc(M, min_markers=4).duplicates) == 0
    assert qc.to_frame().shape[0] == 3 and qc.to_frame() is not qc.animals
    assert lmmbook.sample_qc is sample_qc


def test_sex_codes():
    M = pd.DataFrame(np.zeros((8, 2)), index=list("abcdefgh"))
    codes = ["male", "Female", "1", 2.0, np.int64(1), None, "", 0]
    got = qc_module._sexes(codes, as_genotypes(M), M.index)
    assert got.tolist() == ["M", "F", "M", "F", "M", "", "", ""]
    by_id = qc_module._sexes({"b": "M", "z": "F"}, as_genotypes(M), M.index)
    assert by_id.tolist() == ["", "M", "", "", "", "", "", ""]


def _full_sib_families(ped, ids):
    """Each genotyped animal's full-sib family, as PLINK's FID would hold it ("" for founders)."""
    table = ped.set_index("animal").reindex(ids)
    known = table["sire"].notna() & table["dam"].notna()
    return pd.Series(np.where(known, table["sire"].astype(str) + "x" + table["dam"].astype(str),
                              ""), index=ids)


def _dense_family_means(frame, chromosome, family):
    """The mean G of each animal with its own family and with every other, from the n x n G."""
    M = frame.to_numpy()[:, chromosome != "X"]
    p = np.nanmean(M, axis=0) / 2
    poly = (p > 0) & (p < 1)
    W = np.nan_to_num(M[:, poly] - 2 * p[poly])
    G = W @ W.T / (2 * np.sum(p[poly] * (1 - p[poly])))
    own = np.full(len(family), np.nan)
    for i, f in enumerate(family):
        mates = [j for j in range(len(family)) if j != i and f and family[j] == f]
        if mates:
            own[i] = G[i, mates].mean()
    return own, G


def test_an_animal_recorded_in_the_wrong_family_is_found_and_placed(clean):
    frame, ped, chromosome, _ = clean
    family = _full_sib_families(ped, frame.index)
    sizes = family[family != ""].value_counts()
    big = sizes.index[sizes >= 3]  # families of this simulation are small (up to 3)
    moved = family.index[family == big[0]][0]  # a member of one family, recorded in another
    wrong = family.copy()
    wrong[moved] = big[1]
    res = sample_qc(frame, families=wrong, chromosome=chromosome)
    a = res.animals
    assert a.index[a["family_outlier"]].tolist() == [moved]  # and no other animal
    closest = a.loc[moved, "closest_family"]
    assert f"closest: family '{closest}'" in a.loc[moved, "issues"]
    assert res.summary().loc["family", "flagged"] == 1
    own, G = _dense_family_means(frame, chromosome, wrong.to_numpy())
    np.testing.assert_allclose(a["family_G"].to_numpy(), own, rtol=1e-10, atol=1e-12)
    # the closest family is the one of largest mean G: here its own sibs, or the offspring of
    # one of its matings (parent and offspring are related by 1/2 as full sibs are)
    i = frame.index.get_loc(moved)
    means = {f: G[i, (wrong == f).to_numpy()].mean() for f in set(wrong) - {"", big[1]}}
    assert closest == max(means, key=means.get)
    assert a.loc[moved, "closest_family_G"] == pytest.approx(means[closest], rel=1e-10)
    assert means[big[0]] > 0.35 > a.loc[moved, "family_G"]  # its true sibs vs its record
    # the correct records flag nobody; families as a mapping and in row order agree
    clean_res = sample_qc(frame, families=family.to_dict(), chromosome=chromosome)
    assert not clean_res.animals["family_outlier"].any()
    in_order = sample_qc(frame, families=family.to_numpy(), chromosome=chromosome)
    pd.testing.assert_frame_equal(in_order.animals, clean_res.animals)
    assert np.isnan(clean_res.animals.loc[family == "", "family_G"]).all()  # founders: no family
    with pytest.raises(InputError, match="families must give one value per genotyped animal"):
        sample_qc(frame, families=family.to_numpy()[:-1])
    with pytest.raises(InputError, match="family_sd must be a positive"):
        sample_qc(frame, families=family, family_sd=0)
