import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import tabular_A

import lmmbook
from lmmbook.datasets import mrode_example_3_1
from lmmbook.errors import (
    ConvergenceError,
    InputError,
    PedigreeError,
    UnknownIdError,
)


def random_pedigree(seed, n, unknown, selfing=False):
    """Animals 1..n, parents drawn among earlier animals (close relatives mate, so many are
    inbred), some parents unknown; returned in a shuffled row order."""
    rng = np.random.default_rng(seed)
    males = rng.random(n) < 0.5
    sire = np.zeros(n, int)
    dam = np.zeros(n, int)
    for i in range(2, n):
        earlier = np.arange(i)
        m, f = earlier[males[:i]], earlier[~males[:i]]
        if selfing:
            if rng.random() > unknown:
                sire[i] = rng.integers(0, i) + 1
                dam[i] = sire[i] if rng.random() < 0.3 else rng.integers(0, i) + 1
        else:
            if len(m) and rng.random() > unknown:
                sire[i] = rng.choice(m[-6:]) + 1  # recent animals: relatives
            if len(f) and rng.random() > unknown:
                dam[i] = rng.choice(f[-6:]) + 1
    order = rng.permutation(n)
    return pd.DataFrame({"animal": np.arange(1, n + 1), "sire": sire, "dam": dam}).iloc[order]


pedigrees = st.builds(random_pedigree, seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60),
                      unknown=st.sampled_from([0.0, 0.2, 0.5]))


def reference_A(ped):
    """The tabular method of tests/reference.py, run on the pedigree's own order."""
    return tabular_A(ped.sire + 1, ped.dam + 1)


@settings(max_examples=60)
@given(pedigrees)
def test_relationships_three_ways(df):
    ped = lmmbook.Pedigree.from_frame(df)
    # parents precede offspring, and every animal keeps its parents
    for i in range(len(ped)):
        assert ped.sire[i] < i and ped.dam[i] < i
    parents = df.set_index("animal")
    for i, a in enumerate(ped.ids):
        s, d = parents.loc[a, ["sire", "dam"]]
        assert (ped.ids[ped.sire[i]] if ped.sire[i] >= 0 else 0) == s
        assert (ped.ids[ped.dam[i]] if ped.dam[i] >= 0 else 0) == d
    A = ped.A()
    np.testing.assert_allclose(A, reference_A(ped), atol=1e-13)
    np.testing.assert_allclose(ped.inbreeding(), np.diag(A) - 1, atol=1e-12)
    A_inv = ped.A_inverse()
    assert sp.issparse(A_inv) and A_inv.format == "csc"
    np.testing.assert_allclose(A_inv @ A, np.eye(len(ped)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.inv(A_inv.toarray()), A, atol=1e-9 * np.abs(A).max())


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1), st.integers(3, 40))
def test_selfing_allowed_for_plants(seed, n):
    df = random_pedigree(seed, n, 0.2, selfing=True)
    ped = lmmbook.Pedigree.from_frame(df, allow_selfing=True)
    A = ped.A()
    np.testing.assert_allclose(A, reference_A(ped), atol=1e-13)
    np.testing.assert_allclose(ped.inbreeding(), np.diag(A) - 1, atol=1e-12)
    np.testing.assert_allclose(ped.A_inverse() @ A, np.eye(len(ped)), atol=1e-9)


def test_selfing_of_a_founder_gives_half():
    ped = lmmbook.Pedigree(["p", "s1", "s2"], [None, "p", "s1"], [None, "p", "s1"],
                           allow_selfing=True)
    np.testing.assert_allclose(ped.inbreeding(), [0, 0.5, 0.75])


def test_order_of_rows_does_not_matter():
    df = random_pedigree(3, 40, 0.2)
    a = lmmbook.Pedigree.from_frame(df)
    b = lmmbook.Pedigree.from_frame(df.sample(frac=1, random_state=1))
    rows = b.index(a.ids)
    np.testing.assert_allclose(b.A()[np.ix_(rows, rows)], a.A())


def test_parents_not_listed_become_founders_and_ids_can_be_strings():
    ped = lmmbook.Pedigree(["calf"], ["bull"], ["cow"])
    assert ped.ids.tolist() == ["bull", "cow", "calf"]
    assert ped.index(["calf", "bull"]).tolist() == [2, 0]
    assert repr(ped) == "Pedigree(3 animals, 2 founders, 2 generations deep)"


