"""Tests for slaws.design (choosing the next run by expected information) and ``slaws next-run``.

One bootstrap posterior serves every test (the program test_allocation compiles for 72 points);
every next_run call menus at most 16 candidates with the default 64 outcomes, so one compiled
reweighting program serves them all."""

import json
import math
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from cli_support import expect_error, isolated, run  # noqa: F401  (isolated: autouse)
from scipy.stats import norm

from slaws import allocation, bayes, design, get_law
from slaws.synthetic import chinchilla_like

TARGET = "loss@N=3e10,D=6e11"  # a 30B model on 600B tokens: 30x beyond the largest fitted run
C = 1e23
ISOFLOP = pd.DataFrame([(n, C / (6 * n)) for n in (1e9, 3e10, 3e11)], columns=["N", "D"])


@pytest.fixture(scope="module")
def runs():
    return chinchilla_like(noise=0.005, seed=2)


@pytest.fixture(scope="module")
def tree(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        return bayes.sample("chinchilla", runs, method="bootstrap", draws=1000, seed=0)


@pytest.fixture(scope="module")
def fit_file(tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("design") / "fit.nc"
    bayes.save(tree, path)
    return path


def menu(runs):
    """The run at the target, a fitted run (dense region), a small run, all by 6ND."""
    return pd.DataFrame({"N": [3e10, runs["N"][30], 1e8], "D": [6e11, runs["D"][30], 2e9]})


# --- the core against a closed form ------------------------------------------------------------


def test_gaussian_expected_width_matches_the_closed_form():
    """theta ~ N(0, 1) is the target; a run observes a * theta with N(0, 1) noise, so after any
    outcome the posterior sd is (1 + a^2)^-1/2 and the 90% width 2 z (1 + a^2)^-1/2."""
    draws = 20000
    theta = norm.ppf((np.arange(draws) + 0.5) / draws)  # N(0, 1) quantiles as draws
    slopes = np.array([0.0, 0.3, 1.0, 2.0])
    out = design.expected_widths(
        jax.random.key(0), theta, theta[:, None] * slopes, np.ones(draws), likelihood="normal"
    )
    z = norm.ppf(0.95)
    assert out["width"] == pytest.approx(2 * z, rel=1e-3)
    exact = 2 * z / np.sqrt(1 + slopes**2)
    # Monte Carlo tolerance: 4 standard errors over the outcomes, and 1% for the draws' finite
    # number (weighted quantiles of uneven weights).
    tolerance = 4 * out["expected_width_se"] + 0.01 * exact
    assert np.all(np.abs(out["expected_width"] - exact) < tolerance), (out, exact)
    # a = 0 carries no information: the weights are equal, nothing changes (up to rounding).
    assert out["expected_width"][0] == pytest.approx(out["width"], rel=1e-12)
    assert out["expected_width_se"][0] < 1e-12
    assert out["ess_min"][0] == pytest.approx(draws)
    assert np.all(np.diff(out["ess_median"]) < 0)  # more information, more uneven weights


def test_interval_uses_the_weights():
    values = np.arange(10.0)
    assert design.interval(values, prob=0.8) == pytest.approx((0.5, 8.5))
    weights = np.where(values < 5, 1.0, 0.0)  # only the first half counts
    lo, hi = design.interval(values, prob=0.8, weights=weights)
    assert 0 <= lo < hi <= 4


# --- a Chinchilla posterior --------------------------------------------------------------------


def test_a_run_at_the_target_beats_runs_where_data_are_dense(tree, runs):
    table = design.next_run(tree, menu(runs), TARGET).sort_values("row")
    at_target, fitted, small = table["reduction"]
    se = table["expected_width_se"].to_numpy()
    assert at_target > 0.1 * table["width"].iloc[0]  # more than a tenth off the interval
    assert at_target > 5 * max(fitted, small) and at_target > 10 * se[0]
    # A run like those already fitted adds little: under 5% of the width.
    assert abs(fitted) < 0.05 * table["width"].iloc[0]
    assert table["width"].nunique() == 1
    lo, hi = table.attrs["interval"]
    assert lo < table.attrs["median"] < hi
    assert table.attrs["width"] == pytest.approx(math.log(hi / lo), rel=1e-12)


def test_per_flop_ranking_follows_the_costs(tree, runs):
    by_6nd = design.next_run(tree, menu(runs), TARGET).sort_values("row")
    np.testing.assert_allclose(by_6nd["cost"], 6 * by_6nd["N"] * by_6nd["D"], rtol=1e-15)
    priced = menu(runs).assign(cost=[1e15, 1e20, 1e20])  # the run at the target made cheap
    cheap = design.next_run(tree, priced, TARGET).sort_values("row")
    # The same seed gives the same outcomes: the reductions do not depend on the prices.
    np.testing.assert_array_equal(cheap["reduction"], by_6nd["reduction"])
    for table in (by_6nd, cheap):
        per_flop = table["reduction"] / table["cost"]
        np.testing.assert_allclose(table["reduction_per_flop"], per_flop, rtol=1e-15)
        order = np.argsort(-per_flop.to_numpy(), kind="stable")
        assert table["rank"].to_numpy()[order].tolist() == [1, 2, 3]
    assert cheap["rank"].iloc[0] == 1 and by_6nd["rank"].iloc[0] == 3
    # A C column is the cost when there is no cost column.
    with_c = design.next_run(tree, priced.rename(columns={"cost": "C"}), TARGET)
    np.testing.assert_array_equal(with_c.sort_values("row")["cost"], priced["cost"])


def test_off_frontier_runs_inform_the_compute_optimal_size(tree):
    """At the compute-optimal N the loss is flat in the split of C (the envelope theorem), so
    a run there says little about where the optimum is; runs far from it, over-trained or
    under-trained, say much more."""
    table = design.next_run(tree, ISOFLOP, "optimal_N@1e25").sort_values("row")
    over, frontier, under = table["reduction"]
    se = table["expected_width_se"].to_numpy()
    assert over > frontier + 4 * np.hypot(se[0], se[1])
    assert under > frontier + 4 * np.hypot(se[2], se[1])
    assert abs(frontier) < 0.05 * table["width"].iloc[0]
    # The current width is that of compute_optimal's quantiles (the same draws and solver).
    plan = allocation.compute_optimal("chinchilla", tree, [1e25])
    width = math.log(plan["N_q95"].item() / plan["N_q05"].item())
    assert table["width"].iloc[0] == pytest.approx(width, rel=0.02)


def test_same_seed_same_table(tree, runs):
    first = design.next_run(tree, menu(runs), TARGET, seed=3)
    pd.testing.assert_frame_equal(first, design.next_run(tree, menu(runs), TARGET, seed=3))
    other = design.next_run(tree, menu(runs), TARGET, seed=4)
    assert not np.array_equal(first["expected_width"], other["expected_width"])
    assert first["row"].iloc[0] == other["row"].iloc[0]  # the best run stays best


def hand_built_tree(sigma, likelihood="student_t", draws=1000):
    """A posterior made by hand: Chinchilla draws from epoch2024's published intervals, each with
    noise scale ``sigma``, and the attributes next_run reads."""
    import arviz as az

    values = allocation.parameter_draws("epoch2024", get_law("chinchilla"), sample=draws)
    posterior = {k: v[None] for k, v in values.items()} | {"sigma": np.full((1, draws), sigma)}
    tree = az.from_dict({"posterior": posterior})
    ranges = {"N": [1e8, 1e10], "D": [1e9, 1e11]}
    info = {"law": "chinchilla", "likelihood": likelihood, "fixed": {}, "input_ranges": ranges}
    tree.attrs["slaws"] = json.dumps(info)
    return tree


def test_degenerate_weights_warn():
    """Runs whose outcome settles far more than the draws resolve (noise of 1e-4 on log loss
    against a spread of percents): too few draws keep weight, and the table says so."""
    runs = pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    with pytest.warns(design.DesignWarning, match=r"degenerate for 2 of 2 .*rows 0, 1\)"):
        table = design.next_run(hand_built_tree(1e-4), runs, TARGET)
    assert len(table.attrs["warnings"]) == 1
    assert (table["ess_median"] < design.ESS_WARN * 1000).all()
    # With noise of 5% the same runs tell less, and the weights stay even enough.
    with warnings.catch_warnings():
        warnings.simplefilter("error", design.DesignWarning)
        table = design.next_run(hand_built_tree(0.05), runs, TARGET)
    assert (table["ess_median"] > 0.3 * 1000).all() and table.attrs["warnings"] == []
    assert table["width"].iloc[0] == pytest.approx(np.diff(interval_of(table)).item(), rel=1e-9)


def interval_of(table):
    lo, hi = table.attrs["interval"]
    return np.log([lo, hi])


def test_distillation_student_target():
    """loss@N_S=...,D_S=...,N_T=...,D_T=... is the student's loss under the distillation law."""
    law = get_law("distillation")
    draws = allocation.parameter_draws("busbridge2025", law, sample=8, seed=0)
    target = design.parse_target("loss@N_S=1e9,D_S=2e10,N_T=7e9,D_T=1.4e11")
    x = {"N": 1e9, "D": 2e10, "N_T": 7e9, "D_T": 1.4e11}
    with jax.enable_x64(True):
        expected = [float(law.log_loss({k: v[i] for k, v in draws.items()}, x)) for i in range(8)]
    np.testing.assert_allclose(target.log_values(law, draws), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="compute-optimal allocation needs a law of N and D"):
        design.parse_target("optimal_N@1e25").log_values(law, draws)
    with pytest.raises(ValueError, match=r"needs L_T or N_T\+D_T"):
        design.parse_target("loss@N_S=1e9,D_S=2e10").log_values(law, draws)


# --- one-line errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("optimal_M@1e25", "unknown target 'optimal_M@1e25' (forms: optimal_N@1e25"),
        ("optimal_N", "unknown target"),
        ("N@1e25", "unknown target"),
        ("loss@", "unknown target"),
        ("loss@N", "unknown target"),
        ("optimal_N@-1e25", "'-1e25' is not a positive finite number"),
        ("optimal_N@big", "'big' is not a positive finite number"),
        ("loss@N=nan,D=1e12", "'nan' is not a positive finite number"),
        ("loss@N=1e9,N=2e9", "input 'N' given twice"),
    ],
)
def test_bad_targets_are_one_line(text, fragment):
    with pytest.raises(ValueError) as info:
        design.parse_target(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_bad_inputs_are_one_line(tree, runs, tmp_path):
    law, draws = get_law("chinchilla"), {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.3}
    draws = allocation.parameter_draws(draws | {"beta": 0.3}, law)
    cases = [
        (lambda: design.parse_target("loss@N=1e9").log_values(law, draws), "needs D"),
        (
            lambda: design.parse_target("loss@N=1e9,D=1e9,U=1").log_values(law, draws),
            "law 'chinchilla' has no input 'U' (its inputs: N, D)",
        ),
        (lambda: design.next_run(tree, menu(runs), TARGET, prob=1.5), "prob must be in (0, 1)"),
        (lambda: design.next_run(tree, menu(runs), TARGET, outcomes=1), "outcomes must be >= 2"),
        (
            lambda: design.next_run(tree, menu(runs), "optimal_N@1e6"),
            "no model with N and D in [1e+06, 1e+17] spends 1e+06 FLOPs",
        ),
    ]
    path = tmp_path / "menu.csv"
    for text, fragment in (
        ("N,D,cost\n1e9,2e10,1e20\n3e9,,1e21\n", "column 'D', row 2 (line 3): missing value"),
        ("N,D,cost\n1e9,2e10,1e20\n3e9,6e10,abc\n", "column 'cost', row 2 (line 3): 'abc'"),
        ("N,D,cost\n1e9,2e10,0\n", "column 'cost', row 1 (line 2): 0 is not > 0"),
        ("N,tokens\n1e9,2e10\n", "missing column 'D'"),
    ):
        path.write_text(text)
        check_one_line(lambda: design.next_run(tree, path, TARGET), f"{path}: {fragment}")
    for call, fragment in cases:
        check_one_line(call, fragment)


def check_one_line(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value), info.value


# --- the command line --------------------------------------------------------------------------


def test_cli_json_and_table(capsys, tmp_path, runs, fit_file):
    menu(runs).to_csv("menu.csv", index=False)
    argv = ["next-run", fit_file, "--candidates", "menu.csv", "--target", TARGET]
    code, out, err = run(capsys, *argv, "--json", "--out", "result.json")
    assert code == 0 and err == "", err
    result = json.loads(out)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["target"] == TARGET and result["law"] == "chinchilla"
    assert (result["draws"], result["outcomes"], result["prob"]) == (1000, 64, 0.9)
    assert result["likelihood"] == "student_t" and result["warnings"] == []
    now = result["current"]
    assert now["lo"] < now["median"] < now["hi"]
    assert now["width"] == pytest.approx(math.log(now["hi"] / now["lo"]))
    assert [row["rank"] for row in result["rows"]] == [1, 2, 3]
    assert list(result["rows"][0]) == list(design.next_run(fit_file, "menu.csv", TARGET).columns)
    code, again, _ = run(capsys, *argv, "--json")
    assert code == 0 and again == out  # the same seed, the same bytes
    code, table, err = run(capsys, *argv)
    assert code == 0 and err == ""
    for fragment in (TARGET, "90% interval", "1000 draws", "expected", "narrows", "ESS min"):
        assert fragment in table, (fragment, table)


def test_cli_errors_are_one_line_and_write_nothing(capsys, tmp_path, runs, fit_file):
    menu(runs).to_csv("menu.csv", index=False)
    base = ["next-run", fit_file, "--candidates", "menu.csv"]
    expect_error(capsys, *base, "--target", "optimal_M@1e25", fragments=["forms: optimal_N"])
    pd.DataFrame({"N": [1e9, np.nan], "D": [2e10, 2e11]}).to_csv("nan.csv", index=False)
    expect_error(
        capsys,
        *base[:3],
        "nan.csv",
        "--target",
        TARGET,
        "--out",
        "r.json",
        fragments=["nan.csv", "column 'N'", "row 2 (line 3)"],
    )
    assert not (tmp_path / "r.json").exists()
    expect_error(capsys, "next-run", "nope.nc", *base[2:], "--target", TARGET, fragments=["nope"])
    expect_error(capsys, *base, "--target", TARGET, "--outcomes", "1", fragments=["--outcomes"])
    (tmp_path / "taken.json").write_text("{}")
    expect_error(capsys, *base, "--target", TARGET, "--out", "taken.json", fragments=["exists"])
    assert (tmp_path / "taken.json").read_text() == "{}"
