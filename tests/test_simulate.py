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
