"""slaws.plot: the artists of each figure, on small synthetic inputs; the module's doctests."""

import matplotlib

matplotlib.use("Agg")

import dataclasses  # noqa: E402
import doctest  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402

from slaws import allocation, bayes, plot, synthetic  # noqa: E402
from slaws.fitting import FitResult  # noqa: E402
from slaws.presets import get_preset  # noqa: E402

HOFFMANN = get_preset("hoffmann2022")["params"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def frame():
    return synthetic.chinchilla_like(n_models=6, n_budgets=3, seed=0)


@pytest.fixture(scope="module")
def point_fit(frame):
    # A FitResult as fit() returns it, at the generating parameters (the plots only read
    # .law, .params and .predict; a real fit costs seconds of compilation).
    return FitResult("chinchilla", dict(HOFFMANN), 0.0, "converged", len(frame), 1, 0.0, "none")


@pytest.fixture(scope="module")
def tree(frame):
    # The bootstrap is the fastest posterior here (about 7 s, mostly compilation; SVI ~12 s).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayes.sample("chinchilla", frame, method="bootstrap", draws=50)


@pytest.fixture(scope="module")
def distilled():
    compute = np.geomspace(1e20, 1e24, 4)
    scenarios = ("supervised", "teacher-inference", "teacher-pretraining-inference")
    return allocation.distill("busbridge2025", [1e9], compute, scenarios=scenarios, sample=8)


def lines(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def polys(ax, gid=None):
    return [
        c for c in ax.collections if isinstance(c, PolyCollection) and gid in (None, c.get_gid())
    ]


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def chinchilla_n_opt(p, c):
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    return g * (c / 6) ** (b / (a + b))


def test_import_needs_no_matplotlib():
    code = "import sys, slaws, slaws.plot; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_vs_data_point_fit(frame, point_fit):
    fig, ax = plot.fit_vs_data(frame, point_fit)  # auto: the three isoFLOP budgets
    fits = lines(ax, "fit")
    assert len(fits) == 3
    assert not polys(ax)  # a point fit has no bands
    assert len([c for c in ax.collections if c.get_gid() == "observed"]) == 3
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("parameters N", "loss (nats/token)")
    texts = legend_texts(ax)
    assert sum(t.startswith("C = ") and t.endswith("FLOPs") for t in texts) == 3
    assert "observed" in texts and "law" in texts
    # Each curve runs along its budget's isoFLOP line and matches the data there (1% noise).
    for line in fits:
        x, y = line.get_data()
        assert np.all(np.diff(x) > 0) and np.all(np.isfinite(y))
    fitted = point_fit.predict({"N": frame["N"], "D": frame["D"]})
    assert np.abs(np.log(fitted / frame["loss"])).max() < 0.05


def test_fit_vs_data_posterior_bands(frame, tree):
    fig, ax = plot.fit_vs_data(frame, tree, by="C", prob=0.9)
    assert len(lines(ax, "fit")) == 3
    credible, predictive = polys(ax, "credible"), polys(ax, "predictive")
    assert len(credible) == 3 and len(predictive) == 3
    texts = legend_texts(ax)
    assert "90% credible (law)" in texts and "90% predictive (new run)" in texts
    # The predictive band of a new run is wider than the law's credible band.
    cred = np.ptp(credible[0].get_paths()[0].vertices[:, 1])
    pred = np.ptp(predictive[0].get_paths()[0].vertices[:, 1])
    assert pred >= cred


def test_fit_vs_data_bins_a_continuous_group_and_draws(frame):
    draws = allocation.parameter_draws("epoch2024", _law("chinchilla"), sample=20)
    fig, ax = plot.fit_vs_data(frame, draws, law="chinchilla", by="D", max_groups=4)
    assert len(lines(ax, "fit")) == 4  # 18 distinct D binned into 4 log-spaced bins
    assert all("≈" in t for t in legend_texts(ax)[:4])
    assert len(polys(ax, "credible")) == 4 and not polys(ax, "predictive")
    with pytest.raises(ValueError, match="law="):
        plot.fit_vs_data(frame, dict(HOFFMANN))


def _law(name):
    from slaws.law import get_law

    return get_law(name)


def test_draws_into_a_given_ax(frame, point_fit):
    fig, axes = plt.subplots(1, 2)
    out_fig, out_ax = plot.fit_vs_data(frame, point_fit, ax=axes[1])
    assert out_fig is fig and out_ax is axes[1]
    assert not axes[0].get_lines() and lines(axes[1], "fit")


def test_extrapolation_solid_inside_dashed_beyond(frame, point_fit):
    fitted = frame["N"].to_numpy() < 5e8
    x_lo, x_hi = frame["N"][fitted].min(), frame["N"][fitted].max()
    at = np.geomspace(1e7, 1e11, 120)
    fig, ax = plot.extrapolation(frame, point_fit, by="C", at=at, fitted=fitted)
    solid = [line for line in lines(ax, "fit") if line.get_linestyle() == "-"]
    dashed = [line for line in lines(ax, "fit") if line.get_linestyle() == "--"]
    assert len(solid) == 3 and len(dashed) == 6  # per budget: dashed, solid, dashed
    for line in solid:
        x = line.get_xdata()
        assert x.min() == pytest.approx(x_lo, rel=1e-12)
        assert x.max() == pytest.approx(x_hi, rel=1e-12)
    for line in dashed:
        x = line.get_xdata()
        assert x.max() <= x_lo * (1 + 1e-12) or x.min() >= x_hi * (1 - 1e-12)
    held = [c for c in ax.collections if c.get_gid() == "held_out"]
    assert held and all(len(c.get_facecolor()) == 0 or c.get_facecolor()[0][3] == 0 for c in held)
    assert sum(len(c.get_offsets()) for c in held) == (~fitted).sum()
    assert [p for p in ax.patches if p.get_gid() == "outside"]  # the x beyond the fit, shaded
    texts = legend_texts(ax)
    assert {"fitted", "held out", "forecast", "extrapolation"} <= set(texts)
    assert ax.get_xscale() == "log"


def test_extrapolation_reads_the_range_a_point_fit_was_fitted_on(frame, point_fit):
    small = frame[frame["N"] < 5e8]
    ranges = {k: (small[k].min(), small[k].max()) for k in ("N", "D")}
    fit = dataclasses.replace(point_fit, input_ranges=ranges)
    fig, ax = plot.extrapolation(frame, fit, by="C")
    held = [c for c in ax.collections if c.get_gid() == "held_out"]
    inside = np.logical_and.reduce([frame[k].between(*ranges[k]) for k in ranges])
    assert sum(len(c.get_offsets()) for c in held) == (~inside).sum() > 0
    assert any(line.get_linestyle() == "--" for line in lines(ax, "fit"))


def test_extrapolation_valid_on_loss(frame, tree):
    threshold = 2.5
    fig, ax = plot.extrapolation(frame, tree, by="C", valid=("loss", ">", threshold))
    for line in lines(ax, "fit"):
        y = line.get_ydata()
        if line.get_linestyle() == "-":
            assert y.min() > threshold - 1e-9  # solid only where the forecast meets the rule
    assert any(line.get_linestyle() == "--" for line in lines(ax, "fit"))
    assert len(polys(ax, "credible")) == 3
    (shade,) = [p for p in ax.patches if p.get_gid() == "outside"]
    ys = shade.get_path().transformed(shade.get_patch_transform()).vertices[:, 1]
    assert ys.max() == pytest.approx(threshold)
    held = [c for c in ax.collections if c.get_gid() == "held_out"]
    assert sum(len(c.get_offsets()) for c in held) == (frame["loss"] <= threshold).sum()
    assert "outside the fit (loss ≤ 2.5)" in legend_texts(ax)


def test_isoflop_minima_at_the_closed_form_optimum():
    budgets = [1e19, 1e21, 1e23]
    fig, ax = plot.isoflop_curves("chinchilla", "hoffmann2022", budgets, n_range=(1e7, 1e12))
    assert len(lines(ax, "fit")) == 3
    (minima,) = lines(ax, "minimum")
    n_opt = np.asarray(minima.get_xdata())
    expected = [chinchilla_n_opt(HOFFMANN, c) for c in budgets]
    np.testing.assert_allclose(n_opt, expected, rtol=0.01)
    law = _law("chinchilla")
    for n, y, c in zip(n_opt, minima.get_ydata(), budgets, strict=True):
        assert y == pytest.approx(float(law.loss(HOFFMANN, {"N": n, "D": c / (6 * n)})), rel=1e-6)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "parameters N"
    assert ax.get_ylabel() == "loss (nats/token)"
    assert "compute-optimal N" in legend_texts(ax)
    assert not polys(ax)


def test_isoflop_posterior_band_of_the_minimum(tree):
    budgets = [1e19, 1e21]
    fig, ax = plot.isoflop_curves(None, tree, budgets)
    assert len(polys(ax, "credible")) == 2
    (minima,) = lines(ax, "minimum")
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert bars and bars[0].get_gid() == "minimum_interval"
    for segment, n in zip(bars[0].get_segments(), minima.get_xdata(), strict=True):
        assert segment[0, 0] <= n <= segment[1, 0] and segment[0, 0] < segment[1, 0]


def test_allocation_fan_compute_optimal():
    frame = allocation.compute_optimal("chinchilla", "epoch2024", [1e20, 1e22, 1e24], sample=20)
    fig, ax = plot.allocation_fan(frame, quantities=("N_opt", "D_opt"))
    assert [line.get_label() for line in ax.get_lines()] == ["parameters N", "training tokens D"]
    assert len(polys(ax, "band")) == 2
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "training compute C (FLOPs)"
    (n_line,) = lines(ax, "N")
    assert np.all(np.diff(n_line.get_ydata()) > 0)  # N grows with the budget
    texts = [t.get_text() for legend in ax.findobj(matplotlib.legend.Legend) for t in legend.texts]
    assert "5–95% of draws" in texts


def test_distillation_plots(distilled):
    fig, ax = plot.distillation_scenarios(distilled)
    labels = {line.get_label(): line for line in ax.get_lines()}
    assert set(labels) == {"supervised", "teacher inference", "teacher pretraining + inference"}
    assert labels["supervised"].get_linestyle() == "--"
    assert labels["teacher inference"].get_linestyle() == "-"
    assert len(polys(ax, "band")) == 3
    assert ax.get_xscale() == "log" and "nats/token" in ax.get_ylabel()

    fig, ax = plot.compute_split(distilled)
    areas = polys(ax)
    assert [a.get_gid() for a in areas] == [
        "frac_student",
        "frac_teacher_inference",
        "frac_teacher_pretraining",
    ]
    top = areas[-1].get_paths()[0].vertices[:, 1]
    assert top.max() == pytest.approx(1.0)  # the stack fills each budget
    assert ax.get_ylabel() == "share of compute" and ax.get_xscale() == "log"
    assert legend_texts(ax) == ["teacher pretraining", "teacher inference", "student training"]

    fig, ax = plot.allocation_fan(distilled, scenario="teacher-pretraining-inference")
    assert [line.get_gid() for line in ax.get_lines()] == ["N_T", "D_T", "D_S"]
    with pytest.raises(ValueError, match="several scenarios"):
        plot.allocation_fan(distilled)


def test_compute_split_without_shares_uses_the_flop_model(distilled):
    rows = distilled[distilled["scenario"] == "teacher-pretraining-inference"]
    rows = rows.sort_values("compute")
    fig, ax = plot.compute_split(rows)
    bare = rows.drop(columns=[c for c in rows if c.startswith("frac_")])
    fig2, ax2 = plot.compute_split(bare)
    for a, b in zip(polys(ax), polys(ax2), strict=True):
        np.testing.assert_allclose(
            a.get_paths()[0].vertices, b.get_paths()[0].vertices, rtol=0.05, atol=0.02
        )


def test_posterior_pairs(tree):
    fig, axes = plot.posterior_pairs(tree, ["E", "alpha", "beta"])
    assert axes.shape == (3, 3)
    assert axes[2, 0].get_xlabel() == "E" and axes[2, 0].get_ylabel() == "beta"
    with pytest.raises(ValueError, match="no variable"):
        plot.posterior_pairs(tree, ["gamma"])


def test_posterior_pairs_fallback_without_arviz_plots(tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz_plots", None)  # import arviz_plots -> ImportError
    fig, axes = plot.posterior_pairs(tree, ["A", "alpha"])
    assert axes.shape == (2, 2) and not axes[0, 1].get_visible()
    spans_decades = float(tree["posterior"]["A"].max() / tree["posterior"]["A"].min()) > 10
    assert axes[1, 0].get_xlabel() == ("log10(A)" if spans_decades else "A")


def test_group_labels():
    assert plot._sci(3e19) == r"$3\times10^{19}$"
    assert plot._sci(1e20) == r"$10^{20}$"
    assert plot._sci(2.5) == "2.5"
    assert math.isclose(plot._geomean([1e2, 1e4]), 1e3)


def test_doctests():
    result = doctest.testmod(plot, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 7 and result.failed == 0
