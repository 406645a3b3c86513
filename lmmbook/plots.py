"""Figures of a genome-wide scan: the Manhattan plot, the QQ plot and the genomic inflation factor.

The plotting functions draw on a matplotlib Axes (a new figure through pyplot when none is given)
and return the Figure; matplotlib is imported when one is first called, not with lmmbook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError
from .gwas import GWASResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["manhattan_plot", "qq_plot", "genomic_inflation", "CHI2_1_MEDIAN"]

#: The median of the chi-square distribution with one degree of freedom, (Phi^-1(3/4))^2 =
#: 0.454936423119572..., the denominator of the genomic inflation factor.
CHI2_1_MEDIAN = float(stats.chi2.ppf(0.5, 1))

# -log10 p of p = 0 (a p-value that underflowed): that of the smallest positive double, 307.65
_TINY = np.finfo(float).tiny


def _p_values(p: Any) -> np.ndarray:
    """p-values as a float array, NaN kept (an untested marker); refuses values outside [0, 1]."""
    if isinstance(p, GWASResult):
        p = p.snps
    if isinstance(p, pd.DataFrame):
        if "p" not in p.columns:
            raise InputError("the frame has no column 'p': pass lmmbook.gwas's result or its "
                             "p-values.")
        p = p["p"]
    try:
        values = np.asarray(p, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"p must hold numeric p-values: {exc}") from None
    if values.ndim != 1:
        raise InputError(f"p must be one-dimensional (one p-value per marker), got shape "
                         f"{values.shape}.")
    bad = ~np.isnan(values) & ~((values >= 0) & (values <= 1))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"p-values must lie in [0, 1] (NaN for a marker not tested); entry {k} "
                         f"is {float(values[k])!r} ({int(bad.sum())} such value(s) in all).")
    if np.isnan(values).all():
        raise InputError("p holds no p-value (all NaN).")
    return values


def _neg_log10(p: np.ndarray) -> np.ndarray:
    return -np.log10(np.maximum(p, _TINY))


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def genomic_inflation(p: Any) -> float:
    """The genomic inflation factor lambda_GC of a scan: the median of the one-degree-of-freedom
    chi-square statistics that the p-values stand for, over the chi-square's median.

    Parameters
    ----------
    p : (m,) array_like, pandas.DataFrame or GWASResult
        Two-sided p-values (NaN, an untested marker, is left out), or :func:`lmmbook.gwas`'s
        result (its column ``p``).

    Returns
    -------
    float
        median_k(F^-1(1 - p_k)) / 0.454936423119572..., with F the chi-square distribution with
        one degree of freedom and 0.45494 = (Phi^-1(3/4))^2 its median (``CHI2_1_MEDIAN``).
        1 when the p-values are uniform (the median p is 1/2), above 1 when the statistics are
        inflated.

    Raises
    ------
    InputError
        A p-value outside [0, 1], or none at all.

    Notes
    -----
    Devlin & Roeder (1999, Biometrics 55:997), genomic control. A two-sided normal p-value is
    that of z^2 on chi-square(1), so lambda_GC = median(z_k^2) / 0.45494. Under polygenic
    inheritance many markers carry a little signal, and lambda_GC > 1 is expected without any
    stratification (Yang et al. 2011, Eur. J. Hum. Genet. 19:807); the median is robust to the
    few markers near large QTL.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> round(genomic_inflation([0.2, 0.5, 0.9]), 12)  # the median p is 1/2
    1.0
    >>> z = np.array([0.5, 2 * 0.6744897501960817, 3.0])  # median |z| twice Phi^-1(3/4)
    >>> round(genomic_inflation(2 * stats.norm.sf(z)), 12)
    4.0
    """
    values = _p_values(p)
    chi2 = stats.chi2.isf(values[~np.isnan(values)], 1)  # isf: exact also for tiny p
    return float(np.median(chi2) / CHI2_1_MEDIAN)


def manhattan_plot(
    results: Any,
    *,
    threshold: float | None = None,
    level: float | None = 0.05,
    ax: Axes | None = None,
    colors: tuple[str, ...] = ("tab:blue", "tab:gray"),
    s: float = 8.0,
    figsize: tuple[float, float] = (10.0, 3.5),
) -> Figure:
    """-log10 p of every marker along the genome, chromosomes in alternating colours, with a
    significance line.

    Parameters
    ----------
    results : pandas.DataFrame or GWASResult
        :func:`lmmbook.gwas`'s frame of markers (or its result with windows): the column ``p``,
        and ``chromosome`` and ``position`` when the genotypes carried a map. Without
        ``chromosome`` the markers are one chromosome; without positions (or with all 0) a
        marker's place on its chromosome is its rank there.
    threshold : float, optional
        The p-value of the line. By default Bonferroni's, ``level`` / m with m the markers
        tested (those with a p-value).
    level : float or None, optional
        The genome-wide level of the Bonferroni line (0.05); None, with no ``threshold``, draws
        no line.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure of size ``figsize``.
    colors : tuple of str, optional
        The colours the chromosomes take in turn.
    s : float, optional
        Marker size (points^2).

    Returns
    -------
    matplotlib.figure.Figure
        One scatter collection per chromosome, in the order the chromosomes first appear; the
        x axis runs over the chromosomes one after another (position + the summed lengths of the
        chromosomes before, a chromosome's length being its last position), with a tick
        labelled by the chromosome at its centre; the line a dashed horizontal at
        -log10(threshold), labelled in the legend. A p-value of 0 (one that underflowed) is
        drawn at -log10 of the smallest positive double, 307.65.

    Raises
    ------
    InputError
        ``results`` has no column ``p``, or a p-value outside [0, 1]; ``threshold`` or
        ``level`` outside (0, 1).

    Examples
    --------
    >>> import numpy as np, pandas as pd, lmmbook
    >>> rng = np.random.default_rng(1)
    >>> frame = pd.DataFrame({"chromosome": np.repeat(["1", "2", "3"], 100),
    ...                       "position": np.tile(np.arange(100) * 10_000, 3),
    ...                       "p": rng.uniform(size=300)})
    >>> fig = lmmbook.manhattan_plot(frame)
    >>> ax = fig.axes[0]
    >>> len(ax.collections), [t.get_text() for t in ax.get_xticklabels()]
    (3, ['1', '2', '3'])
    >>> round(float(ax.get_lines()[0].get_ydata()[0]), 4)  # -log10(0.05 / 300)
    3.7782
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    frame = results.snps if isinstance(results, GWASResult) else results
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"results must be lmmbook.gwas's result (a DataFrame with a column "
                         f"'p'), got {type(results).__name__}.")
    p = _p_values(frame)
    m = int(np.count_nonzero(~np.isnan(p)))
    line = _threshold(threshold, level, m)
    chrom = (frame["chromosome"].to_numpy() if "chromosome" in frame.columns
             else np.zeros(len(frame), dtype=int))
    position = None
    if "position" in frame.columns:
        position = pd.to_numeric(frame["position"], errors="coerce").to_numpy(dtype=float)
        if not np.any(position != 0) or not np.all(np.isfinite(position)):
            position = None
    ax = _axes(ax, figsize)
    heights = _neg_log10(p[~np.isnan(p)])
    offset, ticks, labels = 0.0, [], []
    for k, name in enumerate(pd.unique(chrom)):
        rows = np.flatnonzero(chrom == name)
        x = position[rows] if position is not None else np.arange(1.0, len(rows) + 1)
        tested = ~np.isnan(p[rows])
        ax.scatter(offset + x[tested], _neg_log10(p[rows][tested]), s=s,
                   color=colors[k % len(colors)], linewidths=0)
        ticks.append(offset + (x.min() + x.max()) / 2)
        labels.append(str(name))
        offset += x.max()
    if "chromosome" in frame.columns:
        ax.set_xticks(ticks, labels)
        ax.set_xlabel("chromosome")
    else:
        ax.set_xlabel("position (bp)" if position is not None else "marker")
    ax.set_xlim(0, offset)
    ax.set_ylabel(r"$-\log_{10} p$")
    if line is not None:
        value, label = line
        ax.axhline(-np.log10(value), color="tab:red", ls="--", lw=1, label=label)
        ax.legend(loc="upper right", fontsize=9)
    # room above the highest point (or the line) for the legend
    top = max(heights.max(), -np.log10(line[0]) if line is not None else 0.0)
    ax.set_ylim(0, 1.2 * top if top > 0 else 1.0)
    return ax.figure


