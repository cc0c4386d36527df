"""Tests for slaws.synthetic: seeded data from known laws, and the committed demo data set."""

import math
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from slaws import synthetic
from slaws.data import load
from slaws.law import get_law
from slaws.presets import get_preset

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "synthetic_chinchilla.csv"
HOFFMANN = get_preset("hoffmann2022")["params"]


def law_loss(name, params, inputs):
    """exp(log_loss) in float64: what the generators use (``Law.loss`` may take a natural-scale
    form that differs in the last bit)."""
    with jax.enable_x64(True):
        x = {k: np.asarray(v) for k, v in inputs.items()}
        exact = np.asarray(jax.numpy.exp(get_law(name).log_loss(params, x)))
        np.testing.assert_allclose(np.asarray(get_law(name).loss(params, x)), exact, rtol=1e-13)
        return exact


# --- chinchilla_like ---------------------------------------------------------------------------


def test_chinchilla_like_same_seed_same_frame():
    a, b = synthetic.chinchilla_like(seed=7), synthetic.chinchilla_like(seed=7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_chinchilla_like_other_seed_other_losses():
    a, b = synthetic.chinchilla_like(seed=0), synthetic.chinchilla_like(seed=1)
    pd.testing.assert_frame_equal(a[["N", "D"]], b[["N", "D"]], check_exact=True)
    assert not np.array_equal(a["loss"], b["loss"])


def test_chinchilla_like_design():
    frame = synthetic.chinchilla_like()
    assert list(frame.columns) == ["N", "D", "loss"]
    assert len(frame) == 72
    assert all(frame[c].dtype == np.float64 for c in frame.columns)
    budgets = 6.0 * frame["N"] * frame["D"]
    expected = np.repeat(np.geomspace(6e18, 3e21, 6), 12)
    np.testing.assert_allclose(budgets, expected, rtol=1e-12)
    ratio = frame["D"] / frame["N"]
    assert 1.9 < ratio.min() < 2.1 and 190 < ratio.max() < 210
    for n in frame["N"]:  # rounded to 4 significant figures
        assert float(f"{n:.4g}") == n
    # each budget runs from the smallest model (most tokens per parameter) to the largest
    assert (np.diff(frame["N"].to_numpy().reshape(6, 12), axis=1) > 0).all()


def test_chinchilla_like_noiseless_equals_law():
    frame = synthetic.chinchilla_like(noise=0.0, seed=3)
    exact = law_loss("chinchilla", HOFFMANN, {"N": frame["N"], "D": frame["D"]})
    np.testing.assert_array_equal(frame["loss"].to_numpy(), exact)
    p = HOFFMANN
    closed = p["E"] + p["A"] / frame["N"] ** p["alpha"] + p["B"] / frame["D"] ** p["beta"]
    np.testing.assert_allclose(frame["loss"], closed, rtol=1e-12)


def test_chinchilla_like_noise_is_lognormal_with_given_sd():
    frame = synthetic.chinchilla_like(n_models=40, n_budgets=25, noise=0.05, seed=0)
    exact = law_loss("chinchilla", HOFFMANN, {"N": frame["N"], "D": frame["D"]})
    z = np.log(frame["loss"].to_numpy() / exact) / 0.05
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1


def test_chinchilla_like_other_law_and_dict_params():
    params = dict(get_preset("busbridge2025-supervised")["params"])
    frame = synthetic.chinchilla_like(law="chinchilla_gamma", params=params, noise=0.0)
    exact = law_loss("chinchilla_gamma", params, {"N": frame["N"], "D": frame["D"]})
    np.testing.assert_array_equal(frame["loss"].to_numpy(), exact)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"noise": -0.1}, "noise"),
        ({"noise": math.nan}, "noise"),
        ({"params": "kaplan2020"}, "preset 'kaplan2020' is for law 'kaplan'"),
        ({"params": {"E": 1.0, "A": 1.0}}, "lack"),
        ({"params": {**HOFFMANN, "Z": 1.0}}, "no parameter 'Z'"),
        ({"law": "bnsl", "params": "caballero2023-simulation"}, "does not take input 'N'"),
        ({"n_models": 0}, "n_models"),
    ],
)
def test_chinchilla_like_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=".") as info:
        synthetic.chinchilla_like(**kwargs)
    assert fragment in str(info.value)


# --- the committed data set --------------------------------------------------------------------


