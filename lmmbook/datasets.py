"""Small published data sets, typed once from their source, for the chapters and the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["dyestuff", "mrode_example_3_1"]


def mrode_example_3_1() -> pd.DataFrame:
    """Pre-weaning gain of eight beef calves: Mrode's Example 3.1 (animal model BLUP).

    Returns
    -------
    pandas.DataFrame
        One row per animal, indexed by ``animal`` (1..8), with ``sire`` and ``dam`` (0 = unknown),
        ``sex`` ("male"/"female", missing for the three founders without a record) and ``y``, the
        weaning weight gain in kg (NaN for animals without a record).

    Notes
    -----
    Mrode, *Linear Models for the Prediction of Animal Breeding Values*, Example 3.1, analysed
    with sigma2_a = 20 and sigma2_e = 40. No animal is inbred.

    Examples
    --------
    >>> from lmmbook.datasets import mrode_example_3_1
    >>> df = mrode_example_3_1()
    >>> df.loc[7, ["sire", "dam"]].astype(int).tolist(), float(df.loc[7, "y"])
    ([4, 5], 3.5)
    >>> int(df["y"].notna().sum())
    5
    """
    return pd.DataFrame(
        {
            "animal": np.arange(1, 9),
            "sire": [0, 0, 0, 1, 3, 1, 4, 3],
            "dam": [0, 0, 0, 0, 2, 2, 5, 6],
            "sex": [None, None, None, "male", "female", "female", "male", "male"],
            "y": [np.nan, np.nan, np.nan, 4.5, 2.9, 3.9, 3.5, 5.0],
        }
    ).set_index("animal")


def dyestuff() -> pd.DataFrame:
    """Yield of dyestuff from five samples of each of six batches of an intermediate product.

    Returns
    -------
    pandas.DataFrame
        30 rows with ``batch`` ("A".."F") and ``yield_`` (grams of standard colour; the trailing
        underscore keeps clear of Python's keyword).

    Notes
    -----
    Davies (1947), *Statistical Methods in Research and Production*, distributed as ``Dyestuff``
    with R's lme4, whose REML fit of ``Yield ~ 1 + (1 | Batch)`` is the classic first example of a
    mixed model: batch variance 1764, residual variance 2451 (printed rounded), intercept 1527.50
    (standard error 19.38), REML criterion 319.7. The design is balanced, so REML equals the
    ANOVA estimates: sigma2_e = 58830 / 24 = 2451.25 and sigma2_batch = (MS_batch - MS_e) / 5 =
    1764.05.

    Examples
    --------
    >>> from lmmbook.datasets import dyestuff
    >>> d = dyestuff()
    >>> d.groupby("batch")["yield_"].mean().tolist()
    [1505.0, 1528.0, 1564.0, 1498.0, 1600.0, 1470.0]
    """
    yields = [
        1545, 1440, 1440, 1520, 1580,
        1540, 1555, 1490, 1560, 1495,
        1595, 1550, 1605, 1510, 1560,
        1445, 1440, 1595, 1465, 1545,
        1595, 1630, 1515, 1635, 1625,
        1520, 1455, 1450, 1480, 1445,
    ]
    return pd.DataFrame({"batch": np.repeat(list("ABCDEF"), 5), "yield_": np.array(yields, float)})
