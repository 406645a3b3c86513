import numpy as np
import pandas as pd
import pytest

import lmmbook
from lmmbook.errors import DuplicateIdError, InputError
from lmmbook.markers import allele_frequencies, as_genotypes, center, filter_markers


def test_values_other_than_012_are_named():
    M = pd.DataFrame([[0, 1], [3, 2]], index=["a", "b"], columns=["s1", "s2"])
    with pytest.raises(InputError, match=r"3\.0 at row 1 \(ID 'b'\), column 0 \(marker 's1'\)"):
        as_genotypes(M)
    with pytest.raises(InputError, match=r"-1\.0 at row 0, column 1"):
        as_genotypes(np.array([[0, -1], [1, 1]]))


def test_all_missing_marker_or_individual():
    with pytest.raises(InputError, match=r"marker\(s\) 1 .*no genotype call"):
        as_genotypes(np.array([[0, np.nan], [1, np.nan]]))
    with pytest.raises(InputError, match=r"individual\(s\) 'b' .*no genotype call"):
        as_genotypes(pd.DataFrame([[0, 1], [np.nan, np.nan]], index=["a", "b"]))


def test_duplicated_ids_and_markers():
    with pytest.raises(DuplicateIdError, match="'a' more than once"):
        as_genotypes(pd.DataFrame([[0], [1]], index=["a", "a"]))
    with pytest.raises(DuplicateIdError, match="'s' more than once"):
        as_genotypes(pd.DataFrame([[0, 1]], columns=["s", "s"]))


def test_frequencies_and_centring_with_missing_calls():
    M = np.array([[0, 2, np.nan], [2, 1, 1], [2, 0, 1]])
    np.testing.assert_allclose(allele_frequencies(M), [2 / 3, 0.5, 0.5])
    W = center(M)
    assert W[0, 2] == 0  # a missing call is imputed at the mean: centred value 0
    np.testing.assert_allclose(W[:, 0], [-4 / 3, 2 / 3, 2 / 3])
    W_base = center(M, allele_freq=[0.5, 0.5, 0.5])
    np.testing.assert_allclose(W_base[:, 0], [-1, 1, 1])
    with pytest.raises(InputError, match="one frequency per marker"):
        center(M, allele_freq=[0.5])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        center(M, allele_freq=[0.5, 1.5, 0.5])


def test_filter_reports_what_it_removed():
    rng = np.random.default_rng(0)
    M = rng.binomial(2, 0.4, size=(100, 6)).astype(float)
    M[:, 1] = 0  # monomorphic
    M[:, 2] = 0
    M[:3, 2] = 1  # maf 0.015
    M[:20, 3] = np.nan  # call rate 0.8
    frame = pd.DataFrame(M, columns=[f"s{k}" for k in range(6)])
    res = filter_markers(frame, maf=0.05, call_rate=0.9)
    assert res.kept.tolist() == [True, False, False, False, True, True]
    assert res.removed["marker"].tolist() == ["s1", "s2", "s3"]
    assert res.removed["reason"].tolist() == ["monomorphic", "maf < 0.05", "call rate < 0.9"]
    assert res.M.shape == (100, 3) and res.snp_names.tolist() == ["s0", "s4", "s5"]
    assert lmmbook.filter_markers is filter_markers


def test_missing_individual_id_or_marker_name_refused():
    M = pd.DataFrame([[0, 1], [2, 1]], index=["a", None], columns=["s1", "s2"])
    with pytest.raises(InputError, match="the index of M has a missing ID at position 1"):
        as_genotypes(M)
    M = pd.DataFrame([[0, 1], [2, 1]], index=["a", "b"], columns=[np.nan, "s2"])
    with pytest.raises(InputError, match="the columns of M has a missing ID at position 0"):
        as_genotypes(M)


def test_the_first_bad_value_is_named_after_missing_calls_and_all_are_counted():
    M = np.array([[0, 1, 2], [np.nan, 0.5, 2], [1, 2, np.inf]])
    with pytest.raises(InputError,
                       match=r"0\.5 at row 1, column 1; .*\(2 such value\(s\) in all\)"):
        as_genotypes(M)
    geno = as_genotypes(np.array([[0, 1, np.nan], [2, np.nan, np.nan], [1, 1, 2]]))
    assert geno.col_calls.tolist() == [3, 2, 1] and geno.col_sum.tolist() == [3, 2, 2]
