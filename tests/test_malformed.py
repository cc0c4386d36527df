"""The malformed-input catalogue: every entry point, given bad input, answers with one line that
names what is wrong and where, exits 2 without a traceback, and writes or overwrites nothing.
``docs/malformed_inputs.md`` is this table with the message each case prints
(``python tests/test_malformed.py`` rewrites it; each case fails when its documented message is
not the one it prints)."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_support import isolated, run  # noqa: F401  (isolated: autouse)

DOC = Path(__file__).resolve().parents[1] / "docs" / "malformed_inputs.md"
GOOD = "N,D,loss\n" + "".join(
    f"{n:g},{20 * n:g},{3.2 - 0.15 * i:.2f}\n"
    for i, n in enumerate([1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8])
)


@dataclass(frozen=True)
class Case:
    """``argv`` run in a fresh directory holding ``files``; ``fragments`` must appear in the one
    error line. ``out``: a file the command would write, which must not appear (or, when it is
    in ``files``, must keep its bytes)."""

    id: str
    what: str
    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    files: dict = field(default_factory=dict)
    out: str | None = None


def _netcdf() -> bytes:
    """A small valid netCDF file that slaws did not write."""
    import io

    import xarray as xr

    buffer = io.BytesIO()
    xr.Dataset({"alpha": ("draw", [0.3, 0.31, 0.32])}).to_netcdf(buffer, engine="h5netcdf")
    return buffer.getvalue()


FIT = ("fit", "runs.csv", "--law", "chinchilla", "--out", "fit.json")
C = [
    # --- data files ---------------------------------------------------------------------------
    Case(
        "missing-column",
        "a required column is absent",
        FIT,
        ("runs.csv", "column 'N'"),
        {"runs.csv": "params,D,loss\n1e8,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "misspelled-column",
        "a column name is misspelled",
        FIT,
        ("runs.csv", "column 'D'", "--columns"),
        {"runs.csv": "N,Dtokens,loss\n1e8,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "text-cell",
        "a cell is not a number",
        FIT,
        ("runs.csv", "column 'D'", "row 2", "'abc'"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n1e8,abc,3.0\n"},
        "fit.json",
    ),
    Case(
        "unit-suffix",
        "mixed units: a size written as 7B",
        FIT,
        ("runs.csv", "column 'N'", "row 2", "'7B'"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n7B,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "nan-cell",
        "NaN loss",
        FIT,
        ("runs.csv", "column 'loss'", "row 2"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n1e8,2e9,nan\n"},
        "fit.json",
    ),
    Case(
        "empty-cell",
        "an empty cell",
        FIT,
        ("runs.csv", "column 'loss'", "row 2"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n1e8,2e9,\n"},
        "fit.json",
    ),
    Case(
        "inf-cell",
        "an infinite size",
        FIT,
        ("runs.csv", "column 'N'", "row 1", "not finite"),
        {"runs.csv": "N,D,loss\ninf,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "zero-size",
        "N = 0",
        FIT,
        ("runs.csv", "column 'N'", "row 1", "not > 0"),
        {"runs.csv": "N,D,loss\n0,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "negative-tokens",
        "D < 0",
        FIT,
        ("runs.csv", "column 'D'", "row 1", "not > 0"),
        {"runs.csv": "N,D,loss\n1e8,-2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "zero-loss",
        "loss = 0 (log loss undefined)",
        FIT,
        ("runs.csv", "column 'loss'", "row 2", "not > 0"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n2e8,3e9,0\n"},
        "fit.json",
    ),
    Case("empty-file", "an empty file", FIT, ("runs.csv", "empty"), {"runs.csv": ""}, "fit.json"),
    Case(
        "header-only",
        "a header and no rows",
        FIT,
        ("runs.csv",),
        {"runs.csv": "N,D,loss\n"},
        "fit.json",
    ),
    Case(
        "single-row",
        "one run for a five-parameter law",
        FIT,
        ("runs.csv", "1", "5"),
        {"runs.csv": "N,D,loss\n1e8,2e9,3.0\n"},
        "fit.json",
    ),
    Case(
        "missing-file",
        "the file does not exist",
        ("fit", "nope.csv", "--law", "chinchilla"),
        ("nope.csv",),
    ),
    Case(
        "binary-file",
        "a Parquet file that is not Parquet",
        ("fit", "runs.parquet", "--law", "chinchilla"),
        ("runs.parquet",),
        {"runs.parquet": b"\x00\x01garbage\xff" * 10},
    ),
    Case(
        "bad-columns-map",
        "--columns names a source column that is absent",
        ("fit", "runs.csv", "--law", "chinchilla", "--columns", "N=params"),
        ("params",),
        {"runs.csv": GOOD},
    ),
    Case(
        "malformed-columns-map",
        "--columns without '='",
        ("fit", "runs.csv", "--law", "chinchilla", "--columns", "N:params"),
        ("--columns",),
        {"runs.csv": GOOD},
    ),
    # --- names and options --------------------------------------------------------------------
    Case(
        "unknown-law",
        "a misspelled law",
        ("fit", "runs.csv", "--law", "chinchila"),
        ("unknown law 'chinchila'", "chinchilla"),
        {"runs.csv": GOOD},
    ),
    Case(
        "unknown-recipe",
        "a misspelled recipe",
        ("fit", "runs.csv", "--law", "chinchilla", "--recipe", "epoch"),
        ("unknown recipe", "epoch2024"),
        {"runs.csv": GOOD},
    ),
    Case(
        "unknown-dataset",
        "a registered dataset's name misspelled",
        ("fit", "epoch-chinchila", "--law", "chinchilla"),
        ("epoch-chinchila",),
    ),
    Case(
        "conflicting-options",
        "a recipe and an objective that contradicts it",
        ("fit", "runs.csv", "--recipe", "epoch2024", "--objective", "squared"),
        ("conflicting options",),
        {"runs.csv": GOOD},
    ),
    Case(
        "negative-delta",
        "a Huber delta <= 0",
        ("fit", "runs.csv", "--law", "chinchilla", "--delta", "-1"),
        ("delta",),
        {"runs.csv": GOOD},
    ),
    Case(
        "fix-unknown-parameter",
        "--fix names no parameter of the law",
        ("fit", "runs.csv", "--law", "chinchilla", "--fix", "gamma=1"),
        ("gamma",),
        {"runs.csv": GOOD},
    ),
    Case(
        "existing-out",
        "--out exists and --force is not given",
        FIT,
        ("fit.json", "--force"),
        {"runs.csv": GOOD, "fit.json": "keep me\n"},
        "fit.json",
    ),
    # --- fit files ----------------------------------------------------------------------------
    Case(
        "fit-file-missing",
        "the posterior file does not exist",
        ("forecast", "fit.nc", "--at", "N=7e10,D=1.4e12"),
        ("fit.nc",),
    ),
    Case(
        "fit-file-garbage",
        "the posterior file is not netCDF",
        ("forecast", "fit.nc", "--at", "N=7e10,D=1.4e12"),
        ("fit.nc",),
        {"fit.nc": b"not a netcdf file\n" * 4},
    ),
    Case(
        "fit-file-truncated",
        "a netCDF file cut short",
        ("forecast", "fit.nc", "--at", "N=7e10,D=1.4e12"),
        ("fit.nc",),
        {"fit.nc": "truncated"},
    ),
    Case(
        "fit-file-foreign",
        "a netCDF file that is not a slaws posterior",
        ("forecast", "fit.nc", "--at", "N=7e10,D=1.4e12"),
        ("fit.nc",),
        {"fit.nc": "plain"},
    ),
    Case(
        "optimal-fit-file-garbage",
        "optimal --params names a corrupt posterior",
        (
            "optimal",
            "--law",
            "chinchilla",
            "--params",
            "fit.nc",
            "--compute",
            "1e22",
            "--out",
            "o.json",
        ),
        ("fit.nc",),
        {"fit.nc": b"\x89HDF\r\n\x1a\ngarbage"},
        "o.json",
    ),
    # --- budgets, sizes, grids ----------------------------------------------------------------
    Case(
        "negative-budget",
        "a negative FLOP budget",
        (
            "optimal",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--compute",
            "-1e22",
            "--out",
            "o.json",
        ),
        ("--compute",),
        {},
        "o.json",
    ),
    Case(
        "nan-budget",
        "a NaN FLOP budget",
        (
            "optimal",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--compute",
            "nan",
            "--out",
            "o.json",
        ),
        ("--compute",),
        {},
        "o.json",
    ),
    Case(
        "unknown-preset",
        "--params names no preset or file",
        ("optimal", "--law", "chinchilla", "--params", "epoch2025", "--compute", "1e22"),
        ("epoch2025",),
    ),
    Case(
        "preset-of-another-law",
        "a distillation preset for the Chinchilla law",
        ("optimal", "--law", "chinchilla", "--params", "busbridge2025", "--compute", "1e22"),
        ("busbridge2025",),
    ),
    Case(
        "zero-student",
        "a student of 0 parameters",
        ("distill", "--student", "0", "--compute", "1e22", "--out", "d.json"),
        ("--student",),
        {},
        "d.json",
    ),
    Case(
        "budget-below-cheapest-model",
        "a budget below the cheapest model (N = D = 1e6 costs 6e12 FLOPs)",
        (
            "optimal",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--compute",
            "1e10",
            "--out",
            "o.json",
        ),
        ("--compute 1e+10", "the cheapest costs 6e+12"),
        {},
        "o.json",
    ),
    Case(
        "student-cannot-spend-budget",
        "an impossible plan: 1e30 FLOPs on a 1e6-parameter student would need over 1e17 tokens",
        (
            "distill",
            "--student",
            "1e6",
            "--compute",
            "1e30",
            "--scenario",
            "supervised",
            "--out",
            "d.json",
        ),
        ("--student 1e+06 --compute 1e+30", "no supervised plan"),
        {},
        "d.json",
    ),
    Case(
        "unknown-scenario",
        "a misspelled distillation scenario",
        ("distill", "--student", "1e9", "--compute", "1e22", "--scenario", "best"),
        ("scenario", "best-case"),
    ),
    Case(
        "malformed-axis",
        "a grid axis that is not NAME=START:STOP:NUM",
        (
            "grid",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--axis",
            "N=1e8:abc:10",
            "--out",
            "g.nc",
        ),
        ("N=1e8:abc:10",),
        {},
        "g.nc",
    ),
    Case(
        "unknown-axis",
        "a grid axis the law does not take",
        (
            "grid",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--axis",
            "Q=1,2",
            "--out",
            "g.nc",
        ),
        ("Q",),
        {},
        "g.nc",
    ),
    Case(
        "unknown-statistic",
        "a statistic that does not exist",
        (
            "grid",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--axis",
            "N=1e8,1e9",
            "--axis",
            "D=1e9,1e10",
            "--stats",
            "mean,median2",
            "--out",
            "g.nc",
        ),
        ("median2",),
        {},
        "g.nc",
    ),
    Case(
        "bad-memory",
        "a memory budget that is not a size",
        (
            "grid",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--axis",
            "N=1e8,1e9",
            "--axis",
            "D=1e9,1e10",
            "--max-memory",
            "lots",
            "--out",
            "g.nc",
        ),
        ("lots",),
        {},
        "g.nc",
    ),
    Case(
        "grid-existing-out",
        "the grid's output exists",
        (
            "grid",
            "--law",
            "chinchilla",
            "--params",
            "epoch2024",
            "--axis",
            "N=1e8,1e9",
            "--axis",
            "D=1e9,1e10",
            "--out",
            "g.nc",
        ),
        ("g.nc", "--force"),
        {"g.nc": "keep me\n"},
        "g.nc",
    ),
    Case(
        "negative-noise",
        "synthetic data with a negative noise",
        ("synth", "chinchilla", "--noise", "-1", "--out", "s.csv"),
        ("noise",),
        {},
        "s.csv",
    ),
    Case(
        "unknown-bench-dataset",
        "a benchmark task that does not exist",
        ("bench", "--datasets", "gadre", "--out-dir", "b"),
        ("gadre",),
    ),
    Case(
        "forecast-bad-at",
        "forecast inputs that are not a grid or a CSV",
        ("forecast", "fit.nc", "--at", "N=seven"),
        ("N=seven",),
        {"fit.nc": "plain"},
    ),
]
CATALOGUE = C


# --- the Python API: DataFrames, budgets, sizes, axes, presets ----------------------------------


@dataclass(frozen=True)
class ApiCase:
    """``call`` (Python, with ``runs``, a good DataFrame, and slaws's modules in scope) raises one
    exception whose one-line message holds every fragment; ``runs`` is left as it was."""

    id: str
    what: str
    call: str
    fragments: tuple[str, ...]


API = [
    ApiCase(
        "api-nan-loss",
        "a DataFrame with a NaN loss",
        'slaws.fit("chinchilla", runs.assign(loss=runs.loss.where(runs.index != 2)))',
        ("DataFrame", "column 'loss'", "row 2"),
    ),
    ApiCase(
        "api-text-size",
        "a DataFrame with a size written as 7B",
        'slaws.fit("chinchilla", runs.astype(object).assign(N=[1e7, "7B", *runs.N[2:]]))',
        ("column 'N'", "row 1", "'7B'"),
    ),
    ApiCase(
        "api-missing-column",
        "a DataFrame without D",
        'slaws.fit("chinchilla", runs.drop(columns="D"))',
        ("missing column 'D'",),
    ),
    ApiCase(
        "api-negative-tokens",
        "a DataFrame with D < 0",
        'slaws.fit("chinchilla", runs.assign(D=-runs.D))',
        ("column 'D'", "row 0", "not > 0"),
    ),
    ApiCase(
        "api-empty-frame",
        "an empty DataFrame",
        'slaws.fit("chinchilla", runs.iloc[:0])',
        ("no data rows",),
    ),
    ApiCase(
        "api-wrong-type",
        "a list where data belong",
        'slaws.fit("chinchilla", [1.0, 2.0, 3.0])',
        ("pandas DataFrame", "not list"),
    ),
    ApiCase(
        "api-posterior-inf",
        "an infinite size given to a posterior",
        'bayes.sample("chinchilla", runs.assign(N=np.inf), method="bootstrap")',
        ("column 'N'", "inf is not finite"),
    ),
    ApiCase(
        "api-negative-budget",
        "a negative FLOP budget",
        'allocation.compute_optimal("chinchilla", "epoch2024", [1e22, -1e22])',
        ("compute budget -1e+22", "entry 1"),
    ),
    ApiCase(
        "api-nan-student",
        "a NaN student size",
        'allocation.distill("busbridge2025", [float("nan")], [1e22])',
        ("student size nan", "entry 0"),
    ),
    ApiCase(
        "api-missing-parameters",
        "parameters that do not cover the law",
        'allocation.compute_optimal("chinchilla", {"E": 1.7}, [1e22])',
        ("missing: A, B, alpha, beta",),
    ),
    ApiCase(
        "api-bad-axis",
        "a grid axis that is not a range",
        'grid.evaluate("chinchilla", "epoch2024", ["N=1e8:abc:10"])',
        ("axis 'N=1e8:abc:10'",),
    ),
    ApiCase(
        "api-unknown-law",
        "a misspelled law",
        'slaws.fit("chinchila", runs)',
        ("did you mean 'chinchilla'",),
    ),
]


def _api_error(case) -> str:
    """The one-line message ``case.call`` raises, checking that ``runs`` was left alone."""
    import numpy as np
    import pandas as pd

    import slaws
    from slaws import allocation, bayes, grid

    runs = pd.read_csv(__import__("io").StringIO(GOOD))
    before = runs.copy()
    scope = {"slaws": slaws, "allocation": allocation, "bayes": bayes, "grid": grid, "np": np}
    try:
        eval(case.call, scope | {"runs": runs})
    except (ValueError, TypeError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        message = f"{type(exc).__name__}: {text}"
    else:
        raise AssertionError(f"{case.id}: no error")
    pd.testing.assert_frame_equal(runs, before)
    return message


@pytest.mark.parametrize("case", API, ids=[c.id for c in API])
def test_bad_input_through_the_python_api_is_one_clear_error(case):
    message = _api_error(case)
    assert "\n" not in message, message
    for fragment in case.fragments:
        assert fragment in message, (fragment, message)
    assert _documented().get(case.id) == message, "stale: run python tests/test_malformed.py"


def _materialise(tmp_path, files):
    for name, content in files.items():
        path = tmp_path / name
        if content == "truncated":
            path.write_bytes(_netcdf()[:200])
        elif content == "plain":
            path.write_bytes(_netcdf())
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_malformed_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    _materialise(tmp_path, case.files)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code, out, err = run(capsys, *case.argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.startswith("slaws: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in case.fragments:
        assert fragment in err, (fragment, err)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing overwritten
    if case.out:
        assert (case.out in before) == (tmp_path / case.out).exists()
    assert _documented().get(case.id) == err.strip(), "stale: run python tests/test_malformed.py"


def test_the_catalogue_is_large_and_documented():
    ids = [c.id for c in CATALOGUE] + [c.id for c in API]
    assert len(CATALOGUE) >= 30 and len(set(ids)) == len(ids)
    assert list(_documented()) == ids


def _documented() -> dict:
    """Case id -> the message documented for it."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) == 5 and cells[0].lstrip("| ").isdigit():
            rows[cells[1]] = cells[4].rstrip(" |").strip("`").replace("\\|", "|")
    return rows


def _messages() -> dict:
    """Run every case (as the test does) and collect its error line."""
    import contextlib
    import io
    import os
    import tempfile

    from slaws import cli

    messages = {}
    home = os.getcwd()
    os.environ["SLAWS_JAX_CACHE"] = ""
    os.environ.pop("SLAWS_DATA_DIR", None)
    for case in CATALOGUE:
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            try:
                os.environ["SLAWS_CACHE_DIR"] = os.path.join(tmp, "cache")
                _materialise(Path(tmp), case.files)
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    cli.main(list(case.argv))
                messages[case.id] = err.getvalue().strip()
            finally:
                os.chdir(home)
    for case in API:
        messages[case.id] = _api_error(case)
    return messages


def render(messages: dict) -> str:
    lines = [
        "# Malformed inputs",
        "",
        "Generated by `python tests/test_malformed.py` from the catalogue its tests run. Every",
        "case exits with code 2, prints one `slaws: error:` line on stderr and no traceback, and",
        "leaves the directory as it was: nothing written, nothing overwritten.",
        "",
        "| # | case | input | command | message |",
        "|---|---|---|---|---|",
    ]
    for i, case in enumerate(CATALOGUE, 1):
        command = "slaws " + " ".join(case.argv)
        message = messages[case.id].replace("|", "\\|")
        lines.append(f"| {i} | {case.id} | {case.what} | `{command}` | `{message}` |")
    lines += [
        "",
        "## The Python API",
        "",
        "The same checks through the library: one exception with a one-line message, and the",
        "caller's DataFrame left as it was (`runs` is six good runs).",
        "",
        "| # | case | input | call | message |",
        "|---|---|---|---|---|",
    ]
    for i, case in enumerate(API, len(CATALOGUE) + 1):
        call = case.call.replace("|", "\\|")
        message = messages[case.id].replace("|", "\\|")
        lines.append(f"| {i} | {case.id} | {case.what} | `{call}` | `{message}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(_messages()), encoding="utf-8")
    print(f"wrote {DOC} ({len(CATALOGUE)} + {len(API)} cases)", file=sys.stderr)
