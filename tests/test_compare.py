"""Law comparison (slaws.compare and ``slaws compare``).

One comparison, shared by the tests: 48 runs from Hoffmann et al.'s law (6 IsoFLOP budgets x 8
models, 1% noise), compared under chinchilla, a user's law without irreducible loss (which cannot
bend towards E) and a user's law with a bug. NUTS is short (4 chains of 100 draws after 100
warm-up steps: the program the other chinchilla tests compile, so one compilation serves all),
which is why every fitted row carries ESS warnings.
"""

import json
import math
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from cli_support import expect_error, isolated, run  # noqa: F401  (isolated: autouse)
from scipy.special import logsumexp

from slaws import Law, Param, bayes, cli, synthetic
from slaws.compare import COLUMNS, compare, largest_runs, loo_scores
from slaws.law import UnknownLawError, lse

NUTS = dict(draws=100, warmup=100, chains=4, seed=0)
CLI_NUTS = ["--draws", "100", "--warmup", "100", "--chains", "4", "--seed", "0"]

# L = A / N^alpha + B / D^beta: Chinchilla without E, so it cannot flatten towards a floor.
NO_FLOOR = Law(
    name="no_floor",
    log_loss=lambda p, x: lse(
        jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"]),
        jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"]),
    ),
    params=(
        Param("A", log=True, prior=("LogNormal", 3.0, 3.0)),
        Param("B", log=True, prior=("LogNormal", 3.0, 3.0)),
        Param("alpha", 0.0, 2.0, prior=("Uniform", 0.0, 2.0)),
        Param("beta", 0.0, 2.0, prior=("Uniform", 0.0, 2.0)),
    ),
    init_grid={"A": [10.0, 100.0], "B": [10.0, 100.0], "alpha": [0.05, 0.2], "beta": [0.05, 0.2]},
)

# Reads p["a"] where its parameter is "A": fails as soon as it is traced.
BUGGY = Law(
    name="buggy",
    log_loss=lambda p, x: jnp.log(p["a"]) - 0.1 * jnp.log(x["N"]),
    params=(Param("A", log=True, prior=("LogNormal", 0.0, 1.0)),),
    init_grid={"A": [1.0]},
)


@pytest.fixture(scope="module")
def frame():
    return synthetic.chinchilla_like(n_models=8, n_budgets=6, noise=0.01, seed=0)


@pytest.fixture(scope="module")
def table(frame):
    return compare(frame, ["chinchilla", NO_FLOOR, BUGGY], **NUTS)


def row(table, law):
    return table.set_index("law").loc[law]


def test_chinchilla_data_rank_chinchilla_first_by_loo_and_by_extrapolation(table):
    assert list(table.columns) == list(COLUMNS)
    assert table["law"].tolist() == ["chinchilla", "no_floor", "buggy"]
    best, other = row(table, "chinchilla"), row(table, "no_floor")
    assert (best["rank"], other["rank"]) == (1, 2)
    assert best["d_elpd"] == 0.0 and best["d_se"] == 0.0
    # The gap is the difference of the two sums, and several of its standard errors.
    assert other["d_elpd"] == pytest.approx(other["elpd_loo"] - best["elpd_loo"], abs=1e-9)
    assert other["d_elpd"] < -2 * other["d_se"] < 0
    assert best["weight"] > 0.95
    assert 3 < best["p_loo"] < 9  # 5 parameters and the noise scale
    # Extrapolation to the top budget: chinchilla within its 1% noise, the law without a floor
    # several times further off.
    assert (best["holdout_rank"], other["holdout_rank"]) == (1, 2)
    assert best["holdout_lpd"] > other["holdout_lpd"] + 5
    assert best["holdout_rmse"] < 0.02 < 2 * best["holdout_rmse"] < other["holdout_rmse"]
    assert best["holdout_coverage"] >= 0.75 > other["holdout_coverage"]


