import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook import _checks, design
from lmmbook.datasets import mrode_example_5_1
from lmmbook.design import fixed_design
from lmmbook.errors import DuplicateIdError, InputError, RankDeficientError, UnknownIdError


def test_columns_sorted_and_rows_one_hot():
    Z, levels = lmmbook.incidence(["c", "a", "b", "a"])
    assert levels.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(
        Z.toarray(), [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    )


def test_levels_fix_order_and_keep_empty_columns():
    inc = lmmbook.incidence([3, 1], levels=[1, 2, 3])
    np.testing.assert_array_equal(inc.matrix.toarray(), [[0, 0, 1], [1, 0, 0]])
    assert inc.counts().to_dict() == {1: 1, 2: 0, 3: 1}
    assert inc.shape == (2, 3)


def test_categorical_keeps_its_category_order():
    labels = pd.Categorical(["lo", "hi", "lo"], categories=["lo", "mid", "hi"])
    assert lmmbook.incidence(labels).levels.tolist() == ["lo", "mid", "hi"]


def test_unsortable_labels_keep_first_appearance():
    assert lmmbook.incidence(["b", 1, "b"]).levels.tolist() == ["b", 1]


@settings(max_examples=50)
@given(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=40))
def test_incidence_properties(labels):
    Z, levels = lmmbook.incidence(labels)
    dense = Z.toarray()
    assert np.all(dense.sum(axis=1) == 1)  # one level per record
    assert np.all(dense.sum(axis=0) >= 1)  # no empty column without levels=
    assert [levels[j] for j in dense.argmax(axis=1)] == labels  # the row points at its label


def test_missing_label_is_refused_with_its_row():
    with pytest.raises(InputError, match=r"missing at row\(s\) 1, 3"):
        lmmbook.incidence(["a", None, "b", np.nan])


def test_unknown_label_named():
    with pytest.raises(UnknownIdError, match=r"holds 'x' \(first at row 1\).*not among the 2"):
        lmmbook.incidence(["a", "x"], levels=["a", "b"])


def test_duplicate_levels_named():
    with pytest.raises(DuplicateIdError, match=r"levels holds 'a' more than once"):
        lmmbook.incidence(["a"], levels=["a", "b", "a"])


def test_two_dimensional_levels_refused():
    with pytest.raises(InputError, match="levels must be one-dimensional"):
        lmmbook.incidence(["a"], levels=[["a"]])


def test_missing_level_refused():
    # a label can never be missing, so a missing level would be a column no record can reach
    with pytest.raises(InputError, match=r"levels is missing at position\(s\) 2"):
        lmmbook.incidence(["a", "b"], levels=["a", "b", None])
    with pytest.raises(InputError, match=r"levels is missing at position\(s\) 0"):
        lmmbook.incidence(pd.Series(["a"], dtype="str"), levels=pd.Series([np.nan, "a"],
                                                                          dtype="str"))



# Mrode & Pocrnic (2023), Example 5.1 (../shared/examples/mrode-4ed/ex-05-1.md): fat yield of
# cows 4-8 in two lactations, with herd-year-season (HYS) and parity as fixed effects.
MRODE_5_1 = mrode_example_5_1().records.set_index(
    pd.Index([f"rec{i}" for i in range(1, 11)], name="record"))


def test_formula_with_intercept_is_the_incidence_without_reference_levels():
    X = fixed_design("~ 1 + C(hys) + C(parity)", MRODE_5_1)
    Z_hys, hys_levels = lmmbook.incidence(MRODE_5_1["hys"])
    Z_par, par_levels = lmmbook.incidence(MRODE_5_1["parity"])
    expected = np.column_stack([np.ones(10), Z_hys.toarray()[:, 1:], Z_par.toarray()[:, 1:]])
    np.testing.assert_array_equal(X.to_numpy(), expected)
    assert X.columns.tolist() == ["Intercept", "C(hys)[T.2]", "C(hys)[T.3]", "C(hys)[T.4]",
                                  "C(parity)[T.2]"]
    assert hys_levels.tolist() == [1, 2, 3, 4] and par_levels.tolist() == [1, 2]
    assert X.dtypes.eq(np.float64).all()
    assert all(isinstance(c, str) for c in X.columns)