def test_missing_values_default_and_custom():
    ped = lmmbook.Pedigree([1, 2, 3, 4], [np.nan, "0", "", 1], [None, 0, 0, 2])
    assert ped.sire.tolist()[:3] == [-1, -1, -1]
    # animal 0 is real when the caller says what "unknown" is
    ped0 = lmmbook.Pedigree([0, 1, 2], [-1, -1, 0], [-1, -1, 1], missing=[-1])
    assert ped0.ids.tolist() == [0, 1, 2] and ped0.sire.tolist() == [-1, -1, 0]
    with pytest.raises(InputError, match="row 0 .*needs an animal ID"):
        lmmbook.Pedigree([0, 1], [0, 0], [0, 0])


def test_mrode_3_1_by_direct_and_pcg():
    """Mrode, Example 3.1 (../shared/examples/mrode-3.1.md): sex effects and breeding values as
    printed, within +-0.001 (the book truncates)."""
    df = mrode_example_3_1()
    ped = lmmbook.Pedigree.from_frame(df)
    rec = df[df["y"].notna()]
    X = pd.get_dummies(rec["sex"]).reindex(columns=["male", "female"]).astype(float).to_numpy()
    Z = ped.incidence(rec.index)
    F = ped.inbreeding()
    published = np.array([4.358, 3.404, 0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249,
                          0.183])
    for method in ("direct", "pcg"):
        fit = lmmbook.solve_mme(rec["y"].to_numpy(), X, Z, ped.A_inverse(), 20.0, 40.0,
                                K_diag=1 + F, method=method, tol=1e-12)
        ours = np.r_[fit.b, fit.u]
        assert np.all(np.abs(np.round(ours, 3) - published) <= 0.001 + 1e-12), method
        assert fit.levels.tolist() == list(range(1, 9))
    assert fit.n_iter > 0 and fit.residuals[-1] <= 1e-12 and fit.pev is None


def test_pcg_equals_direct_on_a_simulated_animal_model():
    """PCG stops at a relative residual of 1e-12; with cond(C) ~ 1e3 here the solution error is
    below ~1e-9 relative, inside the 1e-8 asked of it."""
    d = lmmbook.simulate_pedigree(6, 300, n_sires=15, seed=4)
    ped = lmmbook.Pedigree.from_frame(d)
    rng = np.random.default_rng(0)
    rec = d[d["generation"] > 0].copy()
    rec["y"] = 100 + rec["tbv"] + rng.normal(0, 1.5, len(rec))
    X = lmmbook.incidence(rec["generation"])  # a fixed effect per generation
    Z = ped.incidence(rec["animal"])
    direct = lmmbook.solve_mme(rec["y"], X, Z, ped.A_inverse(), 1.0, 2.25,
                               K_diag=1 + ped.inbreeding())
    for pre in ("block", "diagonal"):
        pcg = lmmbook.solve_mme(rec["y"], X, Z, ped.A_inverse(), 1.0, 2.25, method="pcg",
                                tol=1e-12, preconditioner=pre)
        scale = np.abs(np.r_[direct.b, direct.u]).max()
        np.testing.assert_allclose(pcg.u, direct.u, atol=1e-8 * scale)
        np.testing.assert_allclose(pcg.b, direct.b, atol=1e-8 * scale)
        assert np.all(np.diff(pcg.residuals[-5:]) < 0) or pcg.residuals[-1] <= 1e-12
    with pytest.raises(ConvergenceError, match="did not reach a relative residual of 1e-12 in 3"):
        lmmbook.solve_mme(rec["y"], X, Z, ped.A_inverse(), 1.0, 2.25, method="pcg", tol=1e-12,
                          maxiter=3)
    with pytest.raises(InputError, match="compute_pev=True needs the inverse"):
        lmmbook.solve_mme(rec["y"], X, Z, ped.A_inverse(), 1.0, 2.25, method="pcg",
                          compute_pev=True)


