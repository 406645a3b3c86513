import numpy as np
import pytest

import lmmbook
from lmmbook.errors import InputError, VarianceError


def test_same_seed_same_trial_and_other_seed_other_trial():
    a = lmmbook.simulate_variety_trial(seed=1)
    b = lmmbook.simulate_variety_trial(seed=1)
    c = lmmbook.simulate_variety_trial(seed=2)
    assert a.data.equals(b.data) and a.u.equals(b.u)
    assert not a.data["y"].equals(c.data["y"])


def test_shape_and_replication():
    t = lmmbook.simulate_variety_trial(30, 3, records=(2, 6), seed=4)
    counts = t.data["variety"].value_counts()
    assert len(counts) == 30 and counts.min() >= 2 and counts.max() <= 6
    assert counts.nunique() > 1  # unequal replication
    assert set(t.data["environment"]) == {"E1", "E2", "E3"}
    assert t.data["plot"].is_unique


def test_records_follow_the_model():
    """Many plots: residuals after removing the true effects have variance sigma2_e, and the true
    variety values have variance sigma2_u."""
    t = lmmbook.simulate_variety_trial(2000, 3, records=(20, 20), sigma2_u=0.5, sigma2_e=2.0,
                                       seed=9)
    d = t.data
    e = d["y"] - t.b[d["environment"]].to_numpy() - t.u[d["variety"]].to_numpy()
    # rounding y to 0.01 adds variance 0.01^2 / 12: negligible; the tolerances are ~4 SE
    assert e.var() == pytest.approx(2.0, rel=4 * np.sqrt(2 / len(e)))
    assert t.u.var() == pytest.approx(0.5, rel=4 * np.sqrt(2 / 2000))


def test_bad_arguments():
    with pytest.raises(InputError, match="records must be"):
        lmmbook.simulate_variety_trial(records=(3, 2), seed=0)
    with pytest.raises(VarianceError, match="sigma2_e must be positive"):
        lmmbook.simulate_variety_trial(sigma2_e=0, seed=0)
    with pytest.raises(InputError, match="received no plot"):
        lmmbook.simulate_variety_trial(1, 30, records=(1, 1), seed=0)
    with pytest.raises(InputError, match="at least 1"):
        lmmbook.simulate_variety_trial(0, seed=0)


def test_population_is_reproducible_and_consistent():
    a = lmmbook.simulate_population(2, 60, 5, n_snp=300, n_qtl=20, h2=0.5, seed=4)
    b = lmmbook.simulate_population(2, 60, 5, n_snp=300, n_qtl=20, h2=0.5, seed=4)
    np.testing.assert_array_equal(a.genotypes, b.genotypes)
    assert a.phenotypes.equals(b.phenotypes)
    assert a.genotypes.shape == (180, 300) and set(np.unique(a.genotypes)) <= {0.0, 1.0, 2.0}
    # true breeding values are the QTL genotypes times their effects, centred on the founders
    qtl = a.snp_map["qtl"].to_numpy()
    X = a.genotypes[:, qtl]
    tbv = (X - 2 * a.base_allele_freq[qtl]) @ a.qtl_effects.to_numpy()
    np.testing.assert_allclose(a.tbv.to_numpy(), tbv)
    founders = a.pedigree["generation"].to_numpy() == 0
    assert a.tbv[founders].var(ddof=0) == pytest.approx(0.5)  # scaled to h2 in the founders
    # the youngest generation has no phenotype by default
    young = a.pedigree["generation"].to_numpy() == 2
    assert a.phenotypes["y"][young].isna().all() and a.phenotypes["y"][~young].notna().all()
    # each offspring carries one allele from each parent at every locus (Mendel)
    ped = a.pedigree.set_index("animal")
    row = {animal: k for k, animal in enumerate(a.ids)}
    for animal in ped.index[ped["generation"] > 0][:20]:
        child = a.genotypes[row[animal]]
        s = a.genotypes[row[ped.loc[animal, "sire"]]]
        d = a.genotypes[row[ped.loc[animal, "dam"]]]
        lowest = (s == 2).astype(int) + (d == 2).astype(int)
        highest = (s > 0).astype(int) + (d > 0).astype(int)
        assert np.all(child >= lowest) and np.all(child <= highest)


def test_population_linkage_disequilibrium_and_missing_calls():
    pop = lmmbook.simulate_population(1, 200, 10, n_snp=1000, n_chromosomes=2, n_qtl=10,
                                      missing_rate=0.05, seed=6)
    assert np.isnan(pop.genotypes).mean() == pytest.approx(0.05, abs=0.01)
    full = lmmbook.simulate_population(1, 200, 10, n_snp=1000, n_chromosomes=2, n_qtl=10, seed=6)
    X = full.genotypes
    poly = X.std(axis=0) > 0
    r = np.corrcoef(X[:, poly].T)
    near = np.abs(np.diag(r, 1)).mean()  # neighbouring loci: linked
    far = np.abs(r[:50, -50:]).mean()  # the two ends: other chromosome
    assert near > 3 * far


def test_population_bad_arguments():
    with pytest.raises(InputError, match="h2 must be strictly between 0 and 1"):
        lmmbook.simulate_population(h2=1.0, seed=0)
    with pytest.raises(InputError, match="n_qtl"):
        lmmbook.simulate_population(n_snp=10, n_qtl=20, seed=0)
