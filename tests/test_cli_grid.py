"""`slaws grid`: the netCDF it writes, its JSON summary, one-line errors, no overwriting."""

import json

import numpy as np
import pytest
import xarray as xr
from cli_support import expect_error, isolated, run  # noqa: F401

GRID = ["--axis", "N=1e8:1e12:30:log", "--axis", "D=1e9:1e13:20:log"]
HOFFMANN = ["grid", "--law", "chinchilla", "--params", "hoffmann2022"]


def test_grid_writes_netcdf_and_a_json_summary(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "grid",
        "--law",
        "chinchilla",
        "--params",
        "epoch2024",
        "--sample",
        "200",
        "--seed",
        "1",
        *GRID,
        "--stats",
        "mean,sd,q05,q95",
        "--below",
        "2.3",
        "--out",
        "g.nc",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["points"] == 600 and summary["draws"] == 200
    assert summary["evaluations"] == 120_000
    assert summary["axes"] == {"N": 30, "D": 20}
    assert summary["stats"] == ["mean", "sd", "q05", "q95"]
    assert set(summary["quantile_max_rank_error"]) == {"q05", "q95"}
    assert "Traceback" not in err and "--sample 200" in err  # the approximation is stated
    with xr.open_dataset(tmp_path / "g.nc") as ds:
        assert ds.loss.dims == ("stat", "N", "D")
        assert list(ds.stat.values) == ["mean", "sd", "q05", "q95"]
        assert ds.p_below.dims == ("threshold", "N", "D")
        q05, mean, q95 = (ds.loss.sel(stat=s).values for s in ("q05", "mean", "q95"))
        assert np.all(q05 <= mean) and np.all(mean <= q95)
        assert json.loads(ds.attrs["slaws"])["law"] == "chinchilla"
    assert not (tmp_path / "g.nc.parts").exists()


def test_grid_same_seed_same_file(capsys, tmp_path):
    args = ["grid", "--law", "chinchilla", "--params", "epoch2024", "--sample", "50", *GRID]
    assert run(capsys, *args, "--out", "a.nc", "--quiet")[0] == 0
    assert run(capsys, *args, "--out", "b.nc", "--quiet")[0] == 0
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)


def test_grid_isoflop_argmin_table(capsys):
    code, out, err = run(
        capsys,
        "grid",
        "--law",
        "chinchilla",
        "--params",
        "hoffmann2022",
        "--axis",
        "C=1e21,1e23",
        "--axis",
        "N=1e7:1e13:200:log",
        "--argmin",
        "N",
        "--stats",
        "mean",
        "--out",
        "iso.nc",
        "--quiet",
    )
    assert code == 0, err
    assert "C 2 x N 200 = 400 points x 1 draws" in out
    with xr.open_dataset("iso.nc") as ds:
        n_opt = ds.N_opt.sel(stat="mean").values
        assert ds.N_opt.dims == ("stat", "C")
    # Hoffmann et al.'s law: N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A/(beta B))^(1/(a+b))
    a, b, A, B = 0.34, 0.28, 406.4, 410.7
    g = (a * A / (b * B)) ** (1 / (a + b))
    np.testing.assert_allclose(n_opt, g * (np.array([1e21, 1e23]) / 6) ** (b / (a + b)), rtol=2e-3)


def test_grid_never_overwrites_without_force(capsys, tmp_path):
    (tmp_path / "g.nc").write_text("keep")
    expect_error(capsys, *HOFFMANN, *GRID, "--out", "g.nc", fragments=("exists", "--force"))
    assert (tmp_path / "g.nc").read_text() == "keep"
    code, _, err = run(capsys, *HOFFMANN, *GRID, "--out", "g.nc", "--force", "--quiet")
    assert code == 0, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--axis", "N=1e8:1e12:lots:log", "--axis", "D=1e9"], "axis 'N=1e8:1e12:lots:log'"),
        (["--axis", "N=1e8:1e12:5:log"], "needs axes for D"),
        (["--axis", "N=1e8,1e9", "--axis", "D=0,1e9"], "positive"),
        (GRID + ["--stats", "mean,median"], "unknown statistic 'median'"),
        (GRID + ["--argmin", "C"], "argmin axis 'C'"),
        (GRID + ["--max-memory", "lots"], "memory 'lots'"),
        (GRID + ["--max-memory", "100B"], "raise --max-memory"),
        (GRID + ["--quantile-tol", "0.9"], "quantile tolerance"),
        (GRID + ["--seed", "3"], "--seed is the seed of --sample"),
    ],
)
def test_grid_bad_input_is_one_line(capsys, tmp_path, args, fragment):
    expect_error(capsys, *HOFFMANN, *args, "--out", "g.nc", fragments=(fragment,))
    assert not (tmp_path / "g.nc").exists()


def test_grid_unknown_law_and_params(capsys):
    expect_error(
        capsys,
        "grid",
        "--law",
        "chinchila",
        "--params",
        "hoffmann2022",
        *GRID,
        "--out",
        "g.nc",
        fragments=("did you mean 'chinchilla'",),
    )
    expect_error(
        capsys,
        "grid",
        "--law",
        "chinchilla",
        "--params",
        "nope.nc",
        *GRID,
        "--out",
        "g.nc",
        fragments=("--params nope.nc",),
    )