def test_failed_fit_and_failed_diagnostics_are_reported_in_their_rows(table):
    buggy = row(table, "buggy")
    assert buggy["status"] == "failed"
    assert pd.isna(buggy["rank"]) and pd.isna(buggy["holdout_rank"])
    assert math.isnan(buggy["elpd_loo"]) and math.isnan(buggy["holdout_lpd"])
    assert buggy["warnings"] == [
        "fit failed (KeyError: 'a')",
        "holdout fit failed (KeyError: 'a')",
    ]
    for law in ("chinchilla", "no_floor"):
        fitted = row(table, law)
        assert fitted["status"] == "warnings"
        assert any(w.startswith("fit: bulk ESS") for w in fitted["warnings"]), fitted["warnings"]
        assert any(w.startswith("holdout fit: ") for w in fitted["warnings"])


def test_pareto_k_and_pointwise_values(table, frame):
    good_k = table.attrs["good_k"]
    assert good_k == pytest.approx(min(1 - 1 / math.log10(400), 0.7))  # 4 x 100 draws
    for law in ("chinchilla", "no_floor"):
        pointwise = table.attrs["pointwise"][law]
        elpd_i, k = np.array(pointwise["elpd_loo"]), np.array(pointwise["pareto_k"])
        assert elpd_i.shape == k.shape == (len(frame),)
        assert np.isfinite(k).all() and np.isfinite(elpd_i).all()
        fitted = row(table, law)
        assert fitted["elpd_loo"] == pytest.approx(elpd_i.sum(), rel=1e-12)
        assert fitted["se"] == pytest.approx(math.sqrt(len(k) * elpd_i.var(ddof=1)), rel=1e-9)
        assert fitted["pareto_k_max"] == k.max()
        assert fitted["n_high_k"] == int((k > good_k).sum())
        high = [w for w in fitted["warnings"] if "Pareto k" in w]
        assert len(high) == (1 if fitted["n_high_k"] else 0)


