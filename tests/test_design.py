import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmmbook
from lmmbook.errors import DuplicateIdError, InputError, UnknownIdError


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
