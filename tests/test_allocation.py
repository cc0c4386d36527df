"""Compute-optimal allocation: FLOP models against Busbridge's Table 13, supervised optima against
closed forms and brute force, distillation optima against SciPy SLSQP from many starts, the
paper's qualitative findings, and credible intervals from posterior draws."""

import math
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from slaws import allocation, flops
from slaws.law import get_law
from slaws.presets import get_preset

TABLE13 = Path(__file__).resolve().parents[1] / "data" / "busbridge2025_table13.csv"
BUSBRIDGE = get_preset("busbridge2025")["params"]


def test_busbridge_flops_reproduce_table_13():
    """F(N) = 2N (1 + sigma1 n_ctx / N^(1/3) + sigma2 n_vocab / N^(2/3)) against the "2N + sigma"
    column for every model of Table 13, within 0.5% (e.g. 103M -> 0.3398e9, 12.6B -> 27.23e9)."""
    table = pd.read_csv(TABLE13)
    with jax.enable_x64(True):
        ours = np.asarray(flops.forward("busbridge", table["N_billion"].to_numpy() * 1e9)) / 1e9
        assert float(flops.forward("6ND", 1e9)) == pytest.approx(2e9, rel=1e-12)  # C = 6ND
    np.testing.assert_allclose(ours, table["C_fwd_2N_sigma_billion"], rtol=0.005)
    custom = flops.busbridge(n_vocab=32168.0)  # App. G.4's vocabulary: 0.3400 for 103M
    assert float(np.exp(custom(math.log(0.1028e9)))) / 1e9 == pytest.approx(0.3400, rel=1e-3)


def test_log_size_inverts_the_flop_model():
    with jax.enable_x64(True):
        log_n = np.log([1e6, 1e9, 1e12, 1e15])
        log_f = flops.busbridge()(log_n)
        np.testing.assert_allclose(flops.log_size_for("busbridge", log_f), log_n, rtol=1e-12)


def test_distillation_cost_is_eq_9():
    n_s, d_s, n_t, d_t = 1e9, 2e10, 7e9, 3e11
    with jax.enable_x64(True):
        f_s, f_t = (float(flops.forward("busbridge", n)) for n in (n_s, n_t))
        for lgt, pre in allocation.SCENARIOS.values():
            cost = float(flops.distillation_cost("busbridge", n_s, d_s, n_t, d_t, lgt, pre))
            assert cost == pytest.approx(3 * f_s * d_s + f_t * (lgt * d_s + pre * 3 * d_t))


@pytest.mark.parametrize("preset", ["hoffmann2022", "epoch2024"])
def test_chinchilla_optimum_matches_the_closed_form(preset):
    """N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = G^-1 (C/6)^(alpha/(alpha+beta)),
    G = (alpha A / (beta B))^(1/(alpha+beta)), to 1e-6 relative, from 1e18 to 1e26 FLOPs."""
    p = get_preset(preset)["params"]
    compute = np.logspace(18, 26, 5)
    frame = allocation.compute_optimal("chinchilla", p, compute, flops="6ND")
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    np.testing.assert_allclose(frame["N"], g * (compute / 6) ** (b / (a + b)), rtol=1e-6)
    np.testing.assert_allclose(frame["D"], (compute / 6) ** (a / (a + b)) / g, rtol=1e-6)
    assert (frame["status"] == "ok").all()
    loss = p["E"] + p["A"] / frame["N"] ** a + p["B"] / frame["D"] ** b
    np.testing.assert_allclose(frame["loss"], loss, rtol=1e-12)


@pytest.mark.parametrize(
    "law, preset, inputs",
    [
        ("kaplan", "kaplan2020", {}),
        ("chinchilla_gamma", "busbridge2025-supervised", {}),
        ("data_constrained", "muennighoff2023", {"U": 1e11}),
    ],
)
def test_other_laws_match_brute_force(law, preset, inputs):
    """Any registered law: the gradient optimum against a dense scan of log N refined by
    SciPy's bounded scalar minimiser, under Busbridge's FLOP model."""
    p = get_preset(preset)["params"]
    law_ = get_law(law)
    compute = [1e20, 1e24]
    frame = allocation.compute_optimal(law_, p, compute, flops="busbridge", inputs=inputs)
    with jax.enable_x64(True):
        for c, n_ours, l_ours in zip(compute, frame["N"], frame["loss"], strict=True):

            def loss(log_n, c=c):
                d = c / (3 * float(flops.forward("busbridge", math.exp(log_n))))
                x = {"N": math.exp(log_n), "D": d, **inputs}
                return float(law_.log_loss(p, x))

            scan = np.linspace(math.log(1e6), math.log(min(1e17, c / 1e7)), 400)
            best = scan[np.argmin([loss(u) for u in scan])]
            ref = scipy.optimize.minimize_scalar(
                loss, bounds=(best - 0.1, best + 0.1), method="bounded", options={"xatol": 1e-10}
            )
            assert math.log(l_ours) <= ref.fun + 1e-12
            assert math.log(n_ours) == pytest.approx(ref.x, abs=1e-4)