def test_formula_without_intercept_keeps_every_level_of_the_first_factor():
    X = fixed_design("~ C(hys) + C(parity) - 1", MRODE_5_1)
    Z_hys, _ = lmmbook.incidence(MRODE_5_1["hys"])
    Z_par, _ = lmmbook.incidence(MRODE_5_1["parity"])
    np.testing.assert_array_equal(X.to_numpy(),
                                  np.column_stack([Z_hys.toarray(), Z_par.toarray()[:, 1:]]))
    assert X.columns.tolist() == ["C(hys)[1]", "C(hys)[2]", "C(hys)[3]", "C(hys)[4]",
                                  "C(parity)[T.2]"]
    # "0 +" is the same as "- 1"
    pd.testing.assert_frame_equal(fixed_design("~ 0 + C(hys) + C(parity)", MRODE_5_1), X)


def test_row_index_and_order_are_those_of_data():
    shuffled = MRODE_5_1.sample(frac=1.0, random_state=3)
    assert not shuffled.index.equals(MRODE_5_1.index)
    X = fixed_design("~ 1 + C(hys) + C(parity)", shuffled)
    assert X.index.equals(shuffled.index)
    # each record keeps its own row, whatever the order
    pd.testing.assert_frame_equal(X.loc[MRODE_5_1.index],
                                  fixed_design("~ 1 + C(hys) + C(parity)", MRODE_5_1))


def test_numeric_covariates_and_text_factors():
    data = pd.DataFrame({"sex": ["F", "M", "M", "F", "M"],
                         "weight": [410.0, 450.5, 430.0, 380.25, 500.0]},
                        index=[10, 11, 12, 13, 14])
    X = fixed_design("~ 1 + sex + weight", data)
    assert X.columns.tolist() == ["Intercept", "sex[T.M]", "weight"]
    np.testing.assert_array_equal(
        X.to_numpy(), np.column_stack([np.ones(5), data["sex"].eq("M"), data["weight"]]))
    assert X.index.tolist() == [10, 11, 12, 13, 14]
    # a transform and a covariate per level
    X2 = fixed_design("~ np.log(weight) + C(sex):weight", data)
    np.testing.assert_allclose(X2["np.log(weight)"], np.log(data["weight"]), rtol=1e-15)
    np.testing.assert_array_equal(X2["C(sex)[M]:weight"], data["weight"] * data["sex"].eq("M"))


def test_intercept_only_and_empty_designs():
    assert fixed_design("~ 1", MRODE_5_1).columns.tolist() == ["Intercept"]
    empty = fixed_design("~ 0", MRODE_5_1)
    assert empty.shape == (10, 0) and empty.index.equals(MRODE_5_1.index)


def test_missing_values_are_refused_not_dropped():
    data = MRODE_5_1.astype({"hys": object})
    data.loc["rec3", "hys"] = None
    data.loc["rec7", "parity"] = np.nan
    with pytest.raises(InputError, match=r"missing values in column\(s\) 'parity', 'hys' in 2 "
                       r"row\(s\) of data \(IDs 'rec3', 'rec7'\).*no record is dropped silently"
                       r".*dropna\(subset=\['parity', 'hys'\]\)"):
        fixed_design("~ 1 + C(hys) + C(parity)", data)
    # only the formula's columns matter: a missing value elsewhere is no reason to refuse
    X = fixed_design("~ 1 + C(parity)", data.assign(parity=MRODE_5_1["parity"]))
    assert len(X) == 10
    many = MRODE_5_1.assign(fat_yield=np.nan)
    with pytest.raises(InputError, match=r"'fat_yield' in 10 row\(s\) of data \(IDs 'rec1', "
                       r"'rec2', 'rec3', 'rec4', 'rec5' and 5 more\)"):
        fixed_design("~ 1 + fat_yield", many)
    # a column that formulaic 1.2.2 does not report as used (inside poly) is named as well
    one = MRODE_5_1.astype({"fat_yield": float})
    one.loc["rec4", "fat_yield"] = np.nan
    with pytest.raises(InputError, match=r"missing values in column\(s\) 'fat_yield' in 1 "
                       r"row\(s\) of data \(IDs 'rec4'\)"):
        fixed_design("~ poly(fat_yield, 2)", one)