def _threshold(threshold: float | None, level: float | None, m: int):
    """(p-value, legend label) of the significance line, or None."""
    if threshold is not None:
        if not 0 < threshold < 1:
            raise InputError(f"threshold is a p-value in (0, 1), got {threshold!r}.")
        return float(threshold), f"p = {threshold:.3g}"
    if level is None:
        return None
    if not 0 < level < 1:
        raise InputError(f"level is a genome-wide level in (0, 1) (e.g. 0.05), got {level!r}.")
    return level / m, f"Bonferroni: p = {level:g} / {m}"


def qq_plot(
    p: Any,
    *,
    ax: Axes | None = None,
    band: float | None = 0.95,
    s: float = 8.0,
    figsize: tuple[float, float] = (4.5, 4.5),
) -> Figure:
    """Observed against expected -log10 p, with the diagonal, a pointwise band and lambda_GC.

    Parameters
    ----------
    p : (m,) array_like, pandas.DataFrame or GWASResult
        p-values (NaN, an untested marker, is left out), or :func:`lmmbook.gwas`'s result.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default a new figure of size ``figsize``.
    band : float or None, optional
        Coverage of the pointwise band around the diagonal (0.95); None draws none.
    s : float, optional
        Marker size (points^2).

    Returns
    -------
    matplotlib.figure.Figure
        One scatter collection of the m sorted p-values: the i-th smallest, p_(i), at x =
        -log10(i / (m + 1)), its expectation under the null, and y = -log10 p_(i); the diagonal
        y = x (a line); the band (a filled area) between -log10 of the (1 - band)/2 and
        (1 + band)/2 quantiles of Beta(i, m + 1 - i), the distribution of p_(i) when the m
        p-values are independent and uniform; a legend that gives lambda_GC
        (:func:`genomic_inflation`). The band is pointwise: about 5 % of a null scan's points
        fall outside a 95 % band, and neighbouring markers in LD leave it together.

    Raises
    ------
    InputError
        A p-value outside [0, 1], or none at all; ``band`` outside (0, 1).

    Examples
    --------
    >>> import numpy as np, lmmbook
    >>> fig = lmmbook.qq_plot(np.random.default_rng(1).uniform(size=2000))
    >>> ax = fig.axes[0]
    >>> len(ax.collections), len(ax.get_lines())  # the points and the band; the diagonal
    (2, 1)
    >>> print(ax.get_legend().get_texts()[0].get_text())
    observed, $\\lambda_{GC}$ = 1.006
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    values = _p_values(p)
    values = np.sort(values[~np.isnan(values)])
    if band is not None and not 0 < band < 1:
        raise InputError(f"band is a coverage in (0, 1) (e.g. 0.95), got {band!r}.")
    m = len(values)
    rank = np.arange(1, m + 1)
    expected = -np.log10(rank / (m + 1))
    ax = _axes(ax, figsize)
    lam = genomic_inflation(values)
    points = ax.scatter(expected, _neg_log10(values), s=s, color="tab:blue", linewidths=0,
                        zorder=3)
    top = expected[0]
    (diagonal,) = ax.plot([0, top], [0, top], color="0.3", lw=1)
    handles = [points, diagonal]
    labels = [rf"observed, $\lambda_{{GC}}$ = {lam:.3f}", "expected (p uniform)"]
    if band is not None:
        lower = stats.beta.ppf((1 + band) / 2, rank, m + 1 - rank)  # larger p: lower -log10 p
        upper = stats.beta.ppf((1 - band) / 2, rank, m + 1 - rank)
        handles.append(ax.fill_between(expected, -np.log10(lower), -np.log10(upper),
                                       color="0.88", lw=0, zorder=1))
        labels.append(f"{100 * band:g} % pointwise band")
    ax.set_xlabel(r"expected $-\log_{10} p$")
    ax.set_ylabel(r"observed $-\log_{10} p$")
    ax.set_xlim(0, 1.02 * top)
    ax.set_ylim(bottom=0)
    ax.legend(handles, labels, loc="upper left", fontsize=9)
    return ax.figure
