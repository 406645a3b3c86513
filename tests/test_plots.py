import matplotlib

matplotlib.use("Agg")  # no display: draw into memory

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import lmmbook  # noqa: E402
from lmmbook.errors import InputError  # noqa: E402
from lmmbook.readers import GenotypeData  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def scan(seed=0):
    """p-values on three chromosomes of 50, 30 and 20 markers with different lengths in bp, two
    of them untested (NaN)."""
    rng = np.random.default_rng(seed)
    sizes, lengths = [50, 30, 20], [3e6, 2e6, 1e6]
    chromosome = np.repeat(["1", "2", "X"], sizes)
    position = np.concatenate([np.sort(rng.integers(1, n_bp, n)) for n, n_bp in
                               zip(sizes, lengths, strict=True)])
    p = rng.uniform(size=100)
    p[[3, 60]] = np.nan
    p[10] = 1e-9
    return pd.DataFrame({"chromosome": chromosome, "position": position, "p": p},
                        index=pd.Index([f"s{k}" for k in range(100)], name="snp"))


def test_manhattan_artists():
    frame = scan()
    fig = lmmbook.manhattan_plot(frame, colors=("tab:blue", "tab:orange"))
    assert isinstance(fig, matplotlib.figure.Figure)
    (ax,) = fig.axes
    assert len(ax.collections) == 3  # one scatter per chromosome
    colours = [mcolors.to_hex(c.get_facecolor()[0]) for c in ax.collections]
    blue, orange = mcolors.to_hex("tab:blue"), mcolors.to_hex("tab:orange")
    assert colours == [blue, orange, blue]  # alternating
    # positions cumulated: chromosome k starts where the last marker of k - 1 is
    offset = 0.0
    centres = []
    for k, name in enumerate(["1", "2", "X"]):
        rows = frame[frame["chromosome"] == name]
        tested = rows["p"].notna().to_numpy()
        xy = ax.collections[k].get_offsets()
        np.testing.assert_allclose(xy[:, 0], offset + rows["position"].to_numpy()[tested])
        np.testing.assert_allclose(xy[:, 1], -np.log10(rows["p"].to_numpy()[tested]))
        centres.append(offset + (rows["position"].min() + rows["position"].max()) / 2)
        offset += rows["position"].max()
    assert sum(len(c.get_offsets()) for c in ax.collections) == 98  # NaN not drawn
    np.testing.assert_allclose(ax.get_xticks(), centres)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "X"]
    assert ax.get_xlim() == (0.0, offset)
    # Bonferroni's line at -log10(0.05 / m), m = the 98 markers tested
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), -np.log10(0.05 / 98))
    assert line.get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Bonferroni: p = 0.05 / 98"]
    assert ax.get_ylim()[1] >= -np.log10(1e-9)  # the highest point is inside


def test_manhattan_thresholds_and_inputs():
    frame = scan(1)
    ax = lmmbook.manhattan_plot(frame, threshold=1e-5).axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 5.0)
    assert ax.get_legend().get_texts()[0].get_text() == "p = 1e-05"
    ax = lmmbook.manhattan_plot(frame, level=0.01).axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), -np.log10(0.01 / 98))
    ax = lmmbook.manhattan_plot(frame, level=None).axes[0]
    assert ax.get_lines() == [] and ax.get_legend() is None
    # onto a given Axes: the figure returned is that Axes' figure
    fig, given = plt.subplots()
    assert lmmbook.manhattan_plot(frame, ax=given) is fig
    assert len(given.collections) == 3
    # without a map: one chromosome, the markers' ranks along x
    ax = lmmbook.manhattan_plot(frame[["p"]]).axes[0]
    assert len(ax.collections) == 1
    xy = ax.collections[0].get_offsets()
    np.testing.assert_allclose(xy[:, 0], np.flatnonzero(frame["p"].notna()) + 1)
    assert ax.get_xlabel() == "marker"
    # positions all 0 (a map that does not say): ranks within each chromosome
    ax = lmmbook.manhattan_plot(frame.assign(position=0)).axes[0]
    np.testing.assert_allclose(ax.collections[1].get_offsets()[:, 0],
                               50 + np.flatnonzero(frame["p"].to_numpy()[50:80] >= 0) + 1)


