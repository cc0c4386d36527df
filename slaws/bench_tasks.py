"""The benchmark's tasks: how each registered dataset is split into runs to fit and larger runs to
predict (see :mod:`slaws.bench`). Each split follows the dataset's paper where it has one
(Gadre's five small runs, Revisiting's Training column, Caballero's 14 points, ColPret's ARE
protocol) and otherwise holds out the largest runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slaws import data, datasets
from slaws.bench import Case, Task, register_task, split


def _epoch(quick):
    from slaws.recipes import drop_highest_loss

    frame = drop_highest_loss(data.load("epoch-chinchilla"), 5)
    c = 6 * frame["N"] * frame["D"]
    return [split("epoch-chinchilla", "C>=1e21", "chinchilla", frame, c >= 1e21)]


register_task(
    Task(
        "epoch-chinchilla",
        "epoch-chinchilla",
        "Hoffmann et al. 2022's runs as extracted by Epoch (240 after dropping the 5 highest "
        "losses): fit the 217 runs below 1e21 FLOPs, predict the 23 above (up to 1.3e22).",
        _epoch,
    )
)

# Gadre et al. 2024 fit five small runs of one training set and predict two large ones.
GADRE_FIT = [
    ("d=96_l=8_h=4", 20),
    ("d=512_l=8_h=4", 20),
    ("d=576_l=24_h=8", 20),
    ("d=1024_l=24_h=8", 20),
    ("d=96_l=8_h=4", 320),
]
GADRE_TARGETS = {"rpj": 640, "c4_original": 80, "rw_original": 320}  # the 1.4B model's M


def gadre_frame(training_set: str) -> pd.DataFrame:
    """The five fitted runs then the two targets (1.4B over-trained, 6.9B at M=20) of one
    training set, with columns N, D, loss (C4 validation loss) and M (tokens per parameter).

    >>> from slaws.bench_tasks import gadre_frame
    >>> frame = gadre_frame("rpj")
    >>> len(frame), [float(m) for m in frame.M.iloc[-2:]]
    (7, [640.0, 20.0])
    """
    raw = datasets.read("gadre-overtrain")
    raw = raw[raw["dataset_name"] == training_set]
    picks = [*GADRE_FIT, ("open_lm_1b", GADRE_TARGETS[training_set]), ("open_lm_7b", 20)]
    rows = []
    for config, m in picks:
        row = raw[(raw["model_config"] == config) & (raw["tok_mult"] == m)]
        if len(row) != 1:
            raise ValueError(f"gadre-overtrain: expected one {training_set} {config} M={m} run")
        rows.append(row.iloc[0])
    frame = pd.DataFrame(rows)
    out = pd.DataFrame(
        {
            "N": frame["N"].to_numpy(float),
            "D": frame["D"].to_numpy(float),
            "loss": frame["loss_c4_val"].to_numpy(float),
            "M": frame["tok_mult"].to_numpy(float),
        }
    )
    out.attrs["names"] = list(frame["name"])
    return out


def _gadre(quick):
    cases = []
    for training_set in GADRE_TARGETS:
        frame = gadre_frame(training_set)
        held_out = np.arange(len(frame)) >= len(GADRE_FIT)
        cases.append(split("gadre-overtrain", training_set, "chinchilla", frame, held_out))
    return cases


register_task(
    Task(
        "gadre-overtrain",
        "gadre-overtrain",
        "Gadre et al. 2024: per training set (RedPajama, C4, RefinedWeb) fit five runs of "
        "10.6M-411M parameters and predict the over-trained 1.4B run and the 6.9B run "
        "(C4 validation loss).",
        _gadre,
    )
)


def _revisiting(quick):
    from slaws import revisiting

    curves = revisiting.curves()
    if quick:
        curves = curves[::46]  # 2 curves: each M4 fit compiles for its curve length
    cases = []
    for curve in curves:
        assert curve.x_fit.max() < curve.x_test.min()  # Revisiting's split: fit before predict
        train = pd.DataFrame({"x": curve.x_fit, "loss": curve.y_fit})
        test = pd.DataFrame({"x": curve.x_test, "loss": curve.y_test})
        info = {"domain": curve.domain}
        cases.append(Case("revisiting-scaling", curve.name, "m4", train, test, info))
    return cases


register_task(
    Task(
        "revisiting-scaling",
        "revisiting-scaling",
        "Alabdulmohsin et al. 2022: 92 learning curves (vision, translation, language "
        "modelling, BIG-bench), each fitted on its first part and extrapolated; slaws's "
        "methods fit the M4 law. (With --quick: every 46th curve.)",
        _revisiting,
    )
)


def _bnsl(quick):
    raw = datasets.read("bnsl-4digit")
    frame = data.load("bnsl-4digit", required=("x", "loss"))
    held_out = raw["split"].to_numpy() == "extrapolate"
    return [split("bnsl-4digit", "4-digit addition", "bnsl", frame, held_out)]


register_task(
    Task(
        "bnsl-4digit",
        "bnsl-4digit",
        "Caballero et al. 2023, Figure 4: 4-digit addition, test cross-entropy against "
        "training-set size; fit the first 14 points, extrapolate the last 3.",
        _bnsl,
    )
)


def _misfitting(quick):
    raw = datasets.read("misfitting-openlm", "last_checkpoint")
    # Each (model, token budget) was swept over learning rates: keep the best run, as a lab
    # would before fitting.
    best = raw.loc[raw.groupby(["model", "train_tokens"])["loss"].idxmin()]
    frame = pd.DataFrame({k: best[k].to_numpy(float) for k in ("N", "D", "loss")})
    held_out = best["model"].isin(["misfitting_400m", "misfitting_1b"]).to_numpy()
    return [split("misfitting-openlm", "400M and 1B held out", "chinchilla", frame, held_out)]


register_task(
    Task(
        "misfitting-openlm",
        "misfitting-openlm",
        "Li et al. 2025's OpenLM sweeps, final checkpoints, best learning rate per model and "
        "token budget: fit models of 12M-300M parameters, predict the 400M and 1B models' runs.",
        _misfitting,
    )
)


def _size(text: str) -> float:
    text = text.strip().upper()
    return float(text[:-1]) * {"M": 1e6, "B": 1e9}[text[-1]]


def colpret_gpt3(p: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """GPT-3's validation curves under ColPret's protocol: checkpoints past 1e10 tokens; the
    target (175B) scored on its checkpoints from 70% of its final tokens, the other models
    fitted on checkpoints before ``p`` of theirs. Returns the frame and the held-out mask.

    >>> from slaws.bench_tasks import colpret_gpt3
    >>> frame, held_out = colpret_gpt3()
    >>> list(frame.columns), int(held_out.sum()), set(frame[held_out].N)
    (['N', 'D', 'loss'], 281, {175000000000.0})
    """
    raw = datasets.read("colpret-hitchhiker")
    meta = datasets.read("colpret-hitchhiker", "gpt3_metadata")
    sizes = dict(zip(meta["model_key"], map(_size, meta["num_params"]), strict=True))
    raw = raw[raw["val_loss"].notna()].copy()
    raw["D"] = raw["step"] * 1e9
    raw = raw[raw["D"] > 1e10]
    final = raw.groupby("model")["D"].transform("max")
    target = raw["model"] == "175b"
    test = target & (raw["D"] >= 0.7 * final)
    train = ~target & (raw["D"] < p * final)  # strictly, as ColPret does, even at p = 1
    raw = raw[test | train]
    frame = pd.DataFrame(
        {
            "N": raw["model"].map(sizes).to_numpy(float),
            "D": raw["D"].to_numpy(float),
            "loss": raw["val_loss"].to_numpy(float),
        }
    )
    return frame, (raw["model"] == "175b").to_numpy()


def _colpret(quick):
    frame, held_out = colpret_gpt3()
    if quick:  # every fifth fitted checkpoint
        keep = held_out | (np.arange(len(frame)) % 5 == 0)
        frame, held_out = frame[keep].reset_index(drop=True), held_out[keep]
    return [split("colpret-hitchhiker", "GPT-3 175B", "chinchilla", frame, held_out)]


register_task(
    Task(
        "colpret-hitchhiker",
        "colpret-hitchhiker",
        "Choshen et al. 2025's protocol on GPT-3's curves: fit the seven smaller models' "
        "checkpoints (past 1e10 tokens), predict 175B's from 70% of its training on (ARE).",
        _colpret,
    )
)


def porian_configurations() -> list[tuple[str, str, pd.DataFrame, float]]:
    """(dataset, configuration, IsoFLOP points with N, D, C, loss, published exponent a).

    >>> from slaws.bench_tasks import porian_configurations
    >>> configurations = porian_configurations()
    >>> len(configurations), round(min(a for *_, a in configurations), 3)
    (15, 0.497)
    """
    points = datasets.read("porian-isoflop")
    summary = datasets.read("porian-isoflop", "fit_summary")
    out = []
    for _, row in summary.iterrows():
        keys = ("dataset", "config_label", "loss_split")
        mask = np.logical_and.reduce([points[k] == row[k] for k in keys])
        group = points[mask]
        frame = pd.DataFrame(
            {
                "N": group["params_N"].to_numpy(float),
                "D": group["tokens_D"].to_numpy(float),
                "C": group["flops"].to_numpy(float),
                "loss": group["loss"].to_numpy(float),
            }
        )
        out.append((row["dataset"], row["config_label"], frame, float(row["a_N_exponent"])))
    return out


def _porian(quick):
    configurations = porian_configurations()
    if quick:
        configurations = configurations[::7]
    cases = []
    for dataset, label, frame, exponent in configurations:
        budgets = np.sort(frame["C"].unique())
        held_out = frame["C"].to_numpy() >= budgets[-2]
        info = {"isoflop": True, "published_exponent": exponent}
        name = f"{dataset}: {label}"
        cases.append(split("porian-isoflop", name, "chinchilla", frame, held_out, **info))
    return cases


register_task(
    Task(
        "porian-isoflop",
        "porian-isoflop",
        "Porian et al. 2024's IsoFLOP profiles, 15 configurations from Kaplan's setup to "
        "Chinchilla's: fit the budgets up to 6.4e18 FLOPs, predict the two largest; the "
        "fitted exponent is compared with the paper's (column published_exponent in the JSON).",
        _porian,
    )
)


def _datablations(quick):
    frame = data.load("datablations")
    return [split("datablations", "N>=4e9", "data_constrained", frame, frame["N"] >= 4e9)]


register_task(
    Task(
        "datablations",
        "datablations",
        "Muennighoff et al. 2023's 182 C4 runs, up to 9,000 epochs over 100M-178B unique "
        "tokens: fit the runs below 4B parameters, predict the 17 of 4.2B and 8.7B; slaws fits "
        "the data-constrained law.",
        _datablations,
    )
)


# ---------------------------------------------------------------------------------------------
# Published numbers, recomputed with the benchmark's own data and code paths
# ---------------------------------------------------------------------------------------------


def _row(dataset, quantity, published, reproduced, tolerance, source):
    ok = bool(np.isfinite(reproduced) and abs(reproduced - published) <= tolerance)
    return dict(
        dataset=dataset,
        quantity=quantity,
        published=published,
        reproduced=reproduced,
        tolerance=tolerance,
        ok=ok,
        source=source,
    )


def _gadre_reproduction(quick):
    from slaws import baselines
    from slaws.bench_methods import law_loss

    frame = gadre_frame("rpj")
    fit, targets = frame.iloc[: len(GADRE_FIT)], frame.iloc[len(GADRE_FIT) :]
    n = fit["N"].to_numpy()
    result = baselines.gadre_overtrain(n, fit["D"].to_numpy() / n, fit["loss"].to_numpy())
    predicted = law_loss("chinchilla", result.params, targets)
    errors = 100 * np.abs(predicted - targets["loss"].to_numpy()) / targets["loss"].to_numpy()
    source = "Gadre et al. 2024, repo scaling_explorer output (RedPajama, C4 val loss)"
    return [
        _row("gadre-overtrain", "rel. error % 1.4B M=640", 0.7103, errors[0], 0.01, source),
        _row("gadre-overtrain", "rel. error % 6.9B M=20", 0.7320, errors[1], 0.01, source),
    ]


def _revisiting_reproduction(quick):
    from slaws import revisiting

    reference = datasets.read("revisiting-scaling", "reference")
    curves = revisiting.curves()
    ours = revisiting.table(curves)
    rows = []
    for column in ("extrap_rmse_log", "extrap_se"):
        worst = float(np.nanmax(np.abs(ours[column].to_numpy() - reference[column].to_numpy())))
        rows.append(
            _row(
                "revisiting-scaling",
                f"largest abs. difference in {column}, {len(ours)} curve x method rows",
                0.0,
                worst,
                1e-3,
                "official M1-M4 code, per-curve (reference_official_m1_m4.csv)",
            )
        )
    return rows


def _epoch_reproduction(quick):
    from slaws.fitting import fit

    result = fit("chinchilla", "epoch-chinchilla", recipe="epoch2024")
    source = "Besiroglu et al. 2024 (Epoch), notebook cell 18: 4,500-start L-BFGS-B"
    return [
        _row("epoch-chinchilla", "Huber objective", 0.0010182740, result.objective, 1e-9, source),
        _row("epoch-chinchilla", "A", 477.84, result.params["A"], 0.5, source),
        _row("epoch-chinchilla", "alpha", 0.34731, result.params["alpha"], 1e-4, source),
        _row("epoch-chinchilla", "beta", 0.36718, result.params["beta"], 1e-4, source),
        _row("epoch-chinchilla", "E", 1.8172, result.params["E"], 1e-4, source),
    ]


def _bnsl_reproduction(quick):
    from slaws import baselines

    raw = datasets.read("bnsl-4digit")
    fitted = raw["split"] == "fit"
    x, y = raw["train_dataset_size"].to_numpy(float), raw["test_cross_entropy"].to_numpy(float)
    result = baselines.bnsl_caballero(x[fitted], y[fitted])

    def rmsle(mask):
        predicted = baselines.bnsl_predict(result.params, x[mask])
        return float(np.sqrt(np.mean((np.log(predicted) - np.log(y[mask])) ** 2)))

    truth = datasets.read("bnsl-4digit", "ground_truth").iloc[0]
    # The noiseless simulation: the ground truth's curve on x = 1..4095, fitted up to 405.
    grid = np.arange(1, 4096, dtype=float)
    clean = baselines.bnsl_predict(truth, grid)
    simulated = baselines.bnsl_caballero(grid[:405], clean[:405], grid="simulation")
    beyond = baselines.bnsl_predict(simulated.params, grid[405:])
    sim_rmsle = float(np.sqrt(np.mean((np.log(beyond) - np.log(clean[405:])) ** 2)))
    source = "Caballero et al. 2023 scripts (values printed when run; recomputed with SciPy)"
    rows = [
        ("RMSLE, the 14 fitted points", 0.000598487, rmsle(fitted), 2e-5),
        ("RMSLE, the 3 extrapolated points", 0.0109157, rmsle(~fitted), 2e-4),
        ("d1 against the ground truth", truth["d1"], result.params["d1"], 0.1),
        ("simulation: RMSLE beyond x = 405", 0.00518, sim_rmsle, 5e-4),
    ]
    return [_row("bnsl-4digit", *row, source) for row in rows]


def _datablations_reproduction(quick):
    from slaws.bench_methods import law_loss
    from slaws.presets import get_preset

    frame = data.load("datablations")
    params = get_preset("muennighoff2023")["params"]
    predicted = law_loss("data_constrained", params, frame)
    y = frame["loss"].to_numpy()
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    point = pd.DataFrame({"N": [6.34e9], "D": [242e9], "U": [25e9]})
    value = float(law_loss("data_constrained", params, point)[0])
    source = "huggingface/datablations parametric_fit.ipynb and README"
    return [
        _row("datablations", "R^2 of the published fit, 182 runs", 0.7722046, r2, 1e-6, source),
        _row("datablations", "L(6.34e9, 242e9, U=25e9)", 2.2256440889984477, value, 1e-9, source),
    ]


def _porian_reproduction(quick):
    from slaws import baselines

    optimal = datasets.read("porian-isoflop", "optimal")
    summary = datasets.read("porian-isoflop", "fit_summary")
    keys = ("dataset", "config_label", "loss_split")
    worst = 0.0
    for _, row in summary.iterrows():
        group = optimal[np.logical_and.reduce([optimal[k] == row[k] for k in keys])]
        frame = pd.DataFrame(
            {"C": group["flops"], "N_opt": group["N_opt"], "D_opt": group["D_opt"]}
        )
        weights = 1 / group["log_N_opt_std"].to_numpy() ** 2
        result = baselines.approach2(frame, weights=weights)
        worst = max(worst, abs(result["a"] - row["a_N_exponent"]))
    return [
        _row(
            "porian-isoflop",
            f"largest abs. difference in the exponent a, {len(summary)} configurations",
            0.0,
            worst,
            1e-3,
            "Porian et al. 2024, weighted fit of N_opt ~ C^a (bs_median_weighted)",
        )
    ]


REPRODUCTIONS = {
    "gadre-overtrain": _gadre_reproduction,
    "revisiting-scaling": _revisiting_reproduction,
    "epoch-chinchilla": _epoch_reproduction,
    "bnsl-4digit": _bnsl_reproduction,
    "datablations": _datablations_reproduction,
    "porian-isoflop": _porian_reproduction,
}