def test_infeasible_budgets_are_data_not_errors():
    frame = allocation.compute_optimal("chinchilla", "epoch2024", [1e10, 1e22])
    assert list(frame["status"]) == ["infeasible", "ok"]
    rows = allocation.distill(students=[1e9], compute=[1e27], scenarios="best-case")
    assert rows["status"].item() == "infeasible"  # D_S = C / 3F(N_S) > 1e17


# --- distillation against SLSQP --------------------------------------------------------------


def _forward(n):
    """Busbridge's F(N) in NumPy, from the paper's constants (an independent reference)."""
    s1, s2 = (128 * 12**2) ** (-1 / 3), (128 / 12) ** (1 / 3)
    return 2 * n * (1 + s1 * 4096 / n ** (1 / 3) + s2 * 32768 / n ** (2 / 3))


def _student_loss(p, n_s, d_s, n_t, d_t):
    """Eq. 49 in NumPy."""

    def supervised(n, d):
        inner = np.logaddexp(
            np.log(p["A"]) - p["alpha"] * np.log(n), np.log(p["B"]) - p["beta"] * np.log(d)
        )
        return np.logaddexp(np.log(p["E"]), p["gamma"] * inner)

    log_t = supervised(n_t, d_t)
    gap = (log_t - supervised(n_s, d_s) - np.log(p["d1"])) / p["f1"]
    student = p["gamma_prime"] * np.logaddexp(
        np.log(p["A_prime"]) - p["alpha_prime"] * np.log(n_s),
        np.log(p["B_prime"]) - p["beta_prime"] * np.log(d_s),
    )
    rest = -p["c0"] * log_t - p["c1"] * p["f1"] * np.logaddexp(0.0, gap) + student
    return np.exp(np.logaddexp(log_t, rest))


