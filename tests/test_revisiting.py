"""slaws.revisiting reproduces the official M1-M4 estimators of Alabdulmohsin, Neyshabur and Zhai
2022 and their Colab's evaluation on the 92 benchmark curves.

The reference is ``reference_official_m1_m4.csv`` (the official methods/*.py run per curve as
the Colab runs them) and its summary. Every one of the 368 rows must agree within TOLERANCE =
1e-3 absolute on the RMSE of log predictions and on its +- column; in practice they agree to
about 1e-9, and the fitted parameters to about 1e-7 relative, which is checked more loosely.
The table is computed once per module (about 10 s on one core).
"""

import numpy as np
import pandas as pd
import pytest

from slaws import data, datasets, revisiting

TOLERANCE = 1e-3
KEYS = ["domain", "model", "task", "method", "n_train", "n_test"]
PARAMS = ["beta", "c", "err_inf", "gamma", "alpha", "err_0"]


def _read(part=None, **read_csv):
    try:
        datasets.locate("revisiting-scaling", part, download=False)
    except data.DataError as exc:
        pytest.skip(f"revisiting-scaling ({part or 'lang'}) not available: {exc}")
    return datasets.read("revisiting-scaling", part, **read_csv)


@pytest.fixture(scope="module")
def curves():
    lang = _read(dtype={"Model": str})
    vision = _read("vision", dtype={"Model": str})
    return revisiting.curves(lang, vision)


@pytest.fixture(scope="module")
def reference():
    return _read("reference", dtype={"model": str, "task": str})


@pytest.fixture(scope="module")
def ours(curves):
    return revisiting.table(curves)


def test_curves_are_keyed_split_and_deduplicated_like_the_colab(curves, reference):
    assert len(curves) == 92
    assert len({cv.name for cv in curves}) == 92
    domains = pd.Series([cv.domain for cv in curves]).value_counts().to_dict()
    assert domains == {"IC": 72, "BB": 10, "NMT": 5, "LM": 5}
    assert {cv.model for cv in curves if cv.domain == "LM"} == {
        "1.68e+07", "1.34e+08", "2.62e+08", "4.53e+08", "1.07e+09",
    }  # fmt: skip
    for cv in curves:
        assert np.all(np.diff(cv.x_fit) > 0), cv.name  # sorted, one point per x
        assert cv.x_fit.max() < cv.x_test.min(), cv.name  # fit strictly before test
        assert len(cv.y_fit) == len(cv.x_fit) and len(cv.y_test) == len(cv.x_test)
    # Only the fit rows collapse: LM repeats every row four times, and its test rows stay raw.
    assert sum(len(cv.x_test) for cv in curves) == 15_614
    lm = [cv for cv in curves if cv.domain == "LM"]
    assert all(len(np.unique(cv.x_test)) < len(cv.x_test) for cv in lm)
    counts = reference[reference["method"] == "M1"][["n_train", "n_test"]].to_numpy()
    assert np.array_equal(counts, [[len(cv.x_fit), len(cv.x_test)] for cv in curves])


def test_table_reproduces_every_reference_row(ours, reference):
    assert list(ours.columns) == list(reference.columns)
    pd.testing.assert_frame_equal(ours[KEYS], reference[KEYS], check_dtype=False)
    for column in ("extrap_rmse_log", "extrap_se"):
        gap = np.abs(ours[column].to_numpy() - reference[column].to_numpy())
        worst = ours.assign(gap=gap).nlargest(3, "gap")[KEYS[:4] + ["gap"]]
        assert np.all(gap <= TOLERANCE), f"{column} off by more than {TOLERANCE}:\n{worst}"
    # The replay follows the original's path, not just its fixed point, so the parameters
    # agree too (to ~1e-7 relative; e_0 drifts most where alpha has reached 0).
    for column in PARAMS:
        np.testing.assert_allclose(ours[column], reference[column], rtol=1e-4, atol=1e-9)


def test_win_rates_reproduce_the_summary(ours, reference):
    summary = _read("reference_summary")
    for table in (ours, reference):
        rates = revisiting.win_rates(table)
        assert list(rates.columns) == list(summary.columns)
        assert list(rates["domain"]) == ["BB", "IC", "LM", "NMT", "ALL"]
        np.testing.assert_allclose(
            rates.drop(columns="domain").to_numpy(float),
            summary.drop(columns="domain").to_numpy(float),
            rtol=0,
            atol=TOLERANCE,
        )


