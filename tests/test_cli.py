"""Tests for the ``slaws`` command line (slaws.cli), run in-process through ``main``.

Fits use a 20-row synthetic CSV and ``--max-steps 50`` so that every fit shares one compilation.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_support import expect_error, isolated, run  # noqa: F401  (isolated: autouse)

from slaws import cli, synthetic
from slaws.law import get_law
from slaws.presets import get_preset

CONTRACT = {"law", "method", "recipe", "params", "objective", "n_points", "status", "seconds"}
FAST = ["--law", "chinchilla", "--max-steps", "50"]


@pytest.fixture(scope="module")
def tiny_frame():
    return synthetic.chinchilla_like(n_models=5, n_budgets=4, seed=1)


@pytest.fixture
def tiny(tmp_path, tiny_frame):
    """A 20-row CSV of N, D, loss."""
    return str(synthetic.write_csv(tiny_frame, tmp_path / "tiny.csv"))


def write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- bad input ---------------------------------------------------------------------------------

GOOD_ROWS = "".join(f"{n:g},{20 * n:g},{3.0 - 0.1 * i}\n" for i, n in enumerate([1e7, 2e7, 4e7]))


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("Nparams,D,loss\n1e8,2e9,3.0\n", ["runs.csv", "column 'N'", "Nparams", "--columns"]),
        ("N,D,loss\n1e8,2e9,3.0\n1e8,abc,3.0\n", ["runs.csv", "column 'D'", "row 2", "'abc'"]),
        ("N,D,loss\n1e8,2e9,3.0\n1e8,2e9,nan\n", ["runs.csv", "column 'loss'", "row 2"]),
        ("N,D,loss\n1e8,2e9,3.0\n1e8,2e9,\n", ["runs.csv", "column 'loss'", "row 2"]),
        ("N,D,loss\ninf,2e9,3.0\n", ["runs.csv", "column 'N'", "row 1", "not finite"]),
        ("N,D,loss\n1e8,-inf,3.0\n", ["runs.csv", "column 'D'", "row 1", "not finite"]),
        ("N,D,loss\n0,2e9,3.0\n", ["runs.csv", "column 'N'", "row 1", "not > 0"]),
        ("N,D,loss\n1e8,-2e9,3.0\n", ["runs.csv", "column 'D'", "row 1", "not > 0"]),
        ("N,D,loss\n1e8,2e9,3.0\n2e8,3e9,0\n", ["runs.csv", "column 'loss'", "row 2", "not > 0"]),
        ("", ["runs.csv", "empty"]),
        ("N,D,loss\n", ["runs.csv", "no data rows"]),
        ("N,D,loss\n" + GOOD_ROWS, ["runs.csv", "3 rows", "5 free parameters"]),
    ],
    ids=[
        "misspelled-column",
        "non-numeric",
        "nan",
        "empty-cell",
        "inf",
        "minus-inf",
        "N-zero",
        "D-negative",
        "loss-zero",
        "empty-file",
        "header-only",
        "too-few-points",
    ],
)
def test_bad_data(capsys, tmp_path, text, fragments):
    path = write(tmp_path, text)
    expect_error(capsys, "fit", path, *FAST, "--out", "result.json", fragments=fragments)
    assert not (tmp_path / "result.json").exists()


def test_missing_file(capsys, tmp_path):
    expect_error(capsys, "fit", "nope.csv", *FAST, fragments=["nope.csv", "no such file"])


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--law", "chinchila"], ["unknown law 'chinchila'", "did you mean 'chinchilla'"]),
        (["--law", "chinchilla", "--recipe", "epoch"], ["unknown recipe", "'epoch2024'"]),
        (
            ["--law", "chinchilla", "--recipe", "epoch2024", "--objective", "squared"],
            ["conflicting options", "epoch2024", "objective"],
        ),
        (
            ["--law", "chinchilla", "--recipe", "epoch2024", "--delta", "0.01"],
            ["conflicting options", "delta"],
        ),
        (["--law", "kaplan", "--recipe", "epoch2024"], ["does not cover law 'kaplan'"]),
        (["--law", "chinchilla", "--objective", "l1"], ["unknown objective 'l1'", "huber"]),
        (["--law", "chinchilla", "--objective", "squared", "--delta", "0.1"], ["--delta"]),
        (["--law", "chinchilla", "--delta", "-1"], ["--delta"]),
        (["--law", "chinchilla", "--delta", "abc"], ["--delta", "'abc'"]),
        (["--law", "chinchilla", "--columns", "N"], ["--columns", "'N'", "canonical=source"]),
        (["--law", "chinchilla", "--columns", "N=,loss=y"], ["--columns", "'N='"]),
        (["--law", "chinchilla", "--columns", "=N"], ["--columns"]),
        (["--law", "chinchilla", "--columns", "N=a,N=b"], ["--columns", "twice"]),
        (["--law", "chinchilla", "--columns", "Q=N"], ["unknown canonical name 'Q'"]),
        (["--law", "chinchilla", "--columns", "N=params"], ["'params'", "not a column"]),
        (["--law", "chinchilla", "--fix", "E=abc"], ["--fix", "'abc' is not a number"]),
        (["--law", "chinchilla", "--fix", "Z=1"], ["no parameter 'Z'"]),
        (["--law", "chinchilla", "--fix", "hoffman2022"], ["unknown preset 'hoffman2022'"]),
        (["--law", "chinchilla", "--fix", "kaplan2020"], ["kaplan2020", "fixes none"]),
        (["--law", "chinchilla", "--max-steps", "0"], ["--max-steps"]),
        (["--law", "chinchilla", "--max-steps", "1.5"], ["--max-steps", "'1.5'"]),
        ([], ["give --law"]),
        (["--recipe", "busbridge2025"], ["covers laws", "choose one with --law"]),
        (["--law", "chinchilla", "--bogus"], ["unrecognized arguments: --bogus"]),
    ],
)
def test_bad_options(capsys, tmp_path, tiny, extra, fragments):
    expect_error(capsys, "fit", tiny, *extra, "--out", "result.json", fragments=fragments)
    assert not (tmp_path / "result.json").exists()


def test_out_exists_without_force(capsys, tmp_path, tiny):
    out = tmp_path / "result.json"
    out.write_text("precious\n")
    expect_error(capsys, "fit", tiny, *FAST, "--out", out, fragments=["result.json", "--force"])
    assert out.read_text() == "precious\n"


def test_out_directory_missing(capsys, tiny):
    expect_error(capsys, "fit", tiny, *FAST, "--out", "no/such/dir.json", fragments=["no/such"])


def test_usage_errors(capsys):
    expect_error(capsys, fragments=["required", "COMMAND"])
    expect_error(capsys, "fitt", fragments=["invalid choice: 'fitt'"])
    expect_error(capsys, "synth", "gpt", "--out", "x.csv", fragments=["invalid choice: 'gpt'"])
    expect_error(capsys, "synth", "chinchilla", fragments=["required", "--out"])


def test_help_and_version(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and "usage: slaws" in out and "fit" in out and err == ""
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0 and "--law" in out and "--max-steps" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("slaws ")


def test_console_script_exit_code_without_traceback(tmp_path):
    """The one real subprocess run: ``python -m slaws`` reports an error in one line."""
    env = {**os.environ, "SLAWS_JAX_CACHE": str(tmp_path / "jax-cache")}
    env.pop("SLAWS_DEBUG", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slaws",
            "fit",
            str(tmp_path / "missing.csv"),
            "--law",
            "chinchilla",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("slaws: error: ")
    assert "missing.csv" in proc.stderr
    assert proc.stdout == ""


def test_cli_module_imports_no_jax():
    """``slaws --help`` stays fast: importing slaws.cli must not import jax, numpy or pandas."""
    code = "import sys, slaws.cli; print(sorted({'jax', 'numpy', 'pandas'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- fitting -----------------------------------------------------------------------------------


def test_fit_json_contract_and_out(capsys, tmp_path, tiny, monkeypatch):
    calls = []
    real = cli.enable_compilation_cache
    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: calls.append(1) or real())
    code, out, err = run(capsys, "fit", tiny, *FAST, "--json", "--out", "result.json")
    assert code == 0, err
    assert calls == [1]
    assert out.count("\n") == 1
    result = json.loads(out)
    assert CONTRACT <= set(result)
    assert result["law"] == "chinchilla" and result["recipe"] is None
    assert result["n_points"] == 20
    assert set(result["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in result["params"].values())
    assert result["status"] in ("converged", "max_steps")
    assert isinstance(result["seconds"], float) and isinstance(result["objective"], float)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    # progress went to stderr, never to stdout, and nothing else
    assert err and all(line.startswith("slaws: ") for line in err.splitlines())
    assert "warning" not in err and "error" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "tiny.csv"]

    # a second run refuses to replace the file, then --force replaces it
    before = (tmp_path / "result.json").read_text()
    expect_error(capsys, "fit", tiny, *FAST, "--json", "--out", "result.json")
    assert (tmp_path / "result.json").read_text() == before
    code, out, err = run(capsys, "fit", tiny, *FAST, "--quiet", "--out", "result.json", "--force")
    assert code == 0 and err == ""
    assert json.loads((tmp_path / "result.json").read_text())["params"] == result["params"]
    # without --json, stdout is the readable summary with 6 significant figures
    for key in ("law", "recipe", "objective", "n_points", "status", "seconds"):
        assert key in out
    for name, value in result["params"].items():
        assert f"{name}" in out and f"{value:.6g}" in out


def test_fit_columns(capsys, tmp_path, tiny_frame):
    path = tmp_path / "renamed.csv"
    tiny_frame.rename(columns={"N": "params", "D": "tokens", "loss": "val_loss"}).to_csv(
        path, index=False
    )
    code, out, err = run(
        capsys, "fit", path, *FAST, "--columns", "N=params, D=tokens,loss=val_loss", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["n_points"] == 20 and set(result["params"]) == {"E", "A", "B", "alpha", "beta"}


@pytest.fixture
def fake_fit(monkeypatch):
    """Replace slaws.fitting.fit by a stub that records its arguments (no compilation)."""
    from slaws import fitting

    calls = []

    def fake(law, data, **kwargs):
        calls.append({"law": law, "data": data, **kwargs})
        if kwargs.get("progress"):
            kwargs["progress"]("optimising 1 start")
        params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
        return fitting.FitResult(
            law=law,
            params=params,
            objective=0.5,
            status="converged",
            n_points=20,
            n_starts=1,
            seconds=0.25,
            objective_name="stub",
            recipe=kwargs.get("recipe"),
            free=("A", "B", "alpha", "beta"),
            fixed={"E": 1.69},
        )

    monkeypatch.setattr(fitting, "fit", fake)
    return calls


def test_fit_passes_options(capsys, tiny, fake_fit):
    argv = ["fit", tiny, "--law", "chinchilla", "--objective", "huber_likelihood"]
    argv += ["--delta", "0.01", "--columns", "N=N,loss=loss", "--fix", "E=1.69, alpha=0.34"]
    code, out, err = run(capsys, *argv, "--max-steps", "7", "--json")
    assert code == 0, err
    (call,) = fake_fit
    assert call["law"] == "chinchilla" and call["data"] == tiny
    assert call["objective"] == "huber_likelihood" and call["delta"] == 0.01
    assert call["columns"] == {"N": "N", "loss": "loss"}
    assert call["fixed"] == {"E": 1.69, "alpha": 0.34}
    assert call["max_steps"] == 7
    assert err == "slaws: optimising 1 start\n"
    assert json.loads(out)["fixed"] == {"E": 1.69}

    fake_fit.clear()
    argv = ["fit", tiny, "--law", "chinchilla", "--recipe", "epoch2024", "--fix", "hoffmann2022"]
    code, out, err = run(capsys, *argv, "--quiet")
    assert code == 0 and err == ""
    (call,) = fake_fit
    assert call["recipe"] == "epoch2024" and call["fixed"] == "hoffmann2022"
    assert call["progress"] is None
    assert not {"max_steps", "objective", "delta", "columns"} & set(call)
    assert "epoch2024" in out and "(fixed)" in out


def test_fit_failed_exits_1(capsys, tiny, fake_fit, monkeypatch):
    from slaws import fitting

    stub = fitting.fit

    def failed(*args, **kwargs):
        result = stub(*args, **kwargs)
        result.status, result.objective = "failed", math.inf
        return result

    monkeypatch.setattr(fitting, "fit", failed)
    code, out, err = run(capsys, "fit", tiny, *FAST, "--json", "--quiet")
    assert code == 1
    result = json.loads(out)  # still valid JSON: inf becomes null
    assert result["status"] == "failed" and result["objective"] is None
    assert err.startswith("slaws: warning: fit failed")


def test_duplicate_rows_warn_but_fit(capsys, tmp_path, tiny_frame):
    frame = tiny_frame.copy()
    frame.iloc[7] = frame.iloc[3]  # 20 rows, one an exact repeat of another
    path = synthetic.write_csv(frame, tmp_path / "dups.csv")
    code, out, err = run(capsys, "fit", path, *FAST, "--json", "--quiet")
    assert code == 0, err
    warning_lines = [line for line in err.splitlines() if line.startswith("slaws: warning: ")]
    assert len(warning_lines) == 1 and err.count("\n") == 1, err
    assert "duplicate" in warning_lines[0] and "dups.csv" in warning_lines[0]
    assert "row 8" in warning_lines[0] and "row 4" in warning_lines[0]
    assert CONTRACT <= set(json.loads(out))


def test_suspicious_units_warn_but_fit(capsys, tmp_path, tiny_frame):
    frame = tiny_frame.copy()
    frame["D"] = frame["D"] / 1e9  # tokens in billions next to a raw parameter count
    path = synthetic.write_csv(frame, tmp_path / "units.csv")
    code, out, err = run(capsys, "fit", path, *FAST, "--json", "--quiet")
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("slaws: warning: "), err
    assert "units.csv" in err and "D/N" in err
    assert CONTRACT <= set(json.loads(out))


# --- demo --------------------------------------------------------------------------------------


def test_compute_optimal_closed_form():
    params = get_preset("hoffmann2022")["params"]
    opt = cli.compute_optimal(params, 1e24)
    assert opt["N"] * opt["D"] == pytest.approx(1e24 / 6, rel=1e-12)
    law = get_law("chinchilla")
    n = opt["N"] * np.array([0.9, 1.0, 1.1])
    loss = np.asarray(law.loss(params, {"N": n, "D": 1e24 / (6 * n)}))
    assert loss[1] < loss[0] and loss[1] < loss[2]


def test_demo_json(capsys):
    code, out, err = run(capsys, "demo", "--json", "--quiet")
    assert code == 0, err
    assert err == ""
    result = json.loads(out)
    assert CONTRACT <= set(result["fit"])
    assert result["fit"]["law"] == "chinchilla" and result["fit"]["n_points"] == 72
    assert result["true_preset"] == "hoffmann2022" and result["regenerated"] is False
    true = get_preset("hoffmann2022")["params"]
    assert result["true"] == true
    for name, value in result["fit"]["params"].items():
        assert result["relative_error"][name] == pytest.approx(value / true[name] - 1)
    opt = result["compute_optimal"]
    assert opt["C"] == 1e24
    assert opt["true"]["N"] == pytest.approx(cli.compute_optimal(true, 1e24)["N"])
    assert opt["fitted"]["D"] == pytest.approx(
        cli.compute_optimal(result["fit"]["params"], 1e24)["D"]
    )


def test_demo_text_regenerates_missing_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "DEMO_DATA", tmp_path / "gone" / "synthetic_chinchilla.csv")
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    assert "missing" in err and "regenerated" in err
    for fragment in ("fitted", "true", "rel. error", "alpha", "beta", "1e+24", "N_opt", "D_opt"):
        assert fragment in out
    assert not (tmp_path / "gone").exists()


# --- synth and listings ------------------------------------------------------------------------


def test_synth_chinchilla(capsys, tmp_path):
    code, out, err = run(capsys, "synth", "chinchilla", "--seed", "3", "--out", "c.csv")
    assert code == 0, err
    assert "72 rows" in out
    expected = tmp_path / "expected.csv"
    synthetic.write_csv(synthetic.chinchilla_like(seed=3), expected)
    assert (tmp_path / "c.csv").read_bytes() == expected.read_bytes()
    expect_error(capsys, "synth", "chinchilla", "--out", "c.csv", fragments=["c.csv", "--force"])
    assert (tmp_path / "c.csv").read_bytes() == expected.read_bytes()
    code, _, _ = run(capsys, "synth", "chinchilla", "--noise", "0", "--out", "c.csv", "--force")
    assert code == 0
    assert (tmp_path / "c.csv").read_bytes() != expected.read_bytes()


def test_synth_default_matches_committed_data(capsys, tmp_path):
    code, _, err = run(capsys, "synth", "chinchilla", "--out", "c.csv")
    assert code == 0, err
    assert (tmp_path / "c.csv").read_bytes() == cli.DEMO_DATA.read_bytes()


def test_synth_distillation(capsys, tmp_path):
    code, out, err = run(capsys, "synth", "distillation", "--noise", "0.01", "--out", "d.csv")
    assert code == 0, err
    lines = (tmp_path / "d.csv").read_text().splitlines()
    assert lines[0] == "N,D,N_T,D_T,L_T,loss"
    assert len(lines) - 1 == len(synthetic.distillation_like())


@pytest.mark.parametrize(
    "extra, fragment",
    [(["--noise", "-1"], "noise"), (["--noise", "nan"], "noise"), (["--seed", "-2"], "--seed")],
)
def test_synth_bad_options(capsys, tmp_path, extra, fragment):
    expect_error(capsys, "synth", "chinchilla", *extra, "--out", "c.csv", fragments=[fragment])
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize(
    "command, expected",
    [
        ("laws", {"chinchilla", "chinchilla_gamma", "distillation", "kaplan", "bnsl"}),
        ("recipes", {"hoffmann2022", "epoch2024", "busbridge2025"}),
        ("datasets", {"epoch-chinchilla"}),
        ("presets", {"hoffmann2022", "epoch2024", "busbridge2025", "kaplan2020"}),
    ],
)
def test_listings(capsys, command, expected):
    code, out, err = run(capsys, command)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert expected <= {line.split()[0] for line in lines}
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # name + description
    code, out, err = run(capsys, command, "--json")
    assert code == 0 and err == ""
    items = json.loads(out)
    assert isinstance(items, list) and all(isinstance(i, dict) for i in items)
    assert expected <= {i["name"] for i in items}
    assert len(items) == len(lines)


# --- compilation cache -------------------------------------------------------------------------


def test_enable_compilation_cache(monkeypatch, tmp_path):
    import jax

    calls = {}
    monkeypatch.setattr(jax.config, "update", lambda name, value: calls.__setitem__(name, value))
    monkeypatch.setenv("SLAWS_JAX_CACHE", str(tmp_path / "jc"))
    assert cli.enable_compilation_cache() == str(tmp_path / "jc")
    assert calls == {
        "jax_compilation_cache_dir": str(tmp_path / "jc"),
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    calls.clear()
    monkeypatch.delenv("SLAWS_JAX_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    cli.enable_compilation_cache()
    assert calls["jax_compilation_cache_dir"] == str(Path(tmp_path) / ".cache" / "slaws" / "jax")
    calls.clear()
    monkeypatch.setenv("SLAWS_JAX_CACHE", "")
    assert cli.enable_compilation_cache() is None and calls == {}
