"""Every command, run twice with the same seed, prints the same JSON and writes the same bytes.

Each run is in its own directory, in this process (the second run reuses the first's compiled
programs, so only the first costs compilation). The one thing allowed to differ is wall time:
the fields named in ``WALL_TIME`` in JSON, printed or written (``seconds`` of ``slaws fit --json``
is part of its contract), and the time column of ``slaws bench``'s markdown, which the comparison
sets aside by name. Every other file (CSV, netCDF, PNG) must be byte-identical.
"""

import json
import warnings

import pytest

from slaws import bayes
from slaws.cli import main

WALL_TIME = {"seconds", "evaluations_per_second"}

# Run in order in one directory; later commands read what earlier ones wrote. Fits of the
# distillation law take the same path as these (20 s on Busbridge's 690-run design: left out);
# NUTS's draws under one seed are compared in tests/test_bayes.py::test_same_seed_same_draws, and
# its file goes through the writer the bootstrap's does; ``compare`` (NUTS for every law, twice)
# in tests/test_compare.py.
COMMANDS = [
    ["synth", "chinchilla", "--seed", "3", "--out", "runs.csv"],
    ["synth", "distillation", "--seed", "3", "--out", "distill.csv"],
    ["fit", "runs.csv", "--law", "chinchilla", "--json", "--out", "point.json"],
    ["fit", "runs.csv", "--law", "chinchilla", "--recipe", "epoch2024", "--json"],
    [
        "fit",
        "runs.csv",
        "--law",
        "chinchilla",
        "--method",
        "bootstrap",
        "--draws",
        "60",
        "--seed",
        "7",
        "--json",
        "--out",
        "boot.nc",
    ],
    ["forecast", "boot.nc", "--at", "N=1e9:7e10,D=2e10:1.4e12", "--seed", "1", "--json"],
    ["forecast", "boot.nc", "--at", "runs.csv", "--json"],
    ["next-run", "boot.nc", "--candidates", "runs.csv", "--target", "optimal_N@1e25", "--json"],
    [
        "optimal",
        "--law",
        "chinchilla",
        "--params",
        "boot.nc",
        "--compute",
        "1e22",
        "1e24",
        "--json",
        "--out",
        "optimal.json",
    ],
    [
        "optimal",
        "--law",
        "chinchilla",
        "--params",
        "epoch2024",
        "--sample",
        "100",
        "--seed",
        "1",
        "--compute",
        "1e23",
        "--json",
    ],
    [
        "distill",
        "--params",
        "busbridge2025",
        "--student",
        "1e9",
        "3e9",
        "--compute",
        "1e21",
        "1e23",
        "--sample",
        "40",
        "--seed",
        "2",
        "--json",
        "--out",
        "distill.json",
    ],
    [
        "grid",
        "--law",
        "chinchilla",
        "--params",
        "boot.nc",
        "--axis",
        "N=1e8:1e12:40:log",
        "--axis",
        "D=1e9:1e13:30:log",
        "--stats",
        "mean,sd,q05,q95",
        "--below",
        "2.3",
        "--json",
        "--quiet",
        "--out",
        "grid.nc",
    ],
    ["demo", "--json", "--quiet"],
    [
        "bench",
        "--quick",
        "--datasets",
        "bnsl-4digit",
        "--methods",
        "slaws-huber",
        "scipy-curve_fit",
        "--seed",
        "1",
        "--json",
        "--quiet",
        "--out-dir",
        "bench",
    ],
    ["laws", "--json"],
    ["recipes", "--json"],
    ["presets", "--json"],
    ["datasets", "--json"],
]


def _names(command):
    return " ".join(command[:2])


def _without_wall_time(value):
    if isinstance(value, dict):
        return {k: _without_wall_time(v) for k, v in value.items() if k not in WALL_TIME}
    if isinstance(value, list):
        return [_without_wall_time(v) for v in value]
    return value


def _last_json(printed):
    """The JSON a command printed (the last line, or all of it when indented)."""
    try:
        return json.loads(printed)
    except json.JSONDecodeError:
        return json.loads(printed.splitlines()[-1])


def _run_all(directory, capsys, monkeypatch):
    directory.mkdir()
    monkeypatch.chdir(directory)
    printed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)  # short chains, on purpose
        for command in COMMANDS:
            code = main(command)
            out = capsys.readouterr().out
            assert code == 0, (command, out)
            printed.append(out)
    files = {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    return printed, files


def _comparable(name, data):
    """A file's bytes; a JSON file's content without wall times, and ``slaws bench``'s markdown
    without its time columns."""
    if name.endswith(".json"):
        return _without_wall_time(json.loads(data))
    if name.startswith("bench/") and name.endswith(".md"):
        return _without_time_columns(data.decode())
    return data


def _without_time_columns(markdown):
    """Markdown tables without their ``seconds`` columns."""
    lines, drop = [], None
    for line in markdown.splitlines():
        cells = line.split("|")
        if not line.startswith("|"):
            drop = None
        elif drop is None:
            drop = [i for i, c in enumerate(cells) if c.strip() in WALL_TIME]
        lines.append([c for i, c in enumerate(cells) if i not in (drop or [])])
    return lines


def test_every_command_twice_gives_the_same_output(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    first, first_files = _run_all(tmp_path / "a", capsys, monkeypatch)
    second, second_files = _run_all(tmp_path / "b", capsys, monkeypatch)
    for command, a, b in zip(COMMANDS, first, second, strict=True):
        if "--json" in command:
            a, b = (_without_wall_time(_last_json(x)) for x in (a, b))
        assert a == b, _names(command)
    assert sorted(first_files) == sorted(second_files)
    assert len(first_files) >= 10
    for name, data in first_files.items():
        assert _comparable(name, data) == _comparable(name, second_files[name]), name