def test_manhattan_and_qq_of_a_gwas():
    rng = np.random.default_rng(3)
    M = rng.binomial(2, 0.4, size=(40, 30)).astype(float)
    snps = pd.DataFrame({"chromosome": ["1"] * 10 + ["2"] * 20,
                         "name": [f"s{k}" for k in range(30)], "cM": 0.0,
                         "position": np.r_[np.arange(10), np.arange(20)] * 10_000,
                         "A1": "A", "A2": "G"})
    data = GenotypeData(M=M, ids=np.array([f"i{i}" for i in range(40)]), snps=snps)
    y = M[:, 5] + rng.normal(size=40)
    fit = lmmbook.gblup(y, np.ones((40, 1)), lmmbook.genomic_relationship(M))
    res = lmmbook.gwas(fit, data, window=5)
    for results in (res, res.snps):
        ax = lmmbook.manhattan_plot(results).axes[0]
        assert len(ax.collections) == 2
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
        ax = lmmbook.qq_plot(results).axes[0]
        assert len(ax.collections[0].get_offsets()) == 30
    assert lmmbook.genomic_inflation(res) == lmmbook.genomic_inflation(res.snps["p"])


def test_qq_artists():
    p = scan(2)["p"]
    m = int(p.notna().sum())
    fig = lmmbook.qq_plot(p)
    (ax,) = fig.axes
    points, band = ax.collections
    xy = points.get_offsets()
    rank = np.arange(1, m + 1)
    np.testing.assert_allclose(xy[:, 0], -np.log10(rank / (m + 1)))
    np.testing.assert_allclose(xy[:, 1], -np.log10(np.sort(p.dropna())))
    (diagonal,) = ax.get_lines()
    top = -np.log10(1 / (m + 1))
    np.testing.assert_allclose(diagonal.get_xdata(), [0, top])
    np.testing.assert_allclose(diagonal.get_ydata(), [0, top])
    # the band: Beta(i, m + 1 - i) quantiles, in closed form at the two ends: the smallest p
    # is Beta(1, m), F^-1(q) = 1 - (1 - q)^(1/m); the largest Beta(m, 1), F^-1(q) = q^(1/m)
    y = band.get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(y.max(), -np.log10(1 - 0.975 ** (1 / m)), rtol=1e-10)
    np.testing.assert_allclose(y.min(), -np.log10(0.975 ** (1 / m)), rtol=1e-10)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    lam = lmmbook.genomic_inflation(p)
    assert texts == [rf"observed, $\lambda_{{GC}}$ = {lam:.3f}", "expected (p uniform)",
                     "95 % pointwise band"]
    # no band; another coverage
    ax = lmmbook.qq_plot(p, band=None).axes[0]
    assert len(ax.collections) == 1 and len(ax.get_legend().get_texts()) == 2
    ax = lmmbook.qq_plot(p, band=0.9).axes[0]
    y = ax.collections[1].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(y.max(), -np.log10(1 - 0.95 ** (1 / m)), rtol=1e-10)
    assert ax.get_legend().get_texts()[2].get_text() == "90 % pointwise band"


def test_qq_band_covers_its_share_of_null_points():
    """Each point of a null scan falls inside the pointwise 95 % band with probability 0.95:
    over 400 scans of 50 uniform p-values (20,000 points) the share outside was 0.048; the
    binomial SD of that share is 0.0015 (were the points independent), so 0.04-0.06 is about
    6 SDs wide."""
    rng = np.random.default_rng(4)
    ax = lmmbook.qq_plot(rng.uniform(size=50)).axes[0]
    # the band's polygon runs along one edge and back along the other: its vertices, as
    # p-values, are the 2.5 % and 97.5 % quantiles of Beta(i, 51 - i), i = 1..50
    on_plot = 10 ** -ax.collections[1].get_paths()[0].vertices[:, 1]
    rank = np.arange(1, 51)
    low = stats.beta.ppf(0.025, rank, 51 - rank)
    high = stats.beta.ppf(0.975, rank, 51 - rank)
    for limit in (low, high):
        assert np.abs(on_plot[:, None] - limit[None, :]).min(axis=0).max() < 1e-12
    sims = np.sort(rng.uniform(size=(400, 50)), axis=1)
    outside = np.mean((sims < low) | (sims > high))
    assert 0.04 < outside < 0.06


