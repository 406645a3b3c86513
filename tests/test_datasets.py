import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmmbook
from lmmbook import datasets
from lmmbook.datasets import mrode_example_3_1


def test_mrode_3_1_pedigree_is_ordered_and_complete():
    df = mrode_example_3_1()
    assert df.index.tolist() == list(range(1, 9))
    for animal, row in df.iterrows():  # parents precede offspring
        assert row["sire"] < animal and row["dam"] < animal
    assert df["y"].notna().sum() == 5
    assert df.loc[df["y"].notna(), "sex"].notna().all()


# ---------------------------------------------------------------- the shipped real data sets


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a data set loader tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_data_ship_inside_the_package():
    assert datasets.DATA.parent == Path(lmmbook.__file__).resolve().parent
    for name in ("README.md", "mice/mice.bed", "mice/mice.bim", "mice/mice.fam",
                 "mice/mice_pheno.csv", "wheat/wheat_markers.csv.gz", "wheat/wheat_yield.csv",
                 "wheat/wheat_A.csv.gz", "wheat/wheat_folds.csv"):
        assert (datasets.DATA / name).is_file(), name
    readme = (datasets.DATA / "README.md").read_text()
    for words in ("GPL-3", "BGLR 1.1.5", "Valdar", "Legarra", "Crossa", "Perez P. & de los Campos"):
        assert words in readme


def test_mice_genotypes_and_phenotypes_joined_by_id(no_network):
    data = datasets.mice()
    g, pheno = data.genotypes, data.phenotypes
    assert g.source == str(datasets.DATA / "mice" / "mice.bed")
    assert g.M.shape == (1814, 10346) and g.M.dtype == np.float64
    assert set(np.unique(g.M)) == {0.0, 1.0, 2.0}
    assert g.ids.dtype.kind == "U" and len(set(g.ids)) == 1814
    assert len(set(g.families)) == 169
    header = (datasets.DATA / "mice" / "mice_pheno.csv").read_text().splitlines()[0]
    assert pheno.columns.tolist() == header.split(",")  # the columns as named in the file
    assert pheno.index.tolist() == g.ids.tolist() == pheno["id"].tolist()
    assert (pheno["family"].to_numpy() == g.families).all()
    # sex coded twice, in agreement: .fam 1 = male, 2 = female; GENDER M / F
    assert ((pheno["GENDER"] == "M").to_numpy() == (g.sex == 1)).all()
    assert ((pheno["GENDER"] == "F").to_numpy() == (g.sex == 2)).all()
    assert pheno["Obesity.BMI"].dtype == np.float64 and pheno["Obesity.BMI"].notna().all()
    chromosomes = g.snps["chromosome"].unique().tolist()
    assert sorted(chromosomes) == sorted([str(c) for c in range(1, 20)] + ["X"])


@pytest.fixture
def mice_copy(tmp_path):
    folder = tmp_path / "mice"
    folder.mkdir()
    for name in ("mice.bed", "mice.bim", "mice.fam"):
        (folder / name).symlink_to(datasets.DATA / "mice" / name)
    shutil.copy(datasets.DATA / "mice" / "mice_pheno.csv", folder)
    return folder


def test_mice_loader_joins_by_id_not_row_order(mice_copy):
    csv = mice_copy / "mice_pheno.csv"
    original = pd.read_csv(csv)
    original.iloc[::-1].to_csv(csv, index=False)  # the rows in reverse order
    pheno = datasets._mice_from(mice_copy).phenotypes
    expected = datasets.mice().phenotypes
    pd.testing.assert_frame_equal(pheno, expected)


def test_mice_loader_reports_mismatched_ids(mice_copy):
    csv = mice_copy / "mice_pheno.csv"
    table = pd.read_csv(csv)
    table.drop(index=[5]).to_csv(csv, index=False)
    lost = table.loc[5, "id"]
    with pytest.raises(lmmbook.UnknownIdError, match=rf"1 genotyped without a phenotype row "
                       rf"\('{lost}'\), 0 phenotyped but not genotyped"):
        datasets._mice_from(mice_copy)
    table.loc[5, "id"] = "Z999"
    table.to_csv(csv, index=False)
    with pytest.raises(lmmbook.UnknownIdError, match=r"1 phenotyped but not genotyped \('Z999'\)"):
        datasets._mice_from(mice_copy)
    pd.concat([table.iloc[:3], table]).to_csv(csv, index=False)
    with pytest.raises(lmmbook.DuplicateIdError, match="missing or repeated IDs"):
        datasets._mice_from(mice_copy)
    table = pd.read_csv(datasets.DATA / "mice" / "mice_pheno.csv")
    table.loc[0, "family"] = "F9999"
    table.to_csv(csv, index=False)
    with pytest.raises(lmmbook.InputError, match=rf"family of '{table.loc[0, 'id']}' differs"):
        datasets._mice_from(mice_copy)


