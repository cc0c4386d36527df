"""Property-based tests (hypothesis) on laws, fits, allocations and grids.

Every example evaluates batches of one fixed shape, so one compilation serves all of a property's
examples. The ``slaws`` hypothesis profile (tests/conftest.py) derandomizes the search, so CI
runs the same examples every time; ``HYPOTHESIS_PROFILE=explore`` searches afresh. The number of
examples per property is reported in docs/hardening.md.
"""

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slaws
from slaws import allocation, grid, synthetic
from slaws.presets import get_preset

BATCH = 64  # points per example: one compiled shape per law and dtype

PRESET_FOR = {
    "chinchilla": "epoch2024",
    "chinchilla_gamma": "busbridge2025-supervised",
    "kaplan": "kaplan2020",
    "data_constrained": "muennighoff2023",
    "distillation": "busbridge2025",
}


def _scaled_preset(law_name, factors):
    """The preset's parameters, each multiplied by its factor (a law near a published one)."""
    law = slaws.get_law(law_name)
    base = get_preset(PRESET_FOR[law_name])["params"]
    return {p: base[p] * f for p, f in zip(law.param_names, factors, strict=True)}


def _factors(law_name):
    return st.lists(
        st.floats(0.8, 1.25),
        min_size=len(slaws.get_law(law_name).param_names),
        max_size=len(slaws.get_law(law_name).param_names),
    )


def _log_uniform(lo, hi):
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)


def _points(lo, hi):
    """BATCH values, log-uniform in [lo, hi], as a sorted-free numpy array."""
    return st.lists(_log_uniform(lo, hi), min_size=BATCH, max_size=BATCH).map(np.array)


def _inputs(law_name, n, d, rng_columns):
    x = {"N": n, "D": d}
    if law_name == "data_constrained":
        x["U"] = d * rng_columns["U"]  # unique tokens: a share of D
    if law_name == "distillation":
        x["L_T"] = rng_columns["L_T"]
    return x


_LOSS = {}


def _loss(law_name, dtype):
    """The jitted natural-scale loss of a law, once per law and dtype."""
    if (law_name, dtype) not in _LOSS:
        law = slaws.get_law(law_name)
        _LOSS[law_name, dtype] = jax.jit(law.loss)
    return _LOSS[law_name, dtype]


def _evaluate(law_name, params, inputs, dtype):
    with jax.enable_x64(dtype == "float64"):
        p = {k: np.asarray(v, dtype) for k, v in params.items()}
        x = {k: np.asarray(v, dtype) for k, v in inputs.items()}
        return np.asarray(_loss(law_name, dtype)(p, x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("law_name", sorted(PRESET_FOR))
@settings(max_examples=40)
@given(data=st.data())
def test_loss_is_finite_positive_and_never_rises_with_n_or_d(law_name, dtype, data):
    """Over N in [1e3, 1e15] and D in [1e3, 1e17] (the ranges laws must survive), for laws near
    a published fit: the loss is finite and positive, and multiplying N or D by a factor above 1
    never raises it (in float32 the gain can round to nothing at the largest scales, so the
    check is "never rises", in both dtypes)."""
    params = _scaled_preset(law_name, data.draw(_factors(law_name), "factors"))
    n = data.draw(_points(1e3, 1e15), "N")
    d = data.draw(_points(1e3, 1e17), "D")
    extra = {
        "U": data.draw(st.floats(0.01, 1.0), "U share"),
        "L_T": data.draw(st.floats(1.6, 3.5), "teacher loss"),
    }
    k = data.draw(st.floats(1.01, 100.0), "factor")
    base = _evaluate(law_name, params, _inputs(law_name, n, d, extra), dtype)
    more_n = _evaluate(
        law_name, params, _inputs(law_name, np.minimum(n * k, 1e15), d, extra), dtype
    )
    more_d = _evaluate(
        law_name, params, _inputs(law_name, n, np.minimum(d * k, 1e17), extra), dtype
    )
    for values in (base, more_n, more_d):
        assert values.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(values)) and np.all(values > 0), (params, values)
    assert np.all(more_n <= base), (params, n[more_n > base], d[more_n > base])
    if law_name != "data_constrained":  # more tokens of the same unique data: see below
        assert np.all(more_d <= base), (params, n[more_d > base], d[more_d > base])


@settings(max_examples=30)
@given(data=st.data())
def test_data_constrained_loss_never_rises_with_unique_data_or_epochs(data):
    """Muennighoff et al.'s law: more unique tokens at the same total lowers the loss, and more
    epochs of the same unique data never raise it."""
    params = _scaled_preset("data_constrained", data.draw(_factors("data_constrained"), "f"))
    n, u = data.draw(_points(1e6, 1e13), "N"), data.draw(_points(1e8, 1e13), "U")
    epochs = data.draw(st.floats(1.0, 50.0), "epochs")
    k = data.draw(st.floats(1.01, 10.0), "factor")

    def loss(d, u):
        return _evaluate("data_constrained", params, {"N": n, "D": d, "U": u}, "float64")

    assert np.all(loss(u * epochs * k, u) <= loss(u * epochs, u))
    assert np.all(loss(u * epochs * k, u * k) <= loss(u * epochs * k, u))


@pytest.fixture(scope="module")
def runs():
    frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005, seed=3)
    reference = slaws.fit("chinchilla", frame, grid=GRID)
    return frame, reference


