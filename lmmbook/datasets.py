"""Small published data sets, typed once from their source, for the chapters and the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["mrode_example_3_1"]


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
    >>> df.loc[7, ["sire", "dam"]].tolist(), float(df.loc[7, "y"])
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
