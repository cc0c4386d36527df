"""Tests for ``slaws optimal`` and ``slaws distill`` (slaws.cli over slaws.allocation), run
in-process through ``main``. Each solving call compiles once (the JAX persistent cache is off),
so the tests share calls: one per command shape."""

import json
import warnings

import pytest
from cli_support import expect_error, isolated, run  # noqa: F401  (isolated: autouse)

from slaws import cli
from slaws.presets import get_preset

SCENARIOS = [
    "supervised",
    "best-case",
    "teacher-inference",
    "teacher-pretraining",
    "teacher-pretraining-inference",
]
OPTIMAL = ["optimal", "--law", "chinchilla", "--params", "epoch2024", "--compute"]


def strict_json(text):
    """Parse one JSON object, refusing NaN and Infinity (which are not JSON)."""

    def refuse(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def chinchilla_optimum(params, c):
    """Chinchilla's closed form under C = 6ND."""
    a, b = params["alpha"], params["beta"]
    g = (a * params["A"] / (b * params["B"])) ** (1 / (a + b))
    return g * (c / 6) ** (b / (a + b)), (c / 6) ** (a / (a + b)) / g


# --- optimal -----------------------------------------------------------------------------------


def test_optimal_matches_closed_form(capsys):
    code, out, err = run(capsys, *OPTIMAL, "1e22", "1e24", "1e12", "--flops", "6ND", "--json")
    assert code == 0, err
    result = strict_json(out)
    assert result["law"] == "chinchilla" and result["flops"] == "6ND"
    assert result["params"] == "epoch2024" and result["draws"] == 1
    assert "point" in result["parameters"]
    rows = result["rows"]
    assert [row["compute"] for row in rows] == [1e22, 1e24, 1e12]
    assert list(rows[0]) == ["compute", "N", "D", "loss", "tokens_per_param", "at_bound", "status"]
    params = get_preset("epoch2024")["params"]
    for row in rows[:2]:
        n_opt, d_opt = chinchilla_optimum(params, row["compute"])
        assert row["N"] == pytest.approx(n_opt, rel=1e-6)
        assert row["D"] == pytest.approx(d_opt, rel=1e-6)
        assert row["tokens_per_param"] == pytest.approx(d_opt / n_opt, rel=1e-6)
        assert (row["status"], row["at_bound"]) == ("ok", "")
    # 1e12 FLOPs cannot train 1e6 parameters on 1e6 tokens: infeasible, its numbers null, and
    # one warning line.
    assert rows[2]["status"] == "infeasible"
    assert rows[2]["N"] is None and rows[2]["D"] is None and rows[2]["loss"] is None
    assert err.count("\n") == 1 and err.startswith("slaws: warning: C=1e+12: status infeasible")


def test_optimal_sample_quantiles_and_reproducible(capsys):
    argv = [*OPTIMAL, "1e22", "1e24", "--sample", "200", "--seed", "1", "--json"]
    code, first, err = run(capsys, *argv)
    assert code == 0, err
    assert err.count("\n") == 1 and "warning: --sample 200" in err and "approximation" in err
    result = strict_json(first)
    assert result["draws"] == 200 and result["seed"] == 1
    assert "sampled" in result["parameters"] and "approximation" in result["parameters"]
    for row in result["rows"]:
        assert row["status"] == "ok"
        for key in ("N", "D", "loss", "tokens_per_param"):
            assert row[f"{key}_q05"] < row[key] < row[f"{key}_q95"], (key, row)
    code, second, _ = run(capsys, *argv)
    assert code == 0 and second == first  # byte-identical for the same seed


@pytest.mark.parametrize(
    "argv, fragments",
    [
        ([*OPTIMAL[:2], "kaplan", *OPTIMAL[3:], "1e22"], ["epoch2024", "'chinchilla'", "kaplan"]),
        ([*OPTIMAL, "-1"], ["--compute", "'-1'", "positive"]),
        ([*OPTIMAL, "abc"], ["--compute", "'abc'", "positive"]),
        ([*OPTIMAL, "inf"], ["--compute", "'inf'"]),
        ([*OPTIMAL, "0"], ["--compute", "'0'"]),
        ([*OPTIMAL], ["--compute"]),
        ([*OPTIMAL, "1e22", "--sample", "0"], ["--sample", ">= 1"]),
        ([*OPTIMAL, "1e22", "--seed", "3"], ["--seed", "--sample"]),
        ([*OPTIMAL, "1e22", "--sample", "5", "--seed", "-1"], ["--seed"]),
        ([*OPTIMAL, "1e22", "--flops", "12ND"], ["--flops", "12ND"]),
        ([*OPTIMAL, "1e22", "--unique-tokens", "1e11"], ["--unique-tokens", "chinchilla"]),
        (
            ["optimal", "--law", "chinchilla", "--params", "hoffmann2022", "--compute", "1e22"]
            + ["--sample", "10"],
            ["hoffmann2022", "no intervals"],
        ),
        (
            ["optimal", "--law", "chinchilla", "--params", "nope.nc", "--compute", "1e22"],
            ["nope.nc", "neither a preset"],
        ),
        (
            ["optimal", "--law", "bnsl", "--params", "caballero2023-simulation", "--compute", "1"],
            ["bnsl", "law of N and D"],
        ),
        (
            ["optimal", "--law", "distillation", "--params", "busbridge2025", "--compute", "1"],
            ["slaws distill"],
        ),
        (["optimal", "--params", "epoch2024", "--compute", "1e22"], ["--law"]),
        (["distill", "--student", "1e9", "--compute", "1e22", "--scenario", "bogus"], ["bogus"]),
        (["distill", "--student", "-5", "--compute", "1e22"], ["--student", "'-5'"]),
        (
            ["distill", "--student", "1e9", "--compute", "1e22", "--params", "epoch2024"],
            ["epoch2024", "'distillation'"],
        ),
    ],
    ids=[
        "law-mismatch",
        "negative-budget",
        "non-numeric-budget",
        "infinite-budget",
        "zero-budget",
        "no-budget",
        "sample-zero",
        "seed-without-sample",
        "negative-seed",
        "unknown-flops",
        "unique-tokens-unused",
        "sample-without-intervals",
        "no-such-params",
        "not-N-and-D",
        "distillation-law",
        "no-law",
        "unknown-scenario",
        "bad-student",
        "distill-wrong-preset",
    ],
)
def test_allocation_errors(capsys, argv, fragments):
    expect_error(capsys, *argv, fragments=fragments)


def test_out_exists_without_force(capsys, tmp_path):
    (tmp_path / "r.json").write_text("keep")
    expect_error(capsys, *OPTIMAL, "1e22", "--out", "r.json", fragments=["r.json", "--force"])
    assert (tmp_path / "r.json").read_text() == "keep"


# --- distill -----------------------------------------------------------------------------------


def test_distill_all_scenarios(capsys):
    import jax

    from slaws.flops import forward

    code, out, err = run(
        capsys, "distill", "--student", "1e9", "--compute", "1e22", "--scenario", "all", "--json"
    )
    assert code == 0, err
    assert err == ""
    result = strict_json(out)
    assert result["law"] == "distillation" and result["flops"] == "busbridge"
    assert result["params"] == "busbridge2025" and result["scenario"] == "all"
    rows = {row["scenario"]: row for row in result["rows"]}
    assert [row["scenario"] for row in result["rows"]] == SCENARIOS
    assert list(result["rows"][0])[:11] == [
        "scenario",
        "student_params",
        "compute",
        "student_loss",
        "teacher_loss",
        "N_T",
        "D_T",
        "D_S",
        "frac_student",
        "frac_teacher_inference",
        "frac_teacher_pretraining",
    ]
    assert all(row["status"] == "ok" for row in result["rows"])
    # Busbridge et al. find the inference-costed teacher's data at the 1e17 bound.
    inference = rows["teacher-inference"]
    assert "D_T" in inference["at_bound"]
    assert inference["D_T"] == pytest.approx(1e17, rel=1e-3)
    supervised = rows["supervised"]
    with jax.enable_x64(True):  # as slaws.allocation computes it (float32 is off by 1e-6)
        f_s = float(forward("busbridge", 1e9))
    assert supervised["D_S"] == pytest.approx(1e22 / (3 * f_s), rel=1e-9)
    assert supervised["teacher_loss"] is None and supervised["N_T"] is None  # NaN -> null
    for row in result["rows"]:  # every allocation spends the budget
        spent = row["frac_student"] + row["frac_teacher_inference"]
        assert spent + row["frac_teacher_pretraining"] == pytest.approx(1, rel=1e-6)
        assert row["student_params"] == 1e9 and row["compute"] == 1e22


# --- a posterior file --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def posterior_file(tmp_path_factory):
    from slaws import bayes, synthetic

    frame = synthetic.chinchilla_like(noise=0.01, seed=0).iloc[::2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        tree = bayes.sample("chinchilla", frame, draws=100, warmup=100, chains=2)
    path = tmp_path_factory.mktemp("posterior") / "fit.nc"
    bayes.save(tree, path)
    return path


def test_optimal_from_posterior(capsys, tmp_path, posterior_file):
    argv = ["optimal", "--law", "chinchilla", "--params", posterior_file, "--compute", "1e22"]
    code, out, err = run(capsys, *argv, "--out", "r.json")
    assert code == 0, err
    assert err == ""
    for fragment in ("posterior", "200 draws", "q05", "q95", "N", "D/N", "status", "1e+22"):
        assert fragment in out, (fragment, out)
    result = strict_json((tmp_path / "r.json").read_text())
    assert result["draws"] == 200 and result["parameters"].startswith("posterior")
    (row,) = result["rows"]
    assert row["status"] == "ok"
    for key in ("N", "D", "loss"):
        assert row[f"{key}_q05"] < row[key] < row[f"{key}_q95"], (key, row)
    # --law must match the posterior's, and a posterior is not sampled from intervals.
    expect_error(capsys, *argv[:2], "kaplan", *argv[3:], fragments=["'chinchilla'", "kaplan"])
    expect_error(capsys, *argv, "--sample", "5", fragments=["--params", "published intervals"])
    (tmp_path / "junk.nc").write_text("not netcdf")
    expect_error(
        capsys,
        *argv[:4],
        "junk.nc",
        "--compute",
        "1e22",
        fragments=["junk.nc", "not a posterior"],
    )


def test_choices_match_the_library():
    """The CLI lists scenarios and FLOP models itself (importing them would import jax)."""
    from slaws import allocation, flops

    assert set(cli.DISTILL_SCENARIOS) == {"all", "supervised", *allocation.SCENARIOS}
    assert set(cli.FLOP_MODELS) == set(flops.FLOPS)
    assert get_preset(cli.DISTILL_PRESET)["law"] == "distillation"