def test_psis_loo_agrees_with_plain_importance_sampling(table, frame):
    """Sampled again with the same seed: the same elpd_loo as in the comparison, and close to
    LOO by plain importance sampling (weights 1 / p(y_i | theta)) computed here with numpy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        tree = bayes.sample("chinchilla", frame, **NUTS)
    again = loo_scores({"chinchilla": tree}).iloc[0]
    assert again["elpd_loo"] == row(table, "chinchilla")["elpd_loo"]
    loglik = tree["log_likelihood"]["log_loss"].values.reshape(-1, len(frame))  # draws x runs
    draws = loglik.shape[0]
    plain = -(logsumexp(-loglik, axis=0) - math.log(draws))
    lppd = logsumexp(loglik, axis=0) - math.log(draws)
    elpd_i = np.array(again["pointwise"]["elpd_loo"])
    k = np.array(again["pointwise"]["pareto_k"])
    assert again["p_loo"] == pytest.approx(lppd.sum() - elpd_i.sum(), abs=1e-9)
    assert again["elpd_loo"] == pytest.approx(plain.sum(), abs=0.5)  # of about 156
    calm = k < 0.5  # light tails: smoothing barely moves the weights
    assert calm.sum() > len(frame) / 2
    np.testing.assert_allclose(elpd_i[calm], plain[calm], atol=0.03)
    assert (elpd_i < lppd).all()  # leaving a run out never predicts it better


def test_the_largest_budget_is_held_out(table, frame):
    holdout = table.attrs["holdout"]
    compute = 6 * frame["N"] * frame["D"]
    assert holdout["by"] == "6ND"
    assert (holdout["n_holdout"], holdout["n_train"]) == (8, 40)
    assert holdout["rows"] == list(range(40, 48))  # a DataFrame's rows: its index labels
    assert holdout["min_size"] == pytest.approx(compute.max(), rel=1e-9)
    assert table.attrs["likelihood"] == "student_t" and table.attrs["n_points"] == 48


# --- the same comparison through the command line ------------------------------------------------


@pytest.fixture
def runs_csv(tmp_path, frame):
    return str(synthetic.write_csv(frame, tmp_path / "runs.csv"))


def test_cli_json_matches_the_library(capsys, tmp_path, runs_csv, table):
    out = tmp_path / "comparison.json"
    argv = ["compare", runs_csv, "--laws", "chinchilla", *CLI_NUTS, "--holdout", "0"]
    code, stdout, stderr = run(capsys, *argv, "--json", "--out", out)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert out.read_text() == stdout
    assert set(result) == {
        "source",
        "n_points",
        "method",
        "likelihood",
        "draws",
        "warmup",
        "chains",
        "seed",
        "good_k",
        "holdout",
        "rows",
        "pointwise",
    }
    assert (result["source"], result["n_points"], result["chains"]) == (runs_csv, 48, 4)
    assert result["holdout"] == {
        "share": 0.0,
        "n_holdout": 0,
        "n_train": 48,
        "by": None,
        "min_size": None,
        "rows": [],
    }
    (only,) = result["rows"]
    assert list(only) == list(COLUMNS)
    # Same data (the CSV holds every digit), seed and settings: the same posterior as in the
    # three-law comparison, so the same elpd; a law's row does not depend on the other laws.
    assert only["elpd_loo"] == row(table, "chinchilla")["elpd_loo"]
    assert only["rank"] == 1 and only["d_elpd"] == 0.0
    assert only["holdout_lpd"] is None and only["holdout_rank"] is None  # --holdout 0
    assert len(result["pointwise"]["chinchilla"]["pareto_k"]) == 48
    assert "slaws: warning: chinchilla: fit: bulk ESS" in stderr
    assert all(line.startswith("slaws: ") for line in stderr.splitlines())

    text = cli._compare_summary(result)
    assert "holdout    none (--holdout 0)" in text
    header = next(line for line in text.splitlines() if line.startswith("law "))
    assert header.split()[:4] == ["law", "rank", "elpd_loo", "se"]
    assert f"k>{result['good_k']:.2f}" in header


def test_cli_table_names_the_held_out_runs(table):
    rows = table.to_dict(orient="records")
    result = {**table.attrs, "rows": rows}
    text = cli._compare_summary(json.loads(cli._dumps(result)))
    assert "the 8 largest runs by 6ND (6ND >= 3e+21); each law refitted on the other 40" in text
    chinchilla = next(line for line in text.splitlines() if line.startswith("chinchilla "))
    assert chinchilla.split()[1] == "1" and chinchilla.split()[-1] == "warnings"
    buggy = next(line for line in text.splitlines() if line.startswith("buggy "))
    assert buggy.split()[1:3] == ["-", "-"] and buggy.split()[-1] == "failed"


def test_cli_exits_1_when_no_law_can_be_fitted(capsys, runs_csv):
    """A user's law by module:attribute; it fails, is reported, and nothing else could fit."""
    code, stdout, stderr = run(capsys, "compare", runs_csv, "--laws", "test_compare:BUGGY")
    assert code == 1
    (line,) = [line for line in stdout.splitlines() if line.startswith("buggy ")]
    assert line.split()[1] == "-" and line.split()[-1] == "failed"
    assert "slaws: warning: buggy: fit failed (KeyError: 'a')" in stderr
    assert "Traceback" not in stderr


def test_cli_forecasts_a_posterior_of_a_users_law(capsys, tmp_path, runs_csv):
    """``slaws forecast`` finds a user's law by ``--law module:attribute``, as it was fitted;
    without it, the one-line error says so."""
    fit_nc = str(tmp_path / "fit.nc")
    argv = ["fit", runs_csv, "--law", "test_compare:NO_FLOOR", "--method", "bootstrap"]
    code, _, stderr = run(capsys, *argv, "--draws", "20", "--out", fit_nc, "--quiet")
    assert code == 0, stderr
    at = ["--at", "N=1e9,D=2e10"]
    expect_error(capsys, "forecast", fit_nc, *at, fragments=["no_floor", "--law"])
    code, stdout, stderr = run(capsys, "forecast", fit_nc, *at, "--law", "test_compare:NO_FLOOR")
    assert code == 0, stderr
    tree = bayes.load(fit_nc)
    assert json.loads(tree.attrs["slaws"])["law"] == "no_floor"
    expected = bayes.forecast(tree, {"N": [1e9], "D": [2e10]}, law=NO_FLOOR)["median"][0]
    assert float(stdout.split("\n")[1].split()[3]) == pytest.approx(expected, rel=1e-5)
    expect_error(capsys, "forecast", fit_nc, *at, "--law", "chinchilla", fragments=["not"])