def test_missing_values_made_by_a_transform_are_refused():
    data = pd.DataFrame({"w": [1.0, -2.0, 3.0]}, index=["a", "b", "c"])
    with pytest.warns(RuntimeWarning):  # numpy's own warning about the log of -2
        with pytest.raises(InputError, match=r"terms that evaluate to a missing value \(NaN\) in"
                           r" 1 row\(s\) of data \(IDs 'b'\).*np\.log of a negative value"):
            fixed_design("~ np.log(w)", data)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(InputError, match=r"column 'np.log\(w \+ 2\)' the value -inf at row 1 "
                           r"\(ID 'b'\), 1 such value\(s\) in all; X must be finite"):
            fixed_design("~ np.log(w + 2)", data)


def test_left_hand_side_and_several_parts_are_refused():
    with pytest.raises(InputError, match=r"formula 'fat_yield ~ C\(hys\)' has a left-hand side, "
                       r"'fat_yield': give only the fixed effects, '~ 1 \+ C\(hys\)', and pass "
                       r"the records separately as y"):
        fixed_design("fat_yield ~ C(hys)", MRODE_5_1)
    with pytest.raises(InputError, match="has several parts"):
        fixed_design("~ C(hys) | C(parity)", MRODE_5_1)


def test_unknown_column_is_named_with_the_available_ones():
    with pytest.raises(InputError, match=r"uses 'HYS', which is not a column of data\. The "
                       r"columns are 'cow', 'parity', 'hys', 'fat_yield'; correct the name"):
        fixed_design("~ 1 + C(HYS)", MRODE_5_1)
    with pytest.raises(InputError, match=r"uses 'Parity', which is not a column of data"):
        fixed_design("~ 1 + Parity", MRODE_5_1)


def test_variables_of_the_calling_code_are_not_used():
    herd = np.arange(10)  # noqa: F841 - formulaic would find it in this frame by default
    with pytest.raises(InputError, match="uses 'herd', which is not a column of data"):
        fixed_design("~ C(herd)", MRODE_5_1)


def test_unreadable_formula_and_wrong_types_are_refused():
    with pytest.raises(InputError, match=r"formula '~ C\(hys' cannot be read: Formula ended "
                       r"before .*Write it as in R"):
        fixed_design("~ C(hys", MRODE_5_1)
    with pytest.raises(InputError, match=r"calls 'foo', which is not a known function: use "
                       r"numpy as np"):
        fixed_design("~ foo(hys)", MRODE_5_1)
    with pytest.raises(InputError, match=r"cannot be evaluated on data: .*Its variables must be "
                       r"columns of data \('cow', 'parity'"):
        fixed_design("~ C(hys, contr.nonsense)", MRODE_5_1)
    # formulaic would code the records of HYS 3 and 4 as rows of zeros, with a warning only
    with pytest.raises(InputError, match=r"meets levels in data that it does not list: Data has "
                       r"categories outside of the nominated levels.*Every record needs a level"):
        fixed_design("~ C(hys, levels=[1, 2])", MRODE_5_1)
    with pytest.raises(InputError, match="formula must be a string"):
        fixed_design(["hys"], MRODE_5_1)
    with pytest.raises(InputError, match="data must be a pandas DataFrame"):
        fixed_design("~ hys", MRODE_5_1.to_dict())