def test_win_rate_truncates_to_three_decimals_and_splits_ties():
    table = pd.DataFrame(
        {
            "domain": ["X"] * 4 + ["X"] * 4,
            "model": ["a"] * 4 + ["b"] * 4,
            "task": ["t"] * 8,
            "method": list(revisiting.METHODS) * 2,
            # curve a: M2 and M3 tie once truncated; curve b: M4 failed (NaN counts as 1)
            "extrap_rmse_log": [0.02, 0.0101, 0.0109, 0.5, 0.3, 0.2, 0.1, np.nan],
        }
    )
    rates = revisiting.win_rates(table).set_index("domain")
    assert rates.loc["ALL", ["win_M1", "win_M2", "win_M3", "win_M4"]].tolist() == [0, 0.25, 0.75, 0]


def test_score_is_the_colabs_get_error():
    cv = revisiting.Curve("X", "m", "t", np.ones(1), np.ones(1), np.ones(2), np.array([1.0, np.e]))
    rmse, plus_minus = revisiting.score(cv, np.array([np.e, np.e]))  # squared errors 1 and 0
    assert rmse == pytest.approx(np.sqrt(0.5))
    assert plus_minus == pytest.approx(np.sqrt(0.5 + 0.5 / np.sqrt(2)) - np.sqrt(0.5))


def test_m4_prediction_is_the_grid_argmin(curves):
    cv = next(cv for cv in curves if cv.name == "NMT/Dec-only/log_perplexity")
    result = revisiting.fit("M4", cv.x_fit, cv.y_fit, cv.domain)
    p = result.params
    assert result.status == "converged" and p["alpha"] > 1e-5
    x = np.geomspace(cv.x_fit.min(), 100 * cv.x_test.max(), 200)
    b = p["err_0"] - p["err_inf"]
    w = np.linspace(0, b, 10_000)
    expected = [
        w[np.argmin(np.abs(w - f * (b - w) ** p["alpha"]))] + p["err_inf"]
        for f in p["beta"] * x ** p["c"]
    ]  # m4.Estimator.predict_loss, one x at a time
    np.testing.assert_array_equal(result.predict(x), expected)


def test_fit_collapses_repeated_x_to_the_last_y():
    x = np.array([1e3, 1e4, 1e4, 1e5, 1e6])
    y = np.array([0.9, 0.5, 0.7, 0.5, 0.4])
    assert revisiting.fit("M1", x, y, "IC") == revisiting.fit(
        "M1", x[[0, 2, 3, 4]], y[[0, 2, 3, 4]], "IC"
    )


@pytest.mark.parametrize("method", revisiting.METHODS)
def test_bad_curves_fail_without_raising(method):
    x = np.array([1e3, 1e4, 1e5, 1e6])
    y = np.array([0.9, 0.7, 0.6, 0.55])
    bad = {
        "zero loss": (x, np.r_[y[:3], 0.0]),
        "negative loss": (x, np.r_[y[:3], -0.1]),
        "nan": (x, np.r_[y[:3], np.nan]),
        "two points": (x[:2], y[:2]),
        "one x repeated": (np.full(4, 1e3), y),
        "non-positive x": (np.r_[0.0, x[1:]], y),
        "lengths differ": (x, y[:3]),
        "loss above M4's e_0": (x, y + 0.5),
    }
    for why, (xs, ys) in bad.items():
        if why == "loss above M4's e_0" and method != "M4":
            continue
        result = revisiting.fit(method, xs, ys, "IC")
        assert result.status == "failed", why
        assert np.all(np.isnan(result.predict(x))), why
    assert revisiting.fit(method, x, y, "IC").status != "failed"


def test_unknown_method_or_domain_is_an_error():
    with pytest.raises(ValueError, match="unknown method"):
        revisiting.fit("M5", [1, 2, 3], [3, 2, 1], "IC")
    with pytest.raises(ValueError, match="unknown domain"):
        revisiting.fit("M1", [1, 2, 3], [3, 2, 1], "speech")