GRID = {"A": [300.0, 1000.0], "B": [300.0, 1000.0]}


@settings(max_examples=10)
@given(order=st.permutations(range(40)))
def test_fit_does_not_depend_on_row_order(runs, order):
    frame, reference = runs
    result = slaws.fit("chinchilla", frame.iloc[list(order)], grid=GRID)
    assert result.status == "converged"
    for name, value in reference.params.items():
        assert result.params[name] == pytest.approx(value, rel=1e-6), name
    assert result.objective == pytest.approx(reference.objective, rel=1e-9)


@settings(max_examples=25)
@given(
    budgets=st.lists(_log_uniform(1e18, 1e27), min_size=1, max_size=4),
    factors=_factors("chinchilla"),
    flops=st.sampled_from(["6ND", "busbridge"]),
)
def test_compute_optimal_spends_each_budget_exactly(budgets, factors, flops):
    from slaws.flops import get_flops

    params = _scaled_preset("chinchilla", factors)
    table = allocation.compute_optimal("chinchilla", params, budgets, flops=flops)
    ok = table["status"] == "ok"
    assert ok.any(), table
    log_forward = get_flops(flops)
    with jax.enable_x64(True):
        spent = 3 * np.exp(np.asarray(log_forward(np.log(table["N"].to_numpy())))) * table["D"]
    np.testing.assert_allclose(spent[ok], table["compute"][ok], rtol=1e-9)


@settings(max_examples=15)
@given(
    budget=_log_uniform(1e20, 1e26),
    student=_log_uniform(1e8, 3e10),
    scenario=st.sampled_from(sorted(allocation.SCENARIOS)),
)
def test_distillation_allocation_spends_the_budget_exactly(budget, student, scenario):
    """Where a plan exists its FLOPs (Busbridge et al.'s Eq. 9) are the budget, and its shares
    add up to one; where none does the row says so."""
    from slaws import flops

    row = allocation.distill("busbridge2025", [student], [budget], scenarios=scenario).iloc[0]
    if row["status"] == "infeasible":
        assert np.isnan(row["D_S"]), row
        return
    assert row["status"] == "ok", row
    shares = row[["frac_student", "frac_teacher_inference", "frac_teacher_pretraining"]]
    assert float(shares.sum()) == pytest.approx(1.0, rel=1e-9)
    with jax.enable_x64(True):
        cost = flops.distillation_cost(
            "busbridge",
            student,
            row["D_S"],
            row["N_T"],
            row["D_T"],
            *allocation.SCENARIOS[scenario],
        )
    assert float(cost) == pytest.approx(budget, rel=1e-9)


@settings(max_examples=12)
@given(
    n_range=st.tuples(st.floats(6.0, 9.0), st.floats(9.5, 13.0)),
    d_range=st.tuples(st.floats(7.0, 10.0), st.floats(10.5, 14.0)),
    seed=st.integers(0, 2**16),
)
def test_grid_statistics_equal_direct_evaluation(n_range, d_range, seed):
    """Mean and sd equal NumPy's over the same draws; each quantile's count of draws at or
    below it is within the rank tolerance of its level."""
    from slaws.allocation import parameter_draws

    draws = parameter_draws("epoch2024", slaws.get_law("chinchilla"), sample=300, seed=seed)
    axes = [
        grid.Axis.logspace("N", 10 ** n_range[0], 10 ** n_range[1], 7),
        grid.Axis.logspace("D", 10 ** d_range[0], 10 ** d_range[1], 5),
    ]
    ds = grid.evaluate("chinchilla", draws, axes, stats="mean,sd,q05,q95", dtype="float64")
    n = ds["N"].values[None, :, None]
    d = ds["D"].values[None, None, :]
    p = {k: v[:, None, None] for k, v in draws.items()}
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    np.testing.assert_allclose(ds["loss"].sel(stat="mean"), loss.mean(0), rtol=1e-10)
    np.testing.assert_allclose(ds["loss"].sel(stat="sd"), loss.std(0), rtol=1e-6, atol=1e-12)
    tol = max(ds.attrs.get("quantile_tol", 2e-3), 2 / 299)
    for stat, level in (("q05", 0.05), ("q95", 0.95)):
        share = (loss <= ds["loss"].sel(stat=stat).values[None]).mean(0)
        assert np.all(np.abs(share - level) <= tol + 1 / 300), (stat, share)