def test_two_columns_with_one_label_are_refused():
    # formulaic names the contrast of sex "sex[T.M]", like this data column: it would keep one
    data = pd.DataFrame({"sex": ["F", "M", "F"], "sex[T.M]": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match=r"gives two columns the label 'sex\[T\.M\]'.*rename"):
        fixed_design("~ sex + `sex[T.M]`", data)


# --- the remedy offered for a design without full column rank --------------------------------

def _suggested(message: str) -> list[str]:
    found = re.search(r"\): drop (.*?) \(the last column of each dependency", message)
    assert found, message
    return re.findall(r"'([^']*)'", found.group(1))


def test_mrode_5_1_design_names_the_two_dependencies_and_what_to_drop():
    """HYS 1 and 2 occur only in parity 1, HYS 3 and 4 only in parity 2: two dependencies."""
    Z_hys, hys_levels = lmmbook.incidence(MRODE_5_1["hys"])
    Z_par, par_levels = lmmbook.incidence(MRODE_5_1["parity"])
    labels = [f"hys[{h}]" for h in hys_levels] + [f"parity[{q}]" for q in par_levels]
    X = pd.DataFrame(np.column_stack([Z_hys.toarray(), Z_par.toarray()]),
                     index=MRODE_5_1.index, columns=labels)
    with pytest.raises(RankDeficientError) as info:
        _checks.full_column_rank("X", X.to_numpy(), X.columns)
    message = str(info.value)
    assert ("rank 4 of 6 columns): columns 'hys[1]', 'hys[2]', 'hys[3]', 'hys[4]', "
            "'parity[1]', 'parity[2]' are linearly dependent") in message
    assert "drop one column per dependency (2 here), which sets that level's effect to zero" \
        in message
    assert "(as Mrode sets HYS 1 = HYS 3 = 0 in Example 5.1)" in message
    assert "do not depend on which levels are set to zero" in message
    assert "another set of 2 of them" in message
    # the last column of each dependency in column order: here both parity columns
    assert _suggested(message) == ["parity[1]", "parity[2]"]
    # with parity first, one HYS level per parity goes instead (Mrode's kind of choice)
    reordered = X[labels[4:] + labels[:4]]
    with pytest.raises(RankDeficientError) as info:
        _checks.full_column_rank("X", reordered.to_numpy(), reordered.columns)
    assert _suggested(str(info.value)) == ["hys[2]", "hys[4]"]
    for drop in (["parity[1]", "parity[2]"], ["hys[2]", "hys[4]"], ["hys[1]", "hys[3]"]):
        _checks.full_column_rank("X", X.drop(columns=drop).to_numpy(), None)  # passes


def test_mrode_5_1_formula_design_still_has_one_dependency():
    X = fixed_design("~ 1 + C(hys) + C(parity)", MRODE_5_1)
    with pytest.raises(RankDeficientError, match=r"rank 4 of 5 columns.*\(1 here\).*drop "
                       r"'C\(parity\)\[T\.2\]' \(the last column of each dependency; another one"
                       r" of them"):
        _checks.full_column_rank("X", X.to_numpy(), X.columns)


def test_what_is_estimable_does_not_depend_on_the_level_set_to_zero():
    """The claim of the message, on Mrode 5.1 with a cow effect (lambda = 1.4, K = I): the
    fitted fixed part X b and the BLUPs u are the same whichever two columns are dropped."""
    X_full = fixed_design("~ C(hys) + C(parity) - 1", MRODE_5_1).assign(
        **{"C(parity)[1]": 1.0 - MRODE_5_1["parity"].eq(2).to_numpy()})
    Z, _ = lmmbook.incidence(MRODE_5_1["cow"])
    Z = Z.toarray()
    y = MRODE_5_1["fat_yield"].to_numpy()
    fits = []
    for drop in (["C(parity)[1]", "C(parity)[T.2]"], ["C(hys)[1]", "C(hys)[3]"],
                 ["C(hys)[2]", "C(hys)[4]"]):
        X = X_full.drop(columns=drop).to_numpy()
        W = np.hstack([X, Z])
        C = W.T @ W
        C[4:, 4:] += 1.4 * np.eye(Z.shape[1])
        sol = np.linalg.solve(C, W.T @ y)
        fits.append((X @ sol[:4], sol[4:]))
    for Xb, u in fits[1:]:
        np.testing.assert_allclose(Xb, fits[0][0], rtol=1e-12)
        np.testing.assert_allclose(u, fits[0][1], atol=1e-10)


def test_message_without_a_clear_set_to_drop(monkeypatch):
    monkeypatch.setattr(design, "_columns_to_drop", lambda S, rcond: None)
    X = np.column_stack([np.ones(4), [1.0, 1, 0, 0], [0.0, 0, 1, 1]])
    with pytest.raises(RankDeficientError, match=r"\(1 here\).*: drop 1 of them whose removal "
                       r"leaves full rank\. Estimable"):
        _checks.full_column_rank("X", X, None)


@st.composite
def factor_designs(draw):
    """An intercept or not, one to three factors and maybe an integer covariate, over up to 30
    records; every column has a record (an empty column is refused with another message)."""
    n = draw(st.integers(1, 30))
    columns = [np.ones(n)] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        labels = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
        Z, _ = lmmbook.incidence(labels)
        columns.extend(Z.toarray().T)
    if draw(st.booleans()):
        columns.append(np.asarray(draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)),
                                  dtype=float))
    X = np.column_stack(columns)
    if draw(st.booleans()):  # the order of the columns decides which are dropped
        X = X[:, draw(st.permutations(range(X.shape[1])))]
    return X[:, np.any(X != 0, axis=0)]