def test_write_default_reproduces_committed_file(tmp_path):
    assert COMMITTED.is_file(), "data/synthetic_chinchilla.csv is missing"
    out = synthetic.write_default(tmp_path / "synthetic_chinchilla.csv")
    # Values, not bytes: another jax/XLA release may round the last bit of a logaddexp differently.
    fresh, committed = pd.read_csv(out), pd.read_csv(COMMITTED)
    assert list(fresh.columns) == list(committed.columns) == ["N", "D", "loss"]
    np.testing.assert_allclose(fresh.to_numpy(), committed.to_numpy(), rtol=1e-13, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_chinchilla.csv"]


def test_committed_file_round_trips_exactly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = load(COMMITTED)
    pd.testing.assert_frame_equal(
        frame.reset_index(drop=True), synthetic.chinchilla_like(seed=0), check_exact=True
    )


def test_write_csv_refuses_existing_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("keep me\n")
    frame = synthetic.chinchilla_like(n_models=2, n_budgets=2)
    with pytest.raises(FileExistsError):
        synthetic.write_csv(frame, path)
    assert path.read_text() == "keep me\n"
    synthetic.write_csv(frame, path, force=True)
    assert path.read_text().startswith("N,D,loss\n")
    assert "\r" not in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


# --- distillation_like -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distill():
    return synthetic.distillation_like()


def test_distillation_like_shape_and_values(distill):
    assert list(distill.columns) == ["N", "D", "N_T", "D_T", "L_T", "loss"]
    assert 650 <= len(distill) <= 750  # the paper has 697 runs
    values = distill.to_numpy()
    assert values.dtype == np.float64
    assert np.isfinite(values).all() and (values > 0).all()
    assert not distill.duplicated().any()
    assert distill["D"].max() <= 5.12e11 * (1 + 1e-12)


def test_distillation_like_experiments(distill):
    fixed_m_teacher = np.isclose(distill["D_T"] / distill["N_T"], 20.0)
    student_m = distill["D"] / distill["N"]
    teacher_sizes = set(distill.loc[fixed_m_teacher, "N_T"])
    assert teacher_sizes == {n * 1e9 for n in (0.546, 0.9755, 1.821, 2.718, 4.823, 7.747)}
    for m in (20, 40, 80, 160, 320):
        assert (fixed_m_teacher & np.isclose(student_m, m)).sum() >= 30
    # student IsoFLOP profiles (C_S = 6 N D) at the four budgets
    c_s = 6 * distill["N"] * distill["D"]
    for c in (3e19, 1e20, 3e20, 1e21):
        assert (fixed_m_teacher & np.isclose(c_s, c)).sum() >= 6 * 5
    # IsoFLOP teachers
    c_t = 6 * distill["N_T"] * distill["D_T"]
    for c in (3e19, 1e20, 3e20, 1e21):
        assert (~fixed_m_teacher & np.isclose(c_t, c)).sum() >= 4 * 5


def test_distillation_like_is_seeded(distill):
    pd.testing.assert_frame_equal(distill, synthetic.distillation_like(seed=0), check_exact=True)
    other = synthetic.distillation_like(seed=1)
    assert not np.array_equal(other["loss"], distill["loss"])
    assert not np.array_equal(other["L_T"], distill["L_T"])


def test_distillation_like_teacher_loss_shared_per_teacher(distill):
    per_teacher = distill.groupby(["N_T", "D_T"])["L_T"].nunique()
    assert (per_teacher == 1).all()


def test_distillation_like_noiseless_equals_laws():
    frame = synthetic.distillation_like(noise=0.0)
    preset = get_preset("busbridge2025")["params"]
    supervised = {k: preset[k] for k in get_law("chinchilla_gamma").param_names}
    teacher = law_loss("chinchilla_gamma", supervised, {"N": frame["N_T"], "D": frame["D_T"]})
    np.testing.assert_array_equal(frame["L_T"].to_numpy(), teacher)
    student = law_loss("distillation", preset, {k: frame[k] for k in ("N", "D", "L_T")})
    np.testing.assert_array_equal(frame["loss"].to_numpy(), student)
    # the law never lets the student beat the teacher; equality only where the student term
    # underflows next to L_T
    assert (frame["loss"] >= frame["L_T"]).all()
    assert (frame["loss"] > frame["L_T"]).mean() > 0.99


# --- curve_like --------------------------------------------------------------------------------


def test_curve_like():
    params = get_preset("caballero2023-simulation")["params"]
    x = np.geomspace(1.0, 1e6, 30)
    clean = synthetic.curve_like("bnsl", params, x, noise=0.0, seed=0)
    assert list(clean.columns) == ["x", "loss"]
    np.testing.assert_array_equal(clean["x"], x)
    np.testing.assert_array_equal(clean["loss"], law_loss("bnsl", params, {"x": x}))
    a = synthetic.curve_like("bnsl", params, x, noise=0.02, seed=4)
    b = synthetic.curve_like("bnsl", "caballero2023-simulation", x, noise=0.02, seed=4)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = synthetic.curve_like("bnsl", params, x, noise=0.02, seed=5)
    assert not np.array_equal(a["loss"], c["loss"])


@pytest.mark.parametrize(
    "law, x, fragment",
    [
        ("bnsl", [1.0, -2.0], "x must be"),
        ("bnsl", [], "x must be"),
        ("bnsl", [1.0, math.inf], "x must be"),
        ("chinchilla", [1.0, 2.0], "does not take input 'x'"),
    ],
)
def test_curve_like_bad_arguments(law, x, fragment):
    params = get_preset("caballero2023-simulation")["params"] if law == "bnsl" else dict(HOFFMANN)
    with pytest.raises(ValueError) as info:
        synthetic.curve_like(law, params, x, noise=0.0, seed=0)
    assert fragment in str(info.value)