def test_simulated_pedigree_inbreeding_matches_A_and_tbv_variance():
    d = lmmbook.simulate_pedigree(4, 150, n_sires=6, overlapping=2, mating="assortative",
                                  unknown_sire_rate=0.1, seed=9)
    ped = lmmbook.Pedigree.from_frame(d)
    np.testing.assert_allclose(ped.inbreeding(), np.diag(ped.A()) - 1, atol=1e-12)
    assert ped.inbreeding().max() > 0  # few sires: inbreeding builds up
    assert (d.loc[d["generation"] > 0, "sire"] == 0).mean() == pytest.approx(0.1, abs=0.04)
    again = lmmbook.simulate_pedigree(4, 150, n_sires=6, overlapping=2, mating="assortative",
                                      unknown_sire_rate=0.1, seed=9)
    assert d.equals(again)


# ---- errors ---------------------------------------------------------------------------------

def test_loop_is_printed():
    with pytest.raises(PedigreeError, match=r"loop.*'b' -> 'c' -> 'b'|loop.*'c' -> 'b' -> 'c'"):
        lmmbook.Pedigree(["a", "b", "c"], [None, "c", "b"], [None, "a", "a"])


def test_own_parent():
    with pytest.raises(PedigreeError, match="'x' is listed as its own parent"):
        lmmbook.Pedigree(["x"], ["x"], [None])


def test_two_parent_pairs():
    with pytest.raises(PedigreeError, match=r"animal 3 appears twice with different parents: "
                       r"\(sire 1, dam 2\) and \(sire 2, dam 1\); keep one row per animal"):
        lmmbook.Pedigree([1, 2, 3, 3], [0, 0, 1, 2], [0, 0, 2, 1], allow_selfing=True)
    # an identical repeat is merged
    assert len(lmmbook.Pedigree([1, 2, 3, 3], [0, 0, 1, 1], [0, 0, 2, 2])) == 3


def test_a_known_parent_against_an_unknown_one_is_a_conflict():
    """A repeat that names a parent where another row has none is a conflict too: merging it
    would keep one row and silently lose (or invent) the sire."""
    with pytest.raises(PedigreeError) as info:
        lmmbook.Pedigree(["a", "a", "b"], [None, "b", None], [None, None, None])
    assert str(info.value).startswith(
        "animal 'a' appears twice with different parents: (sire 'b', dam unknown) and "
        "(sire unknown, dam unknown); keep one row per animal")
    # the same with integer IDs (0 = unknown), and on the dam's side
    with pytest.raises(PedigreeError, match=r"animal 1 appears twice .*\(sire 2, dam unknown\) "
                       r"and \(sire unknown, dam unknown\)"):
        lmmbook.Pedigree([1, 1, 2], [0, 2, 0], [0, 0, 0])
    with pytest.raises(PedigreeError, match=r"animal 'c' .*\(sire 'a', dam 'b'\) and "
                       r"\(sire 'a', dam unknown\)"):
        lmmbook.Pedigree(["c", "c"], ["a", "a"], ["", "b"])
    # from a data frame, where a column with an unknown parent arrives as floats with NaN
    df = pd.DataFrame({"animal": [1, 1, 2], "sire": [np.nan, 2.0, np.nan],
                       "dam": [np.nan, np.nan, np.nan]})
    with pytest.raises(PedigreeError, match=r"animal 1 appears twice .*\(sire 2, dam unknown\)"):
        lmmbook.Pedigree.from_frame(df)
    # three rows, three parent pairs, and the count of the animals affected
    with pytest.raises(PedigreeError, match=r"animal 'x' appears 3 times with 3 different parent "
                       r"pairs: .* and .*; keep one row per animal, with its correct parents "
                       r"\(input rows 0, 1 and 2; 2 animals affected\)\."):
        lmmbook.Pedigree(["x", "x", "x", "y", "y"], ["p", "q", None, "p", None],
                         ["r", "r", "r", "r", "r"])


def test_identical_repeats_are_merged_whatever_spells_unknown():
    ped = lmmbook.Pedigree(["a", "a", "a", "s"], ["s", "s", "s", None], [None, "", np.nan, "0"])
    assert ped.ids.tolist() == ["s", "a"] and ped.sire.tolist() == [-1, 0]
    assert ped.dam.tolist() == [-1, -1]
    df = pd.DataFrame({"animal": [2, 2, 1], "sire": [1.0, 1.0, np.nan], "dam": [np.nan] * 3})
    assert lmmbook.Pedigree.from_frame(df).ids.tolist() == [1, 2]
    # a nullable integer column: pd.NA is unknown too, and a conflict with a known sire
    df = pd.DataFrame({"animal": [2, 2, 1], "sire": pd.array([1, pd.NA, pd.NA], dtype="Int64"),
                       "dam": pd.array([pd.NA] * 3, dtype="Int64")})
    with pytest.raises(PedigreeError, match=r"animal 2 appears twice .*\(sire 1, dam unknown\)"):
        lmmbook.Pedigree.from_frame(df)


