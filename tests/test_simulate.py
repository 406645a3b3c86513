import numpy as np
import pandas as pd
import pytest
from reference import gls_blup, tabular_A

import lmmbook
from lmmbook.errors import InputError, VarianceError
from lmmbook.simulate_genomes import _Genome, _meiosis


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


# --- the genome, its history and selection ------------------------------------------------------


def _labelled_parent(m):
    """One parent whose first haplotype is all 0 and second all 1: a gamete shows, locus by
    locus, which haplotype it came from."""
    return np.zeros((1, m), np.int8), np.ones((1, m), np.int8)


def test_meiosis_crossovers_follow_each_chromosomes_length():
    """Haldane's map on chromosomes of 0.5, 1 and 2 M: (1) the mean number of switches between
    adjacent loci equals its expectation sum_k (1 - exp(-2 d_k)) / 2 (about the length),
    (2) their variance equals the mean (Poisson), (3) the recombination fraction between loci
    d morgans apart is Haldane's (1 - exp(-2d)) / 2."""
    rng = np.random.default_rng(3)
    lengths = np.array([0.5, 1.0, 2.0])
    genome = _Genome.draw(rng, 3000, lengths)
    pat, mat = _labelled_parent(3000)
    n_gametes = 4000
    gam = _meiosis(rng, pat, mat, np.zeros(n_gametes, int), genome)
    for c, L in enumerate(lengths):
        cols = np.arange(genome.start[c], genome.end[c])
        d = np.diff(genome.position_M[cols])
        switches = np.sum(gam[:, cols[1:]] != gam[:, cols[:-1]], axis=1)
        expected = np.sum((1 - np.exp(-2 * d)) / 2)
        assert expected == pytest.approx(L, rel=0.01)  # dense loci: nearly every crossover shows
        se = np.sqrt(expected / n_gametes)
        assert abs(switches.mean() - expected) < 4 * se
        # Poisson: variance = mean; the SE of a sample variance is about mean * sqrt(2 / n) here
        assert switches.var(ddof=1) == pytest.approx(switches.mean(), rel=4 * np.sqrt(
            (2 + 1 / expected) / n_gametes))
        # recombination fraction between the first locus and loci along the chromosome
        for k in (len(cols) // 10, len(cols) // 2, len(cols) - 1):
            dist = genome.position_M[cols[k]] - genome.position_M[cols[0]]
            r = np.mean(gam[:, cols[k]] != gam[:, cols[0]])
            haldane = (1 - np.exp(-2 * dist)) / 2
            assert abs(r - haldane) < 4 * np.sqrt(haldane * (1 - haldane) / n_gametes)


def test_meiosis_chromosomes_assort_independently():
    """The haplotype a gamete carries at the start of each chromosome is a fair coin,
    independent between chromosomes: correlations within 4 / sqrt(n) of 0."""
    rng = np.random.default_rng(5)
    genome = _Genome.draw(rng, 600, np.ones(6))
    pat, mat = _labelled_parent(600)
    n_gametes = 5000
    first = _meiosis(rng, pat, mat, np.zeros(n_gametes, int), genome)[:, genome.start]
    assert np.all(np.abs(first.mean(axis=0) - 0.5) < 4 * 0.5 / np.sqrt(n_gametes))
    r = np.corrcoef(first.T.astype(float))[np.triu_indices(6, 1)]
    assert np.all(np.abs(r) < 4 / np.sqrt(n_gametes))


def test_genome_length_and_marker_density():
    """genome_length_M splits the genome equally; with unequal chromosome_cM each chromosome's
    share of markers is its share of the length (binomial, 4 SD), positions inside it."""
    pop = lmmbook.simulate_population(0, 40, 2, n_snp=600, n_chromosomes=30,
                                      genome_length_M=24.0, n_qtl=5, seed=1)
    np.testing.assert_allclose(pop.chromosome_cM, 80.0)
    assert pop.genome_length_M == pytest.approx(24.0)
    assert set(pop.snp_chromosome.tolist()) <= set(range(1, 31))
    lengths = np.array([50.0, 100.0, 250.0])
    pop = lmmbook.simulate_population(0, 40, 2, n_snp=3000, n_chromosomes=3,
                                      chromosome_cM=lengths, n_qtl=5, seed=2)
    counts = np.bincount(pop.snp_chromosome, minlength=4)[1:]
    share = lengths / lengths.sum()
    assert np.all(np.abs(counts - 3000 * share) < 4 * np.sqrt(3000 * share * (1 - share)))
    for c, L in enumerate(lengths, start=1):
        pos = pop.snp_position_cM[pop.snp_chromosome == c]
        assert pos.min() >= 0 and pos.max() <= L and np.all(np.diff(pos) > 0)


def test_linkage_disequilibrium_decays_with_distance_and_stops_at_the_chromosome():
    """In the founders (Ne = 50, 50 generations of history): r^2 falls with distance along a
    chromosome; between chromosomes it is Hill's (1981) 1 / (3 Ne) + 1 / n for unlinked loci
    (drift and sampling only; within 20 %, about 5 SE of the mean over these pairs)."""
    Ne, n = 50, 400
    pop = lmmbook.simulate_population(0, n, 5, n_snp=1500, n_chromosomes=10, n_qtl=10, Ne=Ne,
                                      historical_generations=50, seed=0)
    X, chrom, pos = pop.genotypes, pop.snp_chromosome, pop.snp_position_cM
    p = X.mean(axis=0) / 2
    keep = (p > 0.05) & (p < 0.95)
    X, chrom, pos = X[:, keep], chrom[keep], pos[keep]
    iu = np.triu_indices(X.shape[1], 1)
    r2 = (np.corrcoef(X.T) ** 2)[iu]
    same = (chrom[:, None] == chrom[None, :])[iu]
    d = np.abs(pos[:, None] - pos[None, :])[iu]
    by_distance = [r2[same & (d >= a) & (d < b)].mean()
                   for a, b in ((0, 2), (2, 5), (5, 10), (10, 30), (30, 100))]
    assert np.all(np.diff(by_distance) < 0), by_distance
    across = r2[~same].mean()
    assert across == pytest.approx(1 / (3 * Ne) + 1 / n, rel=0.2)
    assert by_distance[0] > 10 * across


def test_mendelian_inheritance_three_ways():
    """(1) every offspring genotype can be formed from one allele of each parent, at markers and
    QTL; (2) offspring of a heterozygous and a homozygous parent are heterozygous half the time
    (binomial, 4 SD); (3) the true breeding value is the parent average plus Mendelian sampling
    of mean 0 and variance about sigma2_a / 2 (within 25 %: the base is not the mean)."""
    pop = lmmbook.simulate_population(3, 300, 10, n_snp=500, n_chromosomes=10, n_qtl=50,
                                      qtl_on_chip=False, selection="ebv", seed=8)
    ped = pop.pedigree
    row = pd.Series(np.arange(len(pop.ids)), index=pop.ids)
    kids = ped["generation"].to_numpy() > 0
    s = row[ped["sire"].to_numpy()[kids]].to_numpy()
    d = row[ped["dam"].to_numpy()[kids]].to_numpy()
    for M in (pop.genotypes, pop.qtl_genotypes):
        child = M[kids]
        lowest = (M[s] == 2).astype(int) + (M[d] == 2).astype(int)
        highest = (M[s] > 0).astype(int) + (M[d] > 0).astype(int)
        assert np.all(child >= lowest) and np.all(child <= highest)
    M = pop.genotypes
    het_hom = (M[s] == 1) & (M[d] == 0)
    k = het_hom.sum()
    assert abs((M[kids][het_hom] == 1).mean() - 0.5) < 4 * 0.5 / np.sqrt(k)
    tbv = pop.tbv.to_numpy()
    ms = tbv[kids] - 0.5 * (tbv[s] + tbv[d])
    assert abs(ms.mean()) < 4 * np.sqrt(pop.sigma2_a / 2 / kids.sum())
    assert ms.var() == pytest.approx(pop.sigma2_a / 2, rel=0.25)


def test_qtl_off_the_chip():
    """With qtl_on_chip=False no QTL sits at a marker's position, the panel flags none, and the
    true breeding values are still the centred QTL genotypes times their effects; with True the
    QTL genotypes are columns of the panel."""
    pop = lmmbook.simulate_population(2, 80, 5, n_snp=400, n_chromosomes=10, n_qtl=40,
                                      qtl_on_chip=False, seed=3)
    assert not pop.snp_map["qtl"].any() and not pop.qtl_map["on_chip"].any()
    assert pop.genotypes.shape == (240, 400) and pop.qtl_genotypes.shape == (240, 40)
    marker_sites = set(zip(pop.snp_chromosome, pop.snp_position_cM, strict=True))
    q = pop.qtl_map
    qtl_sites = set(zip(q["chromosome"], q["position_cM"], strict=True))
    assert len(qtl_sites) == 40 and not marker_sites & qtl_sites
    assert not set(pop.qtl_effects.index) & set(pop.snp_names)
    tbv = (pop.qtl_genotypes - 2 * q["base_freq"].to_numpy()) @ q["effect"].to_numpy()
    np.testing.assert_allclose(pop.tbv.to_numpy(), tbv)
    founders = pop.pedigree["generation"].to_numpy() == 0
    assert pop.tbv[founders].var(ddof=0) == pytest.approx(pop.sigma2_a)
    # markers and QTL were drawn among loci segregating in the founders
    assert np.all((pop.base_allele_freq > 0) & (pop.base_allele_freq < 1))
    assert np.all((q["base_freq"] > 0) & (q["base_freq"] < 1))
    on = lmmbook.simulate_population(2, 80, 5, n_snp=400, n_chromosomes=10, n_qtl=40, seed=3)
    at = on.snp_map["qtl"].to_numpy()
    assert at.sum() == 40 and on.qtl_map["on_chip"].all()
    np.testing.assert_array_equal(on.genotypes[:, at], on.qtl_genotypes)
    assert on.qtl_effects.index.tolist() == on.snp_names[at].tolist()


def test_selection_raises_the_mean_breeding_value():
    """Same seed, same founders: truncation on phenotype or on EBV raises the mean TBV in every
    generation, far above random choice of the parents. Expected here: about 0.4 sigma_a per
    generation with selection (10 % of the males; i = 1.75 on sires only), while random choice
    drifts the mean by sigma_a sqrt(t (1/(4 n_s) + 1/(4 n_d) + 1/(2 n))) ~ 0.25 sigma_a in
    t = 4 generations (the sampling of sires, dams and Mendelian terms)."""
    kw = dict(n_snp=300, n_chromosomes=10, n_qtl=50, h2=0.3, qtl_on_chip=False, seed=4)
    last = {}
    for selection in (None, "phenotype", "ebv"):
        pop = lmmbook.simulate_population(4, 400, 20, selection=selection, **kw)
        generation = pop.pedigree["generation"].to_numpy()
        means = pop.tbv.groupby(generation).mean()
        last[selection] = means.iloc[-1]
        if selection is not None:
            assert np.all(np.diff(means.to_numpy()) > 0), means  # up every generation
        summary = pop.selection_summary
        assert summary.index.tolist() == [1, 2, 3, 4]
        assert (summary["sires"] == 20).all() and (summary["dam_proportion"] == 1).all()
        np.testing.assert_allclose(summary["sire_proportion"],
                                   20 / summary["male_candidates"])
        np.testing.assert_allclose(summary["mean_tbv"], means.iloc[1:].to_numpy())
    sigma_a = np.sqrt(0.3)
    drift_sd = sigma_a * np.sqrt(4 * (1 / 80 + 1 / 800 + 1 / 800))
    assert abs(last[None]) < 4 * drift_sd
    assert last["phenotype"] - last[None] > 4 * drift_sd
    assert last["ebv"] - last[None] > 4 * drift_sd


def test_truncation_picks_the_best_candidates_and_each_dam_has_one_mate():
    pop = lmmbook.simulate_population(3, 150, 6, n_dams=40, n_snp=200, n_chromosomes=5,
                                      n_qtl=20, selection="phenotype", overlapping=2, seed=6)
    crit = pop.selection_criteria
    ped = pop.pedigree.set_index("animal")
    y = pop.phenotypes["y"]
    for t, part in crit.groupby("generation"):
        # candidates: the animals of the `overlapping` generations before t, with their records
        assert set(ped.loc[part["animal"], "generation"]) == set(range(max(0, t - 2), t))
        np.testing.assert_allclose(part["criterion"], y[part["animal"]].to_numpy())
        for sex, k in (("M", 6), ("F", 40)):
            one = part[part["sex"] == sex]
            chosen = one.loc[one["selected"], "animal"]
            assert len(chosen) == k
            assert one.loc[one["selected"], "criterion"].min() >= one.loc[
                ~one["selected"], "criterion"].max()
        born = ped[ped["generation"] == t]
        assert set(born["sire"]) <= set(part.loc[part["selected"] & (part["sex"] == "M"),
                                                 "animal"])
        assert set(born["dam"]) <= set(part.loc[part["selected"] & (part["sex"] == "F"),
                                                "animal"])
        assert (born.groupby("dam")["sire"].nunique() == 1).all()  # one mate per dam
        per_dam = born.groupby("dam").size()
        assert per_dam.max() - per_dam.min() <= 1 and len(per_dam) == 40  # spread evenly


def test_ebv_selection_uses_pedigree_blup():
    """The EBVs the simulator selected on equal BLUP from the dense V form (GLS with V^-1 and
    the tabular A) on the records known at that time, with the true variances."""
    pop = lmmbook.simulate_population(3, 40, 4, n_snp=100, n_chromosomes=4, n_qtl=10, n_herds=3,
                                      h2=0.35, selection="ebv", seed=9)
    ped = pop.pedigree
    generation = ped["generation"].to_numpy()
    for t in (1, 3):
        known = generation < t
        sire = ped["sire"].to_numpy()[known]
        dam = ped["dam"].to_numpy()[known]
        A = tabular_A(sire, dam)
        phen = pop.phenotypes[known]
        herds = sorted(phen["herd"].unique())
        X = np.column_stack([np.ones(known.sum()), (phen["sex"] == "M").to_numpy(float)]
                            + [(phen["herd"] == h).to_numpy(float) for h in herds[1:]])
        _, u, _ = gls_blup(phen["y"].to_numpy(), X, np.eye(known.sum()), A, pop.sigma2_a,
                           pop.sigma2_e)
        part = pop.selection_criteria[pop.selection_criteria["generation"] == t]
        # candidates are animals 1..known.sum() in birth order, the rows of A
        np.testing.assert_allclose(part["criterion"].to_numpy(), u[part["animal"] - 1],
                                   atol=1e-8)


def test_population_reproducible_for_a_seed():
    kw = dict(n_snp=200, n_chromosomes=6, n_qtl=15, qtl_on_chip=False, selection="ebv")
    a = lmmbook.simulate_population(2, 60, 5, seed=12, **kw)
    b = lmmbook.simulate_population(2, 60, 5, seed=12, **kw)
    c = lmmbook.simulate_population(2, 60, 5, seed=13, **kw)
    np.testing.assert_array_equal(a.genotypes, b.genotypes)
    np.testing.assert_array_equal(a.qtl_genotypes, b.qtl_genotypes)
    for field in ("pedigree", "snp_map", "qtl_map", "phenotypes", "selection_summary",
                  "selection_criteria"):
        assert getattr(a, field).equals(getattr(b, field)), field
    assert not np.array_equal(a.genotypes, c.genotypes)
    # missing calls are drawn last: the same genomes with and without them
    m = lmmbook.simulate_population(2, 60, 5, seed=12, missing_rate=0.1, **kw)
    seen = ~np.isnan(m.genotypes)
    np.testing.assert_array_equal(m.genotypes[seen], a.genotypes[seen])
    assert m.pedigree.equals(a.pedigree)


def test_animals_frame_and_old_names():
    pop = lmmbook.simulate_population(1, 30, 3, n_snp=50, n_qtl=5, historical_size=40, seed=1)
    assert pop.Ne == 40 and pop.selection is None
    frame = pop.animals
    assert frame.columns.tolist() == ["sire", "dam", "sex", "generation", "herd", "y", "tbv"]
    assert frame.index.tolist() == pop.ids.tolist()
    assert np.isnan(pop.selection_criteria["criterion"]).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(chromosome_cM=50.0, genome_length_M=10.0), "either chromosome_cM"),
    (dict(genome_length_M=-1.0), "genome_length_M must be positive"),
    (dict(n_chromosomes=3, chromosome_cM=[50.0, 60.0]), "one length or 3 lengths"),
    (dict(chromosome_cM=0.0), "lengths must be positive"),
    (dict(n_chromosomes=0), "n_chromosomes must be at least 1"),
    (dict(selection="blup"), "selection must be None"),
    (dict(Ne=50, historical_size=60), "name the same size"),
    (dict(Ne=1), "need Ne >= 2"),
    (dict(n_dams=0), "n_dams must be at least 1"),
    (dict(n_herds=0), "n_herds must be at least 1"),
    (dict(n_snp=10, n_qtl=20), "n_qtl <= n_snp"),
    (dict(Ne=2, historical_generations=60), "below 6 Ne = 12"),
    (dict(Ne=2, historical_generations=8), "loci segregate in the founders"),
    (dict(selection="phenotype", phenotyped_generations=[0, 2]), "needs a record on every"),
    (dict(selection="ebv", phenotyped_generations=[2]), "no record to predict from"),
    (dict(overlapping=0), "overlapping >= 1"),
])
def test_population_argument_errors(kwargs, message):
    base = dict(n_generations=3, n_per_generation=40, n_sires=4, n_snp=100, n_qtl=10)
    with pytest.raises(InputError, match=message):
        lmmbook.simulate_population(**{**base, **kwargs}, seed=0)


def test_population_without_males_to_breed_from():
    # two founders of one sex: the first seed (of 0, 1, ...) where both are female or both male
    seed = next(s for s in range(50) if lmmbook.simulate_population(
        0, 2, 1, n_snp=20, n_qtl=2, seed=s).pedigree["sex"].nunique() == 1)
    with pytest.raises(InputError, match="has no (males|females) among its candidates"):
        lmmbook.simulate_population(1, 2, 1, n_snp=20, n_qtl=2, seed=seed)