def test_genomic_inflation():
    c = stats.chi2.ppf(0.5, 1)
    assert lmmbook.plots.CHI2_1_MEDIAN == pytest.approx(0.454936423119572, abs=1e-15)
    assert c == pytest.approx(stats.norm.ppf(0.75) ** 2, rel=1e-14)
    # p_i = (i - 1/2) / n with n odd: the median p is exactly 1/2, lambda 1
    n = 10_001
    p = (np.arange(1, n + 1) - 0.5) / n
    assert lmmbook.genomic_inflation(p) == pytest.approx(1.0, abs=1e-12)
    # the same statistics times 1.2: lambda 1.2, whatever order, NaN ignored
    t = 1.2 * stats.chi2.isf(p, 1)
    p_inflated = stats.chi2.sf(t, 1)
    assert lmmbook.genomic_inflation(p_inflated) == pytest.approx(1.2, rel=1e-10)
    shuffled = np.random.default_rng(5).permutation(np.r_[p_inflated, np.nan, np.nan])
    assert lmmbook.genomic_inflation(shuffled) == pytest.approx(1.2, rel=1e-10)
    assert lmmbook.genomic_inflation(pd.DataFrame({"p": p_inflated})) == pytest.approx(1.2,
                                                                                       rel=1e-10)
    # a handful of strong signals do not move the median (their mean would be 2.7)
    strong = p.copy()
    strong[:20] = 1e-30
    assert lmmbook.genomic_inflation(strong) == lmmbook.genomic_inflation(p)
    # uniform p-values: lambda's SD at n = 200,000 is about 2.12 * 0.5 / sqrt(n) / 0.455 =
    # 0.0052 (delta method at the median); 0.02 is about 4 SDs
    u = np.random.default_rng(6).uniform(size=200_000)
    assert abs(lmmbook.genomic_inflation(u) - 1) < 0.02
    # z ~ N(0, 1.1^2): lambda = 1.21 in the limit
    z = 1.1 * np.random.default_rng(7).normal(size=200_000)
    assert lmmbook.genomic_inflation(2 * stats.norm.sf(np.abs(z))) == pytest.approx(1.21,
                                                                                    abs=0.03)


def test_plot_errors():
    frame = scan()
    for bad in ([0.5, -0.1], [0.5, 1.5], [0.2, np.inf]):
        for function in (lmmbook.genomic_inflation, lmmbook.qq_plot):
            with pytest.raises(InputError, match="p-values must lie in \\[0, 1\\].*entry 1"):
                function(bad)
        with pytest.raises(InputError, match="p-values must lie in \\[0, 1\\]"):
            lmmbook.manhattan_plot(pd.DataFrame({"p": bad}))
    with pytest.raises(InputError, match="no p-value \\(all NaN\\)"):
        lmmbook.genomic_inflation([np.nan, np.nan])
    with pytest.raises(InputError, match="one-dimensional"):
        lmmbook.qq_plot(np.full((3, 2), 0.5))
    with pytest.raises(InputError, match="numeric p-values"):
        lmmbook.genomic_inflation(["a", "b"])
    with pytest.raises(InputError, match="has no column 'p'"):
        lmmbook.manhattan_plot(frame.rename(columns={"p": "pvalue"}))
    with pytest.raises(InputError, match="a DataFrame with a column 'p'"):
        lmmbook.manhattan_plot(frame["p"].to_numpy())
    for bad in (0.0, 1.0, 2.0):
        with pytest.raises(InputError, match="threshold is a p-value in \\(0, 1\\)"):
            lmmbook.manhattan_plot(frame, threshold=bad)
        with pytest.raises(InputError, match="level is a genome-wide level in \\(0, 1\\)"):
            lmmbook.manhattan_plot(frame, level=bad)
        with pytest.raises(InputError, match="band is a coverage in \\(0, 1\\)"):
            lmmbook.qq_plot(frame, band=bad)