@settings(max_examples=30)
@given(pedigrees, st.integers(0, 2**32 - 1), st.sampled_from(["sire", "dam"]))
def test_a_repeated_row_is_merged_and_a_changed_one_refused(df, seed, parent):
    """Every row repeated as it is gives the same pedigree; one repeat with one parent changed
    (to unknown, to known, or to another animal) is refused, on the integer and the text path."""
    rng = np.random.default_rng(seed)
    ped = lmmbook.Pedigree.from_frame(df)
    doubled = lmmbook.Pedigree.from_frame(pd.concat([df, df.sample(frac=1, random_state=1)]))
    np.testing.assert_array_equal(doubled.ids, ped.ids)
    np.testing.assert_array_equal(doubled.sire, ped.sire)
    np.testing.assert_array_equal(doubled.dam, ped.dam)
    row = df.iloc[[int(rng.integers(len(df)))]].copy()
    old = int(row[parent].iloc[0])
    row[parent] = int(row["animal"].iloc[0]) + 1000 if old == 0 else (0 if rng.random() < 0.5
                                                                      else old + 1000)
    changed = pd.concat([df, row])
    animal = int(row["animal"].iloc[0])
    for frame, shown in ((changed, f"{animal}"), (changed.astype(str).replace("0", ""),
                                                  f"'{animal}'")):
        with pytest.raises(PedigreeError, match=rf"animal {shown} appears twice with different "
                           "parents"):
            lmmbook.Pedigree.from_frame(frame, allow_selfing=True)


def test_sire_and_dam_roles():
    with pytest.raises(PedigreeError, match=r"4 is used both as a sire and as a dam"):
        lmmbook.Pedigree([3, 5, 6], [4, 4, 1], [2, 7, 4])
    with pytest.raises(PedigreeError, match="same sire and dam.*allow_selfing=True"):
        lmmbook.Pedigree([2], [1], [1])


def test_record_for_an_animal_not_in_the_pedigree():
    ped = lmmbook.Pedigree([1, 2, 3], [0, 0, 1], [0, 0, 2])
    with pytest.raises(UnknownIdError, match="holds 9 .*must be in the pedigree"):
        ped.incidence([1, 9])
    with pytest.raises(UnknownIdError, match="9 is not in the pedigree"):
        ped.index([9])


def test_dense_a_refused_for_large_pedigrees(monkeypatch):
    monkeypatch.setattr(lmmbook.pedigree, "DENSE_A_MAX", 2)
    with pytest.raises(InputError, match=r"A_inverse\(\)"):
        lmmbook.Pedigree([1, 2, 3], [0, 0, 1], [0, 0, 2]).A()


@settings(max_examples=20)
@given(pedigrees)
def test_integer_ids_and_general_ids_give_the_same_pedigree(df):
    """Integer IDs take a numpy-only path; the same pedigree with string IDs takes the general
    one. Both must agree."""
    fast = lmmbook.Pedigree.from_frame(df)
    as_text = df.astype(str).replace("0", "")
    general = lmmbook.Pedigree.from_frame(as_text)
    assert [str(i) for i in fast.ids] == general.ids.tolist()
    np.testing.assert_array_equal(fast.sire, general.sire)
    np.testing.assert_array_equal(fast.dam, general.dam)


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1), st.integers(2, 50), st.booleans())
def test_A_inverse_is_canonical_csc_of_henderson_rules(seed, n, selfing):
    """A^-1 is assembled column by column: sorted rows, each position once, and the same sum of
    the rules as adding them up one animal at a time."""
    ped = lmmbook.Pedigree.from_frame(random_pedigree(seed, n, 0.2, selfing=selfing),
                                      allow_selfing=selfing)
    A_inv = ped.A_inverse()
    assert A_inv.format == "csc" and A_inv.has_canonical_format
    alpha = 1.0 / ped.mendelian_variance()
    ref = np.zeros((len(ped), len(ped)))
    touched = np.zeros(ref.shape, bool)
    for i in range(len(ped)):
        who = [i] + [int(p) for p in (ped.sire[i], ped.dam[i]) if p >= 0]
        weight = [1.0] + [-0.5] * (len(who) - 1)
        for a, w_a in zip(who, weight, strict=True):
            for b, w_b in zip(who, weight, strict=True):
                ref[a, b] += alpha[i] * w_a * w_b
                touched[a, b] = True
    coo = A_inv.tocoo()
    stored = np.zeros(ref.shape, bool)
    stored[coo.row, coo.col] = True
    np.testing.assert_array_equal(stored, touched)
    np.testing.assert_allclose(A_inv.toarray(), ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())