# --- no fits: the holdout rule and input errors --------------------------------------------------


def test_largest_runs_rule():
    frame = synthetic.chinchilla_like(n_models=8, n_budgets=6)
    compute = 6 * frame["N"] * frame["D"]
    for share, count in ((0.05, 8), (0.2, 8), (0.3, 16), (0.35, 16), (0.45, 24)):
        held = largest_runs(frame, ["chinchilla", "kaplan"], share)
        assert held.sum() == count, share
        assert compute[held].min() > compute[~held].max()  # never splits a budget
    curve = pd.DataFrame({"x": [1e3, 1e4, 1e5, 1e6, 1e7], "loss": [3.0, 2.0, 1.5, 1.2, 1.1]})
    assert largest_runs(curve, ["bnsl"], 0.4).tolist() == [False, False, False, True, True]
    both = frame.assign(x=frame["N"])
    with pytest.raises(ValueError, match=r"no common size .* \(chinchilla: N, D; bnsl: x\)"):
        largest_runs(both, ["chinchilla", "bnsl"], 0.2)
    with pytest.raises(ValueError, match="every run has the same x"):
        largest_runs(curve.assign(x=1.0), ["bnsl"], 0.2)


@pytest.mark.parametrize(
    "laws, options, message",
    [
        (["chinchila"], {}, "unknown law 'chinchila'; did you mean 'chinchilla'?"),
        (["kaplan", "bnsl"], {}, "law 'bnsl' reads column 'x', which the data lack"),
        (["chinchilla", "chinchilla"], {}, "law 'chinchilla' is listed twice"),
        ([], {}, "no laws to compare"),
        (["chinchilla"], {"likelihood": "cauchy"}, "unknown likelihood 'cauchy'"),
        (["chinchilla"], {"holdout": 1.0}, "holdout must be a share of the runs in [0, 1)"),
        (["chinchilla"], {"grid": {"kaplan": {}}}, "grid names law 'kaplan'"),
    ],
)
def test_input_errors_are_one_line_before_any_fit(frame, laws, options, message):
    with pytest.raises(ValueError) as info:
        compare(frame, laws, **options)
    assert message in str(info.value) and "\n" not in str(info.value)
    if laws == ["chinchila"]:
        assert isinstance(info.value, UnknownLawError)


def test_too_few_runs_without_the_largest(frame):
    few = frame.iloc[::6].reset_index(drop=True)  # 8 runs: holding out half leaves 4
    with pytest.raises(ValueError, match="law 'chinchilla' without the largest runs has 5 free"):
        compare(few, ["chinchilla"], holdout=0.5)


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--laws", "chinchila"], ["unknown law 'chinchila'"]),
        (["--laws", "bnsl"], ["law 'bnsl' reads column 'x'", "runs.csv"]),
        (["--laws", "chinchilla,,kaplan"], ["bad --laws"]),
        (["--laws", "chinchilla", "--holdout", "1.5"], ["--holdout must be a share"]),
        (["--laws", "chinchilla", "--holdout", "nan"], ["--holdout must be a share"]),
        (["--laws", "chinchilla", "--draws", "0"], ["--draws must be >= 1"]),
        (["--laws", "chinchilla", "--method", "svi"], ["unrecognized arguments: --method"]),
        (["--laws", "chinchilla", "--columns", "N"], ["bad --columns"]),
        (["--holdout", "0.2"], ["--laws"]),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, tmp_path, runs_csv, extra, fragments):
    expect_error(capsys, "compare", runs_csv, *extra, "--out", "c.json", fragments=fragments)
    assert not (tmp_path / "c.json").exists()


def test_cli_keeps_an_existing_out_file(capsys, tmp_path, runs_csv):
    out = tmp_path / "c.json"
    out.write_text("precious\n")
    argv = ["compare", runs_csv, "--laws", "chinchilla", "--out", out]
    expect_error(capsys, *argv, fragments=["c.json", "--force"])
    assert out.read_text() == "precious\n"


def test_cli_missing_file(capsys):
    expect_error(capsys, "compare", "nope.csv", "--laws", "chinchilla", fragments=["nope.csv"])
