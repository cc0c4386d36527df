"""Seeded synthetic datasets drawn from known laws, for the demo, tests and benchmarks.

Every generator computes the noiseless loss with the law itself, in float64 on the CPU
(``jax.enable_x64(True)``, so results do not depend on an accelerator), then multiplies it by
``exp(noise * z)`` with ``z`` standard normal from ``numpy.random.default_rng(seed)``: log-normal
noise whose ``noise`` is the standard deviation of log loss (0 gives the law's values exactly).
The same arguments always give the same frame.

The committed ``data/synthetic_chinchilla.csv`` is ``write_default()``'s output; see
``data/README.md``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_PATH",
    "TABLE13_N",
    "chinchilla_like",
    "curve_like",
    "distillation_like",
    "write_csv",
    "write_default",
]

#: where ``write_default`` writes, relative to the working directory (the repository root).
DEFAULT_PATH = "data/synthetic_chinchilla.csv"

#: Busbridge et al. 2025, Table 13: non-embedding parameters N of the model family, in billions.
TABLE13_N = (
    0.1028, 0.1434, 0.1983, 0.2657, 0.3398, 0.4348, 0.546, 0.6636, 0.8096, 0.9755, 1.147,
    1.355, 1.586, 1.821, 2.102, 2.41, 2.718, 3.082, 3.478, 3.87, 4.329, 4.823, 5.309, 5.873,
    6.476, 7.066, 7.747, 8.47, 9.173, 10.05, 10.84, 11.66, 12.61,
)  # fmt: skip

# The distillation grid (Busbridge et al. 2025, Sec. 4.2 / App. E), laid out to land near the
# paper's 697 runs (this layout gives 690):
#   1. fixed-M teachers (D_T = 20 N_T) x student IsoFLOP profiles (324 rows),
#   2. IsoFLOP teachers x fixed-M students (D_S = 20 N_S) (216 rows),
#   3. fixed-M teachers x fixed-M students at M_S = D_S / N_S in {20, ..., 320} (150 rows).
# IsoFLOP profiles use every other Table 13 size, kept where D = C / (6 N) lies in
# [_D_MIN, _D_MAX] ("a few billion" to 512B tokens, the paper's range).
_TEACHERS = (0.546, 0.9755, 1.821, 2.718, 4.823, 7.747)  # Fig. 2's fixed-M teachers
_ISO_BUDGETS = (3e19, 1e20, 3e20, 1e21)
_ISO_SIZES = TABLE13_N[::2]
_FIXED_M_STUDENTS = (0.546, 0.9755, 1.821, 7.747)  # Fig. 3's students
_RATIO_STUDENTS = (0.1983, 0.3398, 0.546, 0.9755, 1.586)  # D_S <= 512B at M_S = 320
_STUDENT_RATIOS = (20, 40, 80, 160, 320)
_M = 20.0
_D_MIN, _D_MAX = 2e9, 5.12e11


def _check_noise(noise) -> float:
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0 (sd of log loss), not {noise!r}")
    return noise


def _resolve(law, params, expected_inputs: tuple[str, ...] | None = None):
    """The ``Law`` and a complete ``{param: float}`` dict from a preset name or a mapping."""
    from slaws.law import get_law
    from slaws.presets import get_preset

    if isinstance(params, str):
        preset = get_preset(params)
        if law is None:
            law = preset["law"]
        law = get_law(law)
        if preset["law"] != law.name:
            raise ValueError(f"preset {params!r} is for law {preset['law']!r}, not {law.name!r}")
        values = dict(preset["params"])
    else:
        law = get_law(law)
        values = dict(params)
    values = {**law.fixed, **values}
    missing = [n for n in law.param_names if n not in values]
    if missing:
        raise ValueError(
            f"params for law {law.name!r} lack {', '.join(missing)} "
            f"(parameters: {', '.join(law.param_names)})"
        )
    unknown = [n for n in values if n not in law.param_names]
    if unknown:
        raise ValueError(f"law {law.name!r} has no parameter {unknown[0]!r}")
    if expected_inputs is not None:
        names = set(law.input_names())
        lacking = [n for n in expected_inputs if n not in names]
        if lacking:
            raise ValueError(
                f"law {law.name!r} does not take input {lacking[0]!r} "
                f"(it reads: {', '.join(law.input_names())})"
            )
    return law, {n: float(values[n]) for n in law.param_names}


def _law_loss(law, params: Mapping[str, float], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """exp(``law.log_loss``) in float64 on the CPU, as a NumPy array: the log form, not a
    faster natural-scale one, so that seeded data stay byte-identical."""
    import jax

    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        x = {k: np.asarray(v, np.float64) for k, v in inputs.items()}
        p = {k: np.float64(v) for k, v in params.items()}
        out = np.asarray(jax.numpy.exp(law.log_loss(p, x)), np.float64)
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError(f"law {law.name!r} gave a non-finite or non-positive loss")
    return out


def _noisy(values: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    return values * np.exp(noise * rng.standard_normal(len(values)))


def chinchilla_like(
    law: str = "chinchilla",
    params: str | Mapping[str, float] = "hoffmann2022",
    n_models: int = 12,
    n_budgets: int = 6,
    noise: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """An IsoFLOP design like Hoffmann et al. 2022's, with losses from ``law`` at ``params``.

    Budgets C are ``n_budgets`` values log-spaced over 6e18..3e21 FLOPs. At each budget,
    ``n_models`` model sizes N are log-spaced so that D = C / (6 N) runs from 200 down to 2 tokens
    per parameter; N is rounded to 4 significant figures and D = C / (6 N) uses the rounded N.

    Args:
      law: a law of N and D (``chinchilla``, ``chinchilla_gamma``, ``kaplan``, ...).
      params: a preset name (see :mod:`slaws.presets`) or ``{name: value}``.
      noise: standard deviation of the log-normal noise on loss; 0 for the law's exact values.
      seed: seed of ``numpy.random.default_rng``.

    Returns:
      A DataFrame with float64 columns ``N``, ``D`` and ``loss`` (``n_budgets * n_models`` rows,
      budget by budget, smallest model first).

    >>> from slaws import synthetic
    >>> frame = synthetic.chinchilla_like(n_models=4, n_budgets=2, noise=0.0)
    >>> frame.shape, list(frame.columns)
    ((8, 3), ['N', 'D', 'loss'])
    >>> [round(v, 3) for v in frame["loss"][:4]]  # the IsoFLOP profile at 6e18 FLOPs
    [3.152, 3.093, 3.115, 3.214]
    """
    n_models, n_budgets = int(n_models), int(n_budgets)
    if n_models < 1 or n_budgets < 1:
        raise ValueError("n_models and n_budgets must be >= 1")
    noise = _check_noise(noise)
    law, values = _resolve(law, params, ("N", "D"))
    rows_n, rows_d = [], []
    for c in np.geomspace(6e18, 3e21, n_budgets):
        # tokens per parameter r = D / N = C / (6 N^2), so N = sqrt(C / (6 r)) for r = 200 .. 2
        for n in np.geomspace(math.sqrt(c / 1200.0), math.sqrt(c / 12.0), n_models):
            n = float(f"{n:.4g}")
            rows_n.append(n)
            rows_d.append(c / (6.0 * n))
    frame = pd.DataFrame({"N": np.array(rows_n), "D": np.array(rows_d)})
    loss = _law_loss(law, values, {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()})
    frame["loss"] = _noisy(loss, noise, np.random.default_rng(seed))
    return frame


#: Per-family departures from Hoffmann et al. 2022's fit in :func:`families`: irreducible loss
#: and the model-size exponent move, as they do between training sets.
FAMILY_SHIFTS = {
    "a": {"E": 1.00, "alpha": 1.00},
    "b": {"E": 1.08, "alpha": 1.10},
    "c": {"E": 0.94, "alpha": 0.92},
}


def families(
    runs: Mapping[str, tuple[int, int]] | None = None, noise: float = 0.01, seed: int = 0
) -> pd.DataFrame:
    """Runs of several families (column ``family``), each an IsoFLOP design of
    :func:`chinchilla_like` from Hoffmann et al. 2022's law with E and alpha scaled by
    :data:`FAMILY_SHIFTS`. ``runs`` maps a family to its ``(n_models, n_budgets)``; by default
    ``a`` and ``b`` have 30 runs and ``c`` 6, the case partial pooling is for. The true
    parameters per family are in ``frame.attrs["params"]``.

    >>> from slaws import synthetic
    >>> frame = synthetic.families(noise=0.0)
    >>> frame.groupby("family").size().to_dict(), round(frame.attrs["params"]["b"]["alpha"], 4)
    ({'a': 30, 'b': 30, 'c': 6}, 0.374)
    """
    from slaws.presets import get_preset

    runs = runs or {"a": (6, 5), "b": (6, 5), "c": (3, 2)}
    base = get_preset("hoffmann2022")["params"]
    parts, truth = [], {}
    for i, (name, (n_models, n_budgets)) in enumerate(runs.items()):
        shift = FAMILY_SHIFTS[name]
        params = {k: v * shift.get(k, 1.0) for k, v in base.items()}
        part = chinchilla_like("chinchilla", params, n_models, n_budgets, noise, seed + i)
        parts.append(part.assign(family=name))
        truth[name] = params
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["params"] = truth
    return frame


def _iso_sizes(c: float) -> list[float]:
    return [n * 1e9 for n in _ISO_SIZES if _D_MIN <= c / (6.0 * n * 1e9) <= _D_MAX]


def _distillation_grid() -> pd.DataFrame:
    rows = []  # (N_S, D_S, N_T, D_T)
    for n_t in _TEACHERS:  # 1. fixed-M teachers x student IsoFLOP profiles
        for c_s in _ISO_BUDGETS:
            rows += [(n_s, c_s / (6.0 * n_s), n_t * 1e9, _M * n_t * 1e9) for n_s in _iso_sizes(c_s)]
    for c_t in _ISO_BUDGETS:  # 2. IsoFLOP teachers x fixed-M students
        for n_t in _iso_sizes(c_t):
            rows += [(n * 1e9, _M * n * 1e9, n_t, c_t / (6.0 * n_t)) for n in _FIXED_M_STUDENTS]
    for n_t in _TEACHERS:  # 3. fixed-M teachers x fixed-M students at several M_S
        for n_s in _RATIO_STUDENTS:
            rows += [(n_s * 1e9, m * n_s * 1e9, n_t * 1e9, _M * n_t * 1e9) for m in _STUDENT_RATIOS]
    return pd.DataFrame(rows, columns=["N", "D", "N_T", "D_T"], dtype=np.float64)


def distillation_like(
    params: str | Mapping[str, float] = "busbridge2025",
    noise: float = 0.005,
    seed: int = 0,
) -> pd.DataFrame:
    """Teacher-student runs laid out like Busbridge et al. 2025's distillation experiments.

    Three experiments (Sec. 4.2, App. E; sizes from Table 13, 690 rows against the paper's 697):
    six fixed-M teachers (D_T = 20 N_T; 546M, 975M, 1.82B, 2.72B, 4.82B, 7.75B) distilled along
    student IsoFLOP profiles C_S in {3e19, 1e20, 3e20, 1e21}; IsoFLOP teachers at C_T in the same
    budgets distilled into fixed-M students (546M, 975M, 1.82B, 7.75B, D_S = 20 N_S); and the six
    fixed-M teachers distilled into five students (198M..1.59B) at M_S = D_S / N_S in
    {20, 40, 80, 160, 320}. IsoFLOP profiles take every other Table 13 size with D between 2e9
    and 5.12e11 tokens.

    ``L_T`` is the supervised ``chinchilla_gamma`` law at (N_T, D_T) with the supervised
    coefficients of ``params`` (Busbridge's Table 6), times log-normal noise drawn once per
    teacher (rows sharing a teacher share its measured loss). ``loss`` is the distillation law at
    (N, D, L_T) with that noisy L_T, times its own noise. With ``noise=0``, ``loss > L_T``
    wherever the law's student term does not underflow (the law gives L_S >= L_T).

    Returns:
      A DataFrame with float64 columns ``N``, ``D`` (the student's), ``N_T``, ``D_T``, ``L_T``,
      ``loss``.

    >>> from slaws import synthetic
    >>> frame = synthetic.distillation_like(noise=0.0)
    >>> len(frame), list(frame.columns)
    (690, ['N', 'D', 'N_T', 'D_T', 'L_T', 'loss'])
    >>> bool((frame["loss"] >= frame["L_T"]).all())  # no student beats its teacher
    True
    """
    noise = _check_noise(noise)
    law, values = _resolve("distillation", params)
    from slaws.law import get_law

    supervised = get_law("chinchilla_gamma")
    sup_values = {n: values[n] for n in supervised.param_names}
    rng = np.random.default_rng(seed)

    frame = _distillation_grid()
    teachers = frame[["N_T", "D_T"]].drop_duplicates().reset_index(drop=True)
    teacher_loss = _law_loss(
        supervised, sup_values, {"N": teachers["N_T"].to_numpy(), "D": teachers["D_T"].to_numpy()}
    )
    teachers["L_T"] = _noisy(teacher_loss, noise, rng)
    frame = frame.merge(teachers, on=["N_T", "D_T"], how="left", sort=False)
    inputs = {k: frame[k].to_numpy() for k in ("N", "D", "L_T")}
    frame["loss"] = _noisy(_law_loss(law, values, inputs), noise, rng)
    return frame


def curve_like(
    law,
    params: str | Mapping[str, float],
    x: Sequence[float] | np.ndarray,
    noise: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """Losses of a 1-D law (input column ``x``: ``bnsl``, ``M1``..``M4``) at ``x``, with noise.

    ``params`` is ``{name: value}`` or a preset name. Returns a DataFrame ``x``, ``loss``.

    >>> from slaws import synthetic
    >>> frame = synthetic.curve_like("bnsl", "caballero2023-simulation", x=[1e2, 1e3, 1e4])
    >>> [round(v, 2) for v in frame["loss"]]
    [2.18, 0.51, 0.42]
    """
    noise = _check_noise(noise)
    law, values = _resolve(law, params, ("x",))
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("x must be a non-empty array of finite values > 0")
    loss = _law_loss(law, values, {"x": x})
    return pd.DataFrame({"x": x, "loss": _noisy(loss, noise, np.random.default_rng(seed))})


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``frame`` as CSV with full float precision, atomically (temp file + ``os.replace``).

    Floats use ``%.17g`` (round-trips float64 exactly) and lines end in ``\\n`` on every platform.
    Raises ``FileExistsError`` if ``path`` exists and ``force`` is false.

    >>> import os, tempfile
    >>> import pandas as pd
    >>> from slaws import synthetic
    >>> frame = synthetic.chinchilla_like(n_models=3, n_budgets=2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = synthetic.write_csv(frame, os.path.join(folder, "runs.csv"))
    ...     back = pd.read_csv(path)
    >>> path.name, back.astype(float).equals(frame)  # %.17g round-trips float64 exactly
    ('runs.csv', True)
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists (use --force to overwrite)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: no directory {path.parent}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as out:
            frame.to_csv(out, index=False, float_format="%.17g", lineterminator="\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_default(path: str | os.PathLike = DEFAULT_PATH) -> Path:
    """Write ``chinchilla_like(seed=0)`` (law ``chinchilla``, preset ``hoffmann2022``, noise 0.01,
    12 models x 6 budgets) to ``path`` as CSV, overwriting it. Regenerates the committed
    ``data/synthetic_chinchilla.csv`` byte for byte.

    >>> import os, tempfile
    >>> import pandas as pd
    >>> from slaws import synthetic
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = synthetic.write_default(os.path.join(folder, "synthetic_chinchilla.csv"))
    ...     frame = pd.read_csv(path)
    >>> frame.shape
    (72, 3)
    """
    return write_csv(chinchilla_like(seed=0), path, force=True)