# ---- A22: the block of A among the genotyped animals, without A (Colleau's indirect method) -----

@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(2, 50), st.booleans(), st.floats(0.05, 1.0),
       st.booleans())
def test_A22_is_the_block_of_the_tabular_A(seed, n, selfing, share, founder):
    """Any subset, in any order, founders included, with inbreeding and selfing: A22 is A[g][:, g]
    of the tabular method (tests/reference.py); over the subset's ancestors only."""
    ped = lmmbook.Pedigree.from_frame(random_pedigree(seed, n, 0.2, selfing=selfing),
                                      allow_selfing=selfing)
    rng = np.random.default_rng(seed)
    g = rng.choice(n, max(1, int(share * n)), replace=False)  # arbitrary order
    if founder and 0 not in g:  # row 0 has no parents: it is a founder
        g = np.insert(g, rng.integers(0, len(g) + 1), 0)
    A = reference_A(ped)
    A22 = ped.A22(ped.ids[g])
    # values up to ~2, two passes of additions: round-off well below 1e-13
    np.testing.assert_allclose(A22, A[np.ix_(g, g)], rtol=0, atol=1e-13)
    np.testing.assert_array_equal(A22, A22.T)
    np.testing.assert_allclose(np.diag(A22), 1 + ped.inbreeding()[g], rtol=0, atol=1e-13)
    perm = rng.permutation(len(g))
    np.testing.assert_allclose(ped.A22(ped.ids[g[perm]]), A22[np.ix_(perm, perm)], rtol=0,
                               atol=1e-14)


def test_A22_of_string_ids_and_of_an_animal_without_ancestors_in_the_subset():
    ped = lmmbook.Pedigree(["s", "d", "c1", "c2", "gc"], [None, None, "s", "s", "c1"],
                           [None, None, "d", "d", "c2"])
    # gc is the offspring of full sibs (F = 1/4); its grandparents s and d are not asked for
    np.testing.assert_allclose(ped.A22(["gc", "c1", "s"]),
                               [[1.25, 0.75, 0.5], [0.75, 1.0, 0.5], [0.5, 0.5, 1.0]], atol=1e-15)
    np.testing.assert_allclose(ped.A22(["c2"]), [[1.0]])


def test_A22_refuses_unknown_and_repeated_ids_by_name():
    ped = lmmbook.Pedigree([1, 2, 3, 4], [0, 0, 1, 1], [0, 0, 2, 2])
    with pytest.raises(UnknownIdError, match="9 is not in the pedigree"):
        ped.A22([3, 9])
    with pytest.raises(lmmbook.DuplicateIdError, match="3 is listed more than once"):
        ped.A22([3, 4, 3])


def test_A22_in_several_column_blocks_equals_one_block(monkeypatch):
    """Large pedigrees get A22 block by block (memory bounded by A22_BLOCK_ENTRIES): a block
    limit that forces blocks of 8 columns (the smallest) and a ragged last block gives the
    same matrix as one block."""
    ped = lmmbook.Pedigree.from_frame(random_pedigree(7, 60, 0.2))
    ids = np.random.default_rng(7).permutation(ped.ids)[:43]  # 43 = 5 blocks of 8 + 3
    whole = ped.A22(ids)
    monkeypatch.setattr(lmmbook.pedigree, "A22_BLOCK_ENTRIES", 1)
    np.testing.assert_array_equal(ped.A22(ids), whole)
    A = reference_A(ped)
    rows = ped.index(ids)
    np.testing.assert_allclose(whole, A[np.ix_(rows, rows)], rtol=0, atol=1e-13)
