import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import DuplicateIdError, InputError, RankDeficientError, UnknownIdError


@settings(max_examples=40)
@given(st.integers(2, 60), st.integers(2, 8), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.booleans())
def test_folds_partition_ids_once_per_repeat(n, k, repeats, seed, grouped):
    ids = [f"i{j}" for j in range(n)]
    groups = np.random.default_rng(seed).integers(0, max(2, n // 3), n) if grouped else None
    n_units = len(set(groups)) if grouped else n
    if k > n_units:
        with pytest.raises(InputError, match="k must be between 2 and the number of"):
            lmmbook.kfold(ids, k, repeats=repeats, groups=groups, seed=seed)
        return
    folds = lmmbook.kfold(ids, k, repeats=repeats, groups=groups, seed=seed)
    assert list(folds.columns) == ["id", "repeat", "fold"]
    for _, rep in folds.groupby("repeat"):
        assert sorted(rep["id"]) == sorted(ids)  # every ID exactly once per repeat
        assert set(rep["fold"]) <= set(range(k))
        if grouped:  # a group never split
            g = pd.Series(groups, index=ids)
            assert (rep.assign(g=g[rep["id"]].to_numpy()).groupby("g")["fold"].nunique() == 1).all()


def test_forward_split_never_trains_on_later_generations():
    ids = np.arange(10)
    gen = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3, 1])
    f = lmmbook.forward_split(ids, gen)
    train = f.loc[f["fold"] == -1, "id"].to_numpy()
    valid = f.loc[f["fold"] == 0, "id"].to_numpy()
    assert gen[train].max() < gen[valid].min() and set(valid) == {6, 7, 8}
    f2 = lmmbook.forward_split(ids, gen, validate=[2, 3])
    assert gen[f2.loc[f2["fold"] == -1, "id"]].max() == 1


@pytest.fixture(scope="module")
def population():
    pop = lmmbook.simulate_population(2, 120, 8, n_snp=400, n_qtl=30, h2=0.5, seed=3)
    phen = pop.phenotypes
    X = pd.concat([pd.Series(1.0, index=phen.index, name="mean"),
                   (phen["sex"] == "M").astype(float).rename("male")], axis=1)
    return pop, phen, X


def test_against_a_plain_loop_and_validation_phenotypes_do_not_leak(population):
    pop, phen, X = population
    ids = phen.index[phen["y"].notna()]
    folds = lmmbook.kfold(ids, 4, seed=1)
    cv = lmmbook.cross_validate(phen["y"], X, folds, M=pop.genotype_frame(), model="snp_blup")
    # a plain loop over snp_blup on the same folds
    M = pop.genotype_frame()
    for (rep, fold), valid in folds.groupby(["repeat", "fold"])["id"]:
        train = ids[~ids.isin(valid)]
        fit = lmmbook.snp_blup(phen["y"][train], X.loc[train], M.loc[train])
        gebv = fit.predict(M.loc[valid])
        pred = cv.predictions
        got = pred.loc[(pred["repeat"] == rep) & (pred["fold"] == fold), "gebv"].to_numpy()
        np.testing.assert_allclose(got, gebv, atol=1e-10)
        y_c = phen["y"][valid].to_numpy() - X.loc[valid].to_numpy() @ fit.b
        per = cv.per_fold
        row = per[(per["repeat"] == rep) & (per["fold"] == fold)].iloc[0]
        assert row["predictive_ability"] == pytest.approx(np.corrcoef(gebv, y_c)[0, 1])
        assert row["accuracy"] == pytest.approx(row["predictive_ability"] / np.sqrt(fit.h2))
    # change the phenotypes of fold 0's validation animals: fold 0's predictions do not move
    valid0 = folds.loc[folds["fold"] == 0, "id"]
    y2 = phen["y"].copy()
    y2[valid0] = y2[valid0] + np.random.default_rng(0).normal(0, 5, len(valid0))
    for model in ("snp_blup", "gblup"):
        a = lmmbook.cross_validate(phen["y"], X, folds, M=pop.genotype_frame(), model=model)
        b = lmmbook.cross_validate(y2, X, folds, M=pop.genotype_frame(), model=model)
        a0, b0 = (r.predictions.query("fold == 0")["gebv"] for r in (a, b))
        np.testing.assert_allclose(a0, b0, atol=1e-10)
        assert not np.allclose(a.predictions.query("fold == 1")["gebv"],
                               b.predictions.query("fold == 1")["gebv"])  # they train fold 1
    # gblup with training frequencies and snp_blup are the same model: same predictions
    g = lmmbook.cross_validate(phen["y"], X, folds, M=pop.genotype_frame(), model="gblup")
    np.testing.assert_allclose(g.predictions["gebv"], cv.predictions["gebv"], atol=1e-6)
    assert set(cv.summary().index) >= {"predictive_ability", "accuracy", "slope", "bias", "mse"}