@settings(max_examples=150)
@given(factor_designs())
def test_dropping_the_suggested_columns_gives_full_rank(X):
    p = X.shape[1]
    rank = np.linalg.matrix_rank(X)  # an independent rank (SVD of X itself)
    labels = pd.Index([f"c{j}" for j in range(p)])
    if rank == p:
        _checks.full_column_rank("X", X, labels)
        return
    with pytest.raises(RankDeficientError, match=f"rank {rank} of {p} columns") as info:
        _checks.full_column_rank("X", X, labels)
    drop = _suggested(str(info.value))
    assert len(drop) == p - rank
    kept = X[:, ~labels.isin(drop)]
    assert np.linalg.matrix_rank(kept) == rank == kept.shape[1]
    # and each dropped column is a combination of the kept columns before it
    for name in drop:
        j = labels.get_loc(name)
        before = X[:, [i for i in range(j) if labels[i] not in drop]]
        assert np.linalg.matrix_rank(np.column_stack([before, X[:, j]])) == before.shape[1]


def test_near_dependencies_give_a_valid_set_or_none():
    """Designs with dependencies blurred by noise of 1e-8 to 1e-4: whenever a set is offered,
    it has p - rank columns and what remains passes the same rank test (condition < 1e6)."""
    rng = np.random.default_rng(7)
    offered = tested = 0
    for _ in range(400):
        p = int(rng.integers(3, 9))
        X = rng.standard_normal((15, p))
        for _ in range(int(rng.integers(1, 3))):
            j = rng.integers(0, p)
            others = rng.choice(p, size=int(rng.integers(1, 3)), replace=False)
            X[:, j] = (X[:, others] @ rng.integers(-2, 3, size=len(others)) + rng.random() * 0.7
                       * 10.0 ** rng.uniform(-8, -4) * rng.standard_normal(15))
        XtX = X.T @ X
        norms = np.sqrt(np.diag(XtX))
        if (norms == 0).any():
            continue
        S = XtX / np.outer(norms, norms)
        w = np.linalg.eigvalsh(S)
        rank = p - int((w < 1e-12 * w[-1]).sum())
        if rank == p:
            continue
        tested += 1
        drop = design._columns_to_drop(S, 1e-6)
        if drop is None:
            continue
        offered += 1
        assert len(drop) == p - rank
        kept = np.setdiff1d(np.arange(p), drop)
        _checks.full_column_rank("X", X[:, kept], None)  # passes
    assert tested > 200 and offered >= 0.97 * tested