def _slsqp(params, n_s, c, lgt, pre, starts):
    """Busbridge's method: SLSQP on (log10 D_S, log10 N_T, log10 D_T) in [6, 17] subject to
    Eq. 9 = C, from each start; the lowest successful L_S."""

    def loss(x):
        return _student_loss(params, n_s, *10.0**x)

    def budget(x):
        d_s, n_t, d_t = 10.0**x
        f_t = _forward(n_t)
        return math.log(3 * _forward(n_s) * d_s + f_t * (lgt * d_s + pre * 3 * d_t)) - math.log(c)

    best = math.inf
    for x0 in starts:
        res = scipy.optimize.minimize(
            loss,
            x0,
            method="SLSQP",
            bounds=[(6, 17)] * 3,
            constraints=[{"type": "eq", "fun": budget}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        if res.success and abs(budget(res.x)) < 1e-8:
            best = min(best, res.fun)
    return best


def test_distillation_optima_match_slsqp_from_many_starts():
    """A seeded sample of problems: the gradient optimum is within 1e-4 of the best SLSQP run
    from 27 starts, and never worse than it by more than that."""
    rng = np.random.default_rng(0)
    scenarios = ["teacher-inference", "teacher-pretraining", "teacher-pretraining-inference"]
    grid = np.stack(np.meshgrid(*[[7.0, 10.0, 13.0]] * 3, indexing="ij"), -1).reshape(-1, 3)
    with jax.enable_x64(True):
        for i in range(9):
            scenario = scenarios[i % 3]
            n_s = float(10 ** rng.uniform(8.5, 10.5))
            c = float(10 ** rng.uniform(20, 25))
            ours = allocation.distill(BUSBRIDGE, [n_s], [c], scenarios=scenario)
            ref = _slsqp(BUSBRIDGE, n_s, c, *allocation.SCENARIOS[scenario], grid)
            got = ours["student_loss"].item()
            assert got <= ref + 1e-4, (scenario, n_s, c, got, ref)
            assert got == pytest.approx(ref, abs=1e-4), (scenario, n_s, c)
            assert ours["status"].item() == "ok"


def test_allocation_spends_the_budget_exactly_and_reports_shares():
    rows = allocation.distill(BUSBRIDGE, [1e9, 1e10], [1e21, 1e24])
    costed = rows[rows["scenario"].isin(list(allocation.SCENARIOS)[1:])]
    shares = costed[["frac_student", "frac_teacher_inference", "frac_teacher_pretraining"]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    with jax.enable_x64(True):
        for row in costed.itertuples():
            cost = flops.distillation_cost(
                "busbridge",
                row.student_params,
                row.D_S,
                row.N_T,
                row.D_T,
                *allocation.SCENARIOS[row.scenario],
            )
            assert float(cost) == pytest.approx(row.compute, rel=1e-9)


# --- the paper's findings, with its coefficients ---------------------------------------------


@pytest.fixture(scope="module")
def landscape():
    students = [3e8, 1e9, 3e9, 1e10, 3e10]
    compute = np.logspace(19, 26, 15)
    return allocation.distill(BUSBRIDGE, students, compute)


def _pivot(frame, value):
    return frame.pivot_table(index="student_params", columns=["scenario", "compute"], values=value)


def test_teacher_inference_puts_teacher_tokens_at_the_upper_bound(landscape):
    """App. D.4.4: with teacher inference counted, D_T* = 1e17, the teacher heavily over-trained."""
    rows = landscape[landscape["scenario"] == "teacher-inference"]
    assert (rows["at_bound"] == "D_T").all()
    np.testing.assert_allclose(rows["D_T"], 1e17, rtol=1e-3)


def test_with_teacher_pretraining_supervised_wins_in_the_papers_range(landscape):
    """§5.3: with teacher pretraining counted, the student is never better than supervised. This
    holds for students of 1-10B from 1e21 to 1e25 FLOPs; outside (large students at tiny budgets,
    300M at 1e22, 30B at >= 1e26) Table 6's law says a distilled student wins by up to 0.4 nats:
    an extrapolation of the law (see README), not asserted here."""
    loss = _pivot(landscape, "student_loss")
    window = [c for c in loss["supervised"].columns if 1e21 <= c <= 1.01e25]
    for scenario in ("teacher-pretraining", "teacher-pretraining-inference"):
        gap = loss[scenario][window] - loss["supervised"][window]
        assert (gap.loc[1e9:1e10] > 0).all().all(), gap


def test_supervised_catches_up_with_best_case_later_for_larger_students(landscape):
    """§5.3: supervised eventually matches best-case distillation, at a compute that grows
    with N_S: 3e22 FLOPs for 1B, 1e23 for 3B, 3e24 for 10B. (The 300M student crosses at 1e23,
    later than the 1B one, by under 0.002 nats; the 30B one beyond 1e27.)"""
    loss = _pivot(landscape, "student_loss")
    gap = (loss["best-case"] - loss["supervised"]).loc[1e9:1e10]  # > 0: supervised better
    crossover = [gap.columns[np.argmax(gap.loc[n].to_numpy() > 0)] for n in gap.index]
    assert all(gap.loc[n].to_numpy()[-1] > 0 for n in gap.index)
    assert all(a < b for a, b in zip(crossover, crossover[1:], strict=False)), crossover


def test_pretraining_and_inference_teacher_is_a_bit_larger_and_plateaus(landscape):
    """§5.3: N_T* rises until slightly larger than N_S, then plateaus (and even decreases)."""
    rows = landscape[landscape["scenario"] == "teacher-pretraining-inference"]
    for n_s in (1e9, 1e10):
        teacher = rows[rows["student_params"] == n_s].set_index("compute")["N_T"]
        high = teacher[teacher.index >= 1e24]
        assert (high > n_s).all() and (high < 6 * n_s).all(), teacher
        assert high.max() / high.min() < 2.0  # plateau across two decades of compute
        assert teacher.iloc[0] < n_s  # small budgets: a smaller teacher


def test_table_3_allocation_trends(landscape):
    """Table 3 (pretraining + inference): small student, small compute -> mostly teacher
    pretraining; small student, large compute -> student training and teacher inference about
    even, much less pretraining; large student, large compute -> all three comparable."""
    rows = landscape[landscape["scenario"] == "teacher-pretraining-inference"].set_index(
        ["student_params", "compute"]
    )
    shares = ["frac_student", "frac_teacher_inference", "frac_teacher_pretraining"]
    small_low = rows.loc[1e9].loc[lambda f: f.index >= 0.99e20].iloc[0]
    assert small_low["frac_teacher_pretraining"] > 0.5
    small_high = rows.loc[1e9].iloc[-1][shares]
    assert abs(small_high["frac_student"] - small_high["frac_teacher_inference"]) < 0.2
    assert small_high["frac_teacher_pretraining"] < 0.1
    large_high = rows.loc[3e10].loc[lambda f: f.index >= 9e24][shares].iloc[0]
    assert (large_high > 0.2).all() and (large_high < 0.5).all(), large_high


# --- uncertainty -------------------------------------------------------------------------------


def test_a_concentrated_posterior_gives_the_point_optimum():
    point = allocation.distill(BUSBRIDGE, [1e9], [1e22], scenarios="teacher-inference")
    draws = {k: np.full(64, v) for k, v in BUSBRIDGE.items()}
    many = allocation.distill(draws, [1e9], [1e22], scenarios="teacher-inference")
    for name in ("student_loss", "N_T", "D_S", "frac_student"):
        assert many[name].item() == pytest.approx(point[name].item(), rel=1e-9)
        assert many[f"{name}_q05"].item() == pytest.approx(point[name].item(), rel=1e-9)


def test_credible_intervals_shrink_as_the_data_grows():
    """Posterior draws (the bootstrap's vmapped refits) on 24 and on 72 synthetic runs of a known
    Chinchilla law: the 90% interval of N_opt at 1e24 FLOPs narrows with more data and holds the
    true optimum."""
    import warnings

    from slaws import bayes
    from slaws.synthetic import chinchilla_like

    truth = get_preset("hoffmann2022")["params"]
    exact = allocation.compute_optimal("chinchilla", truth, [1e24])["N"].item()
    widths = []
    for rows in (3, 1):
        frame = chinchilla_like(noise=0.02, seed=2).iloc[::rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bayes.PosteriorWarning)
            tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=600, seed=0)
        result = allocation.compute_optimal("chinchilla", tree, [1e24])
        low, high = result["N_q05"].item(), result["N_q95"].item()
        assert low < result["N"].item() < high
        widths.append(math.log(high / low))
    assert widths[1] < 0.8 * widths[0], widths
    assert low < exact < high


def test_preset_intervals_can_be_sampled_and_are_labelled_by_the_caller():
    draws = allocation.parameter_draws("busbridge2025", get_law("distillation"), sample=500)
    assert len(draws["A_prime"]) == 500
    assert np.all(draws["c1"] == 522.6)  # degenerate interval as printed
    lo, hi = np.quantile(draws["alpha_prime"], [0.05, 0.95])
    assert lo == pytest.approx(0.319, abs=1e-3) and hi == pytest.approx(0.324, abs=1e-3)
    rows = allocation.distill("busbridge2025", [1e9], [1e22], scenarios="best-case", sample=200)
    assert rows["student_loss_q05"].item() < rows["student_loss"].item()
    assert rows["student_loss"].item() < rows["student_loss_q95"].item()
    with pytest.raises(ValueError, match="for law 'chinchilla'"):
        allocation.compute_optimal("kaplan", "epoch2024", [1e22])


def test_fixed_teacher_trains_the_student_on_what_is_left():
    """Eq. 27: D_S = C / (3 F(N_S) + delta_lgt F(N_T))."""
    n_s, c, n_t, d_t = 1e9, 1e22, 7e9, 1e12
    rows = allocation.fixed_teacher(BUSBRIDGE, [n_s], [c], teacher_params=n_t, teacher_tokens=d_t)
    with jax.enable_x64(True):
        f_s, f_t = (float(flops.forward("busbridge", n)) for n in (n_s, n_t))
    assert rows["D_S"].item() == pytest.approx(c / (3 * f_s + f_t), rel=1e-12)
    by_loss = allocation.fixed_teacher(
        BUSBRIDGE, [n_s], [c], teacher_loss=rows["teacher_loss"].item(), teacher_inference=0.0
    )
    with pytest.raises(ValueError, match="need teacher_params"):
        allocation.fixed_teacher(BUSBRIDGE, [n_s], [c], teacher_loss=2.0)
    assert by_loss["D_S"].item() == pytest.approx(c / (3 * f_s), rel=1e-12)
    assert by_loss["student_loss"].item() < rows["student_loss"].item()  # logits were free