def test_masking_form_with_G(population):
    pop, phen, X = population
    ids = phen.index[phen["y"].notna()]
    folds = lmmbook.kfold(ids, 3, seed=2)
    G = pd.DataFrame(lmmbook.genomic_relationship(pop.genotypes), index=pop.ids, columns=pop.ids)
    cv = lmmbook.cross_validate(phen["y"], X, folds, G=G)
    for (_, fold), valid in folds.groupby(["repeat", "fold"])["id"]:
        masked = phen["y"].copy()
        masked[valid] = np.nan
        keep = pd.Index(folds["id"])
        fit = lmmbook.gblup(masked[keep], X.loc[keep], G.loc[keep, keep])
        expected = pd.Series(fit.u, index=fit.ids)[valid.to_numpy()].to_numpy()
        got = cv.predictions.loc[cv.predictions["fold"] == fold, "gebv"].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-10)


def test_errors(population):
    pop, phen, X = population
    ids = phen.index[phen["y"].notna()]
    with pytest.raises(InputError, match="k must be between 2"):
        lmmbook.kfold(ids[:3], 5, seed=0)
    with pytest.raises(DuplicateIdError):
        lmmbook.kfold(["a", "a", "b"], 2, seed=0)
    folds = lmmbook.kfold(ids, 3, seed=0)
    bad = pd.concat([folds, pd.DataFrame({"id": [999999], "repeat": [0], "fold": [0]})])
    with pytest.raises(UnknownIdError, match="999999"):
        lmmbook.cross_validate(phen["y"], X, bad, M=pop.genotype_frame())
    unphenotyped = phen.index[phen["y"].isna()]
    only_missing = pd.concat([folds, pd.DataFrame({"id": unphenotyped[:5], "repeat": 0,
                                                   "fold": 7})])
    with pytest.raises(InputError, match="fold 7 of repeat 0 has no phenotyped individual"):
        lmmbook.cross_validate(phen["y"], X, only_missing, M=pop.genotype_frame())
    X_rare = X.assign(rare=0.0)
    X_rare.loc[ids[0], "rare"] = 1.0
    fold_of_first = folds.loc[folds["id"] == ids[0], "fold"].iloc[0]
    with pytest.raises(RankDeficientError, match=f"'rare'.*fold {fold_of_first}"):
        lmmbook.cross_validate(phen["y"], X_rare, folds, M=pop.genotype_frame())
    with pytest.raises(InputError, match="give M"):
        lmmbook.cross_validate(phen["y"], X, folds)
    with pytest.raises(InputError, match="snp_blup needs genotypes"):
        lmmbook.cross_validate(phen["y"], X, folds, G=np.eye(len(phen)), ids=phen.index,
                               model="snp_blup")


def test_missing_ids_groups_generations_and_folds_are_refused():
    """A missing value is never a group, a generation, a fold or an ID: pandas would drop it
    from a count or a groupby (or match it to another missing value), losing records silently."""
    with pytest.raises(InputError, match="ids has a missing ID at position 1"):
        lmmbook.kfold(["a", None, "c", "d"], 2, seed=0)
    for missing in (None, np.nan):
        with pytest.raises(InputError, match=r"groups is missing for 'b' \(position 1\)"):
            lmmbook.kfold(["a", "b", "c", "d"], 2, groups=pd.Series(["f", missing, "f", "g"]),
                          seed=0)
    with pytest.raises(InputError, match=r"generation is missing for 'b' \(position 1\)"):
        lmmbook.forward_split(["a", "b", "c", "d"], [0, np.nan, 1, 1], validate=1)
    with pytest.raises(InputError, match=r"generation is missing for 'd' \(position 3\)"):
        lmmbook.forward_split(["a", "b", "c", "d"], [0, 0, 1, np.nan])
    folds = pd.DataFrame({"id": ["a", "b", "c", "d"], "repeat": [0, 0, 0, 0],
                          "fold": [0, np.nan, 1, 1]})
    M = np.array([[0, 1], [1, 2], [2, 0], [1, 1]], dtype=float)
    with pytest.raises(InputError, match=r"folds has a missing fold at row 1 \(ID 'b'\)"):
        lmmbook.cross_validate([1.0, 2.0, 3.0, 4.0], np.ones((4, 1)), folds, M=M,
                               ids=["a", "b", "c", "d"])
    with pytest.raises(InputError, match=r"folds needs the columns 'id', 'repeat' and 'fold'"):
        lmmbook.cross_validate([1.0, 2.0, 3.0, 4.0], np.ones((4, 1)), folds.drop(columns="repeat"),
                               M=M, ids=["a", "b", "c", "d"])