def test_wheat_parts_share_the_lines(no_network):
    data = datasets.wheat()
    lines = data.genotypes.index
    assert data.genotypes.shape == (599, 1279) and lines.is_unique and lines.dtype.kind == "i"
    assert (data.genotypes.dtypes == np.float64).all()
    assert set(np.unique(data.genotypes.to_numpy())) == {0.0, 1.0}  # inbred lines: 0/1 only
    assert data.yield_.columns.tolist() == ["env1", "env2", "env4", "env5"]
    np.testing.assert_allclose(data.yield_.mean(), 0, atol=1e-9)  # standardised as distributed
    for part in (data.yield_, data.A, data.folds):
        assert part.index.equals(lines)
    assert data.A.columns.equals(lines)
    np.testing.assert_array_equal(data.A.to_numpy(), data.A.to_numpy().T)
    assert 1.9 < np.diag(data.A).mean() <= 2.0  # 1 + F with F near 1
    assert data.folds.name == "fold"
    assert data.folds.value_counts().sort_index().tolist() == [57, 50, 61, 73, 52, 68, 51, 64,
                                                               63, 60]


def test_wheat_loader_joins_by_line_not_row_order(tmp_path):
    folder = tmp_path / "wheat"
    shutil.copytree(datasets.DATA / "wheat", folder)
    rng = np.random.default_rng(0)
    for name in ("wheat_yield.csv", "wheat_folds.csv"):
        table = pd.read_csv(folder / name)
        table.iloc[rng.permutation(len(table))].to_csv(folder / name, index=False)
    A = pd.read_csv(folder / "wheat_A.csv.gz", index_col=0)
    order = rng.permutation(len(A))
    A.iloc[order, order].to_csv(folder / "wheat_A.csv.gz")
    shuffled, expected = datasets._wheat_from(folder), datasets.wheat()
    pd.testing.assert_frame_equal(shuffled.yield_, expected.yield_)
    pd.testing.assert_frame_equal(shuffled.A, expected.A)
    pd.testing.assert_series_equal(shuffled.folds, expected.folds)
    table = pd.read_csv(folder / "wheat_folds.csv")
    table.iloc[1:].to_csv(folder / "wheat_folds.csv", index=False)
    with pytest.raises(lmmbook.UnknownIdError, match=r"wheat_folds.csv does not list the 599 "
                       r"lines .* once each: .* differ"):
        datasets._wheat_from(folder)


# ---------------------------------------------------------------- Mrode's multi-trait examples


def _spd(matrix):
    """Symmetric to the last bit, and positive definite (Cholesky succeeds)."""
    matrix = np.asarray(matrix, float)
    np.testing.assert_array_equal(matrix, matrix.T)
    np.linalg.cholesky(matrix)
    return True


def test_mrode_6_1_bivariate_records_and_variances():
    ex = datasets.mrode_example_6_1()
    assert ex.pedigree.columns.tolist() == ["animal", "sire", "dam"]
    assert ex.pedigree["animal"].tolist() == list(range(1, 9))
    assert ex.pedigree.set_index("animal").loc[4].tolist() == [1, 0]
    assert ex.pedigree.set_index("animal").loc[8].tolist() == [3, 6]
    rec = ex.records
    assert rec.columns.tolist() == ["calf", "sex", "wwg", "pwg"]
    assert rec["calf"].tolist() == [4, 5, 6, 7, 8]
    assert rec["sex"].tolist() == ["M", "F", "F", "M", "M"]
    assert rec["wwg"].dtype == np.float64 and rec["pwg"].dtype == np.float64
    assert rec["wwg"].tolist() == [4.5, 2.9, 3.9, 3.5, 5.0]  # Example 3.1's y
    assert rec["pwg"].tolist() == [6.8, 5.0, 6.8, 6.0, 7.5]
    assert ex.genotypes is None
    assert ex.variances == {"G0": [[20.0, 18.0], [18.0, 40.0]], "R0": [[40.0, 11.0], [11.0, 30.0]]}
    assert all(isinstance(v, float) for key in ("G0", "R0") for row in ex.variances[key]
               for v in row)
    assert _spd(ex.variances["G0"]) and _spd(ex.variances["R0"])
    # the WWG records are Example 3.1's, with its pedigree
    ex31 = mrode_example_3_1()
    np.testing.assert_array_equal(rec["wwg"], ex31.loc[rec["calf"], "y"])
    np.testing.assert_array_equal(ex.pedigree[["sire", "dam"]], ex31[["sire", "dam"]])


