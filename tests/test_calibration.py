"""Simulation-based calibration: NUTS's 90% intervals cover the truth about 90% of the time.

Small versions of ``benchmarks/calibration.py`` (>= 200 datasets per law there). Every check is
deterministic under its seed; the tolerances allow for the binomial spread of few datasets.
"""

import numpy as np
import pytest
import scipy.stats

from slaws import calibration


def _check(cal, n_params, pooled_range, per_param_min):
    assert len(cal.coverage) == n_params
    assert (cal.coverage["n"] == cal.n_datasets).all()
    pooled = float(cal.datasets["covered"].mean())
    assert pooled_range[0] <= pooled <= pooled_range[1], cal.coverage
    assert (cal.coverage["coverage"] >= per_param_min).all(), cal.coverage
    # Intervals that cover less than nominal would also push the truth's rank to the edges.
    assert (cal.coverage["rank_uniformity_p"] > 1e-3).all(), cal.coverage
    per_set = cal.datasets.groupby("dataset").first()
    assert (per_set["max_r_hat"] < 1.05).all()
    transitions = cal.n_datasets * 2 * 250
    assert per_set["divergences"].sum() <= 1e-3 * transitions


def test_chinchilla_calibration():
    cal = calibration.calibrate("chinchilla", n_datasets=24, draws=300, warmup=300, batch=8, seed=0)
    # 6 parameters x 24 datasets = 144 intervals: the pooled rate's binomial sd is 2.5%.
    _check(cal, 6, (0.82, 0.97), 0.7)
    assert cal.log_obs.shape == (24, 72)


def test_distillation_calibration():
    cal = calibration.calibrate(
        "distillation", n_datasets=8, draws=250, warmup=250, batch=4, seed=0
    )
    # 10 sites x 8 datasets = 80 intervals: the pooled rate's binomial sd is 3.4%.
    _check(cal, 10, (0.78, 0.99), 0.5)
    assert set(cal.coverage.index) >= {"A_prime", "B_prime", "c0", "c1", "f1", "d1", "sigma"}


def test_chi_square_p_value_matches_scipy():
    counts = np.array([3, 7, 12, 9, 4, 8, 10, 11, 6, 10])
    expected = scipy.stats.chisquare(counts).pvalue
    assert calibration._chi2_uniform_p(counts) == pytest.approx(expected, rel=1e-9)


def test_design_shapes():
    assert list(calibration.design("chinchilla").columns) == ["N", "D"]
    distillation = calibration.design("distillation")
    assert list(distillation.columns) == ["N", "D", "L_T"]
    assert len(distillation) == 690
    assert list(calibration.design("kaplan").columns) == ["N", "D"]
    with pytest.raises(ValueError, match="pass inputs"):
        calibration.design("bnsl")