def test_mrode_6_2_missing_pwg_of_calves_4_and_9():
    ex, ex61 = datasets.mrode_example_6_2(), datasets.mrode_example_6_1()
    assert ex.pedigree["animal"].tolist() == list(range(1, 10))
    assert ex.pedigree.set_index("animal").loc[9].tolist() == [7, 0]
    pd.testing.assert_frame_equal(ex.pedigree.iloc[:8], ex61.pedigree)
    rec = ex.records
    assert rec["calf"].tolist() == [4, 5, 6, 7, 8, 9]
    assert rec["wwg"].notna().all() and rec["pwg"].dtype == np.float64
    assert rec.loc[rec["pwg"].isna(), "calf"].tolist() == [4, 9]
    calf9 = rec.set_index("calf").loc[9]
    assert calf9["sex"] == "F" and calf9["wwg"] == 4.0 and np.isnan(calf9["pwg"])
    # calves 5-8 as in Example 6.1, calf 4 keeps its WWG
    both = rec.set_index("calf").loc[[5, 6, 7, 8]]
    pd.testing.assert_frame_equal(both, ex61.records.set_index("calf").loc[[5, 6, 7, 8]])
    assert rec.set_index("calf").loc[4, "wwg"] == 4.5
    assert ex.variances == ex61.variances
    assert _spd(ex.variances["G0"]) and _spd(ex.variances["R0"])


def test_mrode_11_13_records_are_example_6_1s():
    ex, ex61 = datasets.mrode_example_11_13(), datasets.mrode_example_6_1()
    pd.testing.assert_frame_equal(ex.records, ex61.records)
    pd.testing.assert_frame_equal(ex.pedigree, ex61.pedigree)
    assert ex.variances == ex61.variances
    assert _spd(ex.variances["G0"]) and _spd(ex.variances["R0"])
    M = ex.genotypes
    assert M.shape == (5, 10) and M.index.name == "calf" and M.index.tolist() == [4, 5, 6, 7, 8]
    assert M.columns.tolist() == [f"snp{k}" for k in range(1, 11)]
    assert (M.dtypes == np.float64).all() and set(np.unique(M.to_numpy())) <= {0.0, 1.0, 2.0}
    assert M.loc[4].tolist() == [0, 2, 1, 1, 1, 2, 0, 1, 1, 1]
    assert M.loc[8].tolist() == [1, 1, 1, 1, 1, 0, 1, 1, 2, 0]
    assert M["snp9"].tolist() == [1, 2, 2, 2, 2]


def test_mrode_11_13_vanraden_G_reproduces_the_printed_G():
    M = datasets.mrode_example_11_13().genotypes
    p = M.mean().to_numpy() / 2  # allele frequencies of the five calves
    assert round(2 * np.sum(p * (1 - p)), 10) == 4.08
    G = lmmbook.genomic_relationship(M, allele_freq=p)
    np.testing.assert_allclose(G, lmmbook.genomic_relationship(M), rtol=0, atol=1e-12)
    W = M.to_numpy() - 2 * p
    np.testing.assert_allclose(G, W @ W.T / 4.08, rtol=0, atol=1e-12)
    printed = np.array([  # ex-11-13.md, label "G", calves 4-8, 3 decimals
        [1.137, -0.725, -0.088, 0.010, -0.333],
        [-0.725, 0.843, -0.235, -0.137, 0.255],
        [-0.088, -0.235, 0.402, 0.010, -0.088],
        [0.010, -0.137, 0.010, 0.353, -0.235],
        [-0.333, 0.255, -0.088, -0.235, 0.402],
    ])
    np.testing.assert_allclose(G, printed, rtol=0, atol=5e-4)  # rounding of the print
    # singular (G 1 = 0 with the calves' own frequencies): why the book inverts G + 0.01 I
    assert np.linalg.matrix_rank(G) == 4
    np.linalg.cholesky(G + 0.01 * np.eye(5))
