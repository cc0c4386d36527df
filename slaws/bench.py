"""Benchmark of fitting methods on real public data: which method extrapolates best, whose
intervals hold, at what cost (``slaws bench``).

A *task* turns a registered dataset into *cases*: runs to fit (``train``) and larger runs held out
(``test``), with the law slaws's own methods fit. A *method* sees only ``train`` and the test
rows' inputs, never their losses (the harness strips them before the call, so a held-out point
cannot leak into a fit), and returns predicted losses, a 90% interval if it has one, and its
parameters. The harness scores every method on every case it applies to, or records why not:

- ``rel_error``: mean |predicted - observed| / observed over the held-out rows (ColPret's ARE);
- ``log_rmse``: root mean square of log(predicted / observed);
- ``coverage90`` and ``width90``: share of held-out losses inside the 90% interval and its mean
  width relative to the loss (methods with intervals);
- ``exponent`` and ``tokens_per_param``: for Chinchilla-form fits, the compute-optimal exponent
  a = beta / (alpha + beta) of N_opt ~ C^a and D/N at Chinchilla's budget (5.88e23 FLOPs);
- ``seconds``: wall time of the fit and prediction.

Before any leaderboard, :func:`reproductions` recomputes published numbers with the same data and
code paths (Gadre's relative errors, the official M1-M4 table, Epoch's fit, Caballero's BNSL
fit, Muennighoff's R^2, Porian's exponents), so a difference between methods is a difference of
methods, not of harness.

Adding a method or a task is one call to :func:`register_method` or :func:`register_task`.
Fits run in float64 (each entry point scopes ``jax.enable_x64``); randomness comes from ``seed``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CHINCHILLA_BUDGET = 5.88e23  # FLOPs: Chinchilla's own budget, where tokens per parameter is read
INTERVAL = 0.9
SLOW_CASES = 8  # cases per task for slow methods in a full run (``--all-cases``: every case)
METRICS = (
    "rel_error",
    "log_rmse",
    "coverage90",
    "width90",
    "exponent",
    "exponent_error",
    "tokens_per_param",
)


# ---------------------------------------------------------------------------------------------
# Cases, tasks, methods
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Runs to fit and held-out runs to predict. ``law`` is what slaws's own methods fit;
    ``info`` carries what a method may need besides the data (a learning curve's domain).

    >>> import pandas as pd
    >>> from slaws import bench
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "loss": [4.0, 3.1, 2.6, 2.3]})
    >>> case = bench.Case("doc-example", "x=8", "m1", frame[:3], frame[3:], {"domain": "LM"})
    >>> case.inputs, len(case.train), len(case.test)
    (['x'], 3, 1)
    """

    task: str
    name: str
    law: str
    train: pd.DataFrame
    test: pd.DataFrame
    info: dict = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        return [c for c in self.test.columns if c != "loss"]


def split(task, name, law, frame, held_out, **info) -> Case:
    """A case from ``frame`` and a boolean mask of held-out rows: the two parts partition the
    frame, so no row is both fitted and scored.

    >>> import pandas as pd
    >>> from slaws import bench
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "loss": [4.0, 3.1, 2.6, 2.3]})
    >>> case = bench.split("doc-example", "x>=4", "m1", frame, frame["x"] >= 4, domain="LM")
    >>> case.train["x"].tolist(), case.test["x"].tolist(), case.info
    ([1.0, 2.0], [4.0, 8.0], {'domain': 'LM'})
    """
    held_out = np.asarray(held_out, bool)
    if held_out.all() or not held_out.any():
        raise ValueError(f"{task}/{name}: a split needs rows on both sides")
    train = frame[~held_out].reset_index(drop=True)
    test = frame[held_out].reset_index(drop=True)
    return Case(task, name, law, train, test, info)


@dataclass(frozen=True)
class Task:
    """A named source of cases: ``cases(quick)`` returns the :class:`Case` list of
    ``dataset`` (fewer with ``quick``); ``description`` heads the task's leaderboard section.

    >>> import pandas as pd
    >>> from slaws import bench
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "loss": [4.0, 3.1, 2.6, 2.3]})
    >>> def cases(quick):
    ...     return [bench.split("doc-example", "x>=8", "m1", frame, frame["x"] >= 8)]
    >>> task = bench.Task("doc-example", "toy", "fit x < 8, predict x = 8", cases)
    >>> [case.name for case in task.cases(True)]
    ['x>=8']
    """

    name: str
    dataset: str
    description: str
    cases: Callable[[bool], list[Case]]  # quick -> cases


@dataclass(frozen=True)
class Prediction:
    """What a method returns: predicted ``loss`` at the held-out inputs, fitted ``params``,
    the fit's ``status`` and, for methods with intervals, the 90% interval's ``lower`` and
    ``upper`` bounds.

    >>> import numpy as np
    >>> from slaws import bench
    >>> pred = bench.Prediction(np.array([2.3]), {"E": 1.7}, lower=np.array([2.1]),
    ...                         upper=np.array([2.5]))
    >>> pred.status, pred.upper - pred.lower
    ('converged', array([0.4]))
    """

    loss: np.ndarray | None  # at the held-out inputs; None for allocation-only methods
    params: dict
    status: str = "converged"
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass(frozen=True)
class Method:
    """``run(train, test_inputs, case, seed) -> Prediction``; ``applies(case)`` returns None
    or the reason the method does not apply. ``quick``: part of ``--quick``.

    >>> import numpy as np
    >>> from slaws import bench
    >>> def last_loss(train, test, case, seed):  # the last fitted loss, held constant
    ...     return bench.Prediction(np.full(len(test), train["loss"].iloc[-1]), {})
    >>> method = bench.Method("doc-example", "last fitted loss", last_loss,
    ...                       applies=lambda case: None if case.inputs == ["x"] else "needs x")
    >>> method.quick, method.intervals, method.applies(bench.TASKS["bnsl-4digit"].cases(True)[0])
    (True, False, None)
    """

    name: str
    description: str
    run: Callable
    applies: Callable[[Case], str | None] = lambda case: None
    intervals: bool = False
    quick: bool = True


TASKS: dict[str, Task] = {}
METHODS: dict[str, Method] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to ``TASKS`` (replacing one of the same name) and return it.

    The example removes its task again, so that ``run()`` over every task is unchanged:

    >>> import pandas as pd
    >>> from slaws import bench
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "loss": [4.0, 3.1, 2.6, 2.3]})
    >>> split = lambda quick: [bench.split("doc-example", "x>=8", "m1", frame, frame["x"] >= 8)]
    >>> _ = bench.register_task(bench.Task("doc-example", "toy", "a toy learning curve", split))
    >>> bench.run(["doc-example"], ["official-M1"])[["case", "status", "n_train"]].values.tolist()
    [['x>=8', 'converged', 3]]
    >>> del bench.TASKS["doc-example"]
    """
    TASKS[task.name] = task
    return task


def register_method(method: Method) -> Method:
    """Add ``method`` to ``METHODS`` (replacing one of the same name) and return it.

    The example removes its method again, so that ``run()`` over every method is unchanged:

    >>> import numpy as np
    >>> from slaws import bench
    >>> def last_loss(train, test, case, seed):  # the last fitted loss, held constant
    ...     return bench.Prediction(np.full(len(test), train["loss"].iloc[-1]), {})
    >>> _ = bench.register_method(bench.Method("doc-example", "last fitted loss", last_loss))
    >>> results = bench.run(["bnsl-4digit"], ["doc-example"])
    >>> results.loc[0, "status"], round(float(results.loc[0, "rel_error"]), 4)
    ('converged', 0.4992)
    >>> del bench.METHODS["doc-example"]
    """
    METHODS[method.name] = method
    return method


# ---------------------------------------------------------------------------------------------
# Running and scoring
# ---------------------------------------------------------------------------------------------


def run(
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    *,
    quick: bool = False,
    slow_cases: int | None = SLOW_CASES,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every method on every case of every task: one row per (task, case, method) with the
    metrics, ``status`` (the fit's, ``skipped`` or ``error``) and ``reason``. Slow methods
    (posteriors, the less common objectives) skip ``--quick`` runs and, in full runs, take at
    most ``slow_cases`` evenly spaced cases of a task (None: all).

    >>> from slaws import bench
    >>> results = bench.run(["bnsl-4digit"], ["official-M1", "scipy-curve_fit"], quick=True)
    >>> results[["method", "n_train", "n_test", "status"]].values.tolist()
    [['official-M1', 14, 3, 'converged'], ['scipy-curve_fit', 14, 3, 'skipped']]
    >>> print(results.loc[1, "reason"])
    fits E + A/N^alpha + B/D^beta only (this task's law is bnsl)
    """
    tasks = _known(tasks, TASKS, "task")
    methods = _known(methods, METHODS, "method")
    say = progress or (lambda message: None)
    rows = []
    for task_name in tasks:
        cases = TASKS[task_name].cases(quick)
        say(f"{task_name}: {len(cases)} case(s)")
        sampled = set(range(len(cases)))
        if slow_cases is not None and len(cases) > slow_cases:
            sampled = set(np.linspace(0, len(cases) - 1, slow_cases).round().astype(int))
        for method_name in methods:
            method = METHODS[method_name]
            for i, case in enumerate(cases):
                row = {"task": task_name, "case": case.name, "method": method_name}
                row |= {"n_train": len(case.train), "n_test": len(case.test)}
                reason = method.applies(case)
                if reason is None and not method.quick:
                    if quick:
                        reason = "not run with --quick (slow)"
                    elif i not in sampled:
                        reason = f"slow: {slow_cases} evenly spaced cases of {len(cases)} run"
                if reason is not None:
                    rows.append(row | {"status": "skipped", "reason": reason})
                    continue
                rows.append(row | _score(method, case, seed))
            say(f"  {method_name}: done")
    return pd.DataFrame(rows)


def _known(names, registry, what):
    if names is None:
        return list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (known: {', '.join(registry)})")
    return list(names)


def _score(method: Method, case: Case, seed: int) -> dict:
    test_inputs = case.test.drop(columns="loss")  # the held-out losses never reach a method
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = method.run(case.train.copy(), test_inputs, case, seed)
    except Exception as exc:  # a method's failure is a result, not a crash of the benchmark
        return {"status": "error", "reason": _one_line(exc)}
    seconds = time.perf_counter() - start
    observed = case.test["loss"].to_numpy(float)
    out = {"status": pred.status, "seconds": seconds}
    if pred.loss is not None:  # None: the method forecasts an allocation, not losses
        predicted = np.asarray(pred.loss, float)
        if predicted.shape == observed.shape and np.all(np.isfinite(predicted) & (predicted > 0)):
            out["rel_error"] = float(np.mean(np.abs(predicted - observed) / observed))
            out["log_rmse"] = float(np.sqrt(np.mean(np.log(predicted / observed) ** 2)))
        else:
            out["status"] = "failed"
            out["reason"] = "non-finite or non-positive predictions"
    if pred.lower is not None and pred.upper is not None:
        lower, upper = np.asarray(pred.lower, float), np.asarray(pred.upper, float)
        out["coverage90"] = float(np.mean((observed >= lower) & (observed <= upper)))
        out["width90"] = float(np.mean((upper - lower) / observed))
    out |= compute_optimal(pred.params)
    if "exponent" in pred.params:  # methods that fit the allocation, not the loss
        out["exponent"] = float(pred.params["exponent"])
    if "exponent" in out and "published_exponent" in case.info:
        out["exponent_error"] = abs(out["exponent"] - case.info["published_exponent"])
    out["params"] = json.dumps({k: float(v) for k, v in pred.params.items()})
    return out


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (JAX appends notes after it)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]


def compute_optimal(params: dict) -> dict:
    """Exponent a of N_opt ~ C^a and D/N at CHINCHILLA_BUDGET for Chinchilla-form parameters
    (C = 6ND), else nothing.

    >>> from slaws import bench
    >>> hoffmann = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    >>> out = bench.compute_optimal(hoffmann)
    >>> round(out["exponent"], 4), round(out["tokens_per_param"], 1)
    (0.4516, 92.8)
    >>> bench.compute_optimal({"a": 1.0})
    {}
    """
    try:
        A, B, alpha, beta = (float(params[k]) for k in ("A", "B", "alpha", "beta"))
    except (KeyError, TypeError, ValueError):
        return {}
    if not all(np.isfinite([A, B, alpha, beta])) or min(A, B, alpha, beta) <= 0:
        return {}
    a = beta / (alpha + beta)
    log_g = (math.log(alpha * A) - math.log(beta * B)) / (alpha + beta)
    log_n = log_g + a * math.log(CHINCHILLA_BUDGET / 6)
    log_d = math.log(CHINCHILLA_BUDGET / 6) - log_n
    return {"exponent": a, "tokens_per_param": math.exp(log_d - log_n)}


def reproductions(tasks: Sequence[str] | None = None, *, quick: bool = False) -> pd.DataFrame:
    """Published numbers recomputed for each task's dataset: published, reproduced, tolerance,
    ok. A reproduction that raises is a row with ok False and the error as its source.

    >>> from slaws import bench
    >>> table = bench.reproductions(["datablations"], quick=True)
    >>> table[["quantity", "ok"]].values.tolist()
    [['R^2 of the published fit, 182 runs', True], ['L(6.34e9, 242e9, U=25e9)', True]]
    """
    from slaws.bench_tasks import REPRODUCTIONS

    rows = []
    for name in _known(tasks, TASKS, "task"):
        if name not in REPRODUCTIONS:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows += REPRODUCTIONS[name](quick)
        except Exception as exc:
            rows.append(
                {"dataset": name, "quantity": "(failed)", "ok": False, "source": _one_line(exc)}
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Leaderboard
# ---------------------------------------------------------------------------------------------


def leaderboard(results: pd.DataFrame) -> pd.DataFrame:
    """Per task and method: cases run, median and mean of each metric over cases, total seconds;
    methods ranked by median relative error within a task. Skipped methods keep one row with
    their reason.

    >>> from slaws import bench
    >>> results = bench.run(["bnsl-4digit"], ["official-M1", "bnsl-caballero", "scipy-lbfgsb"])
    >>> board = bench.leaderboard(results)
    >>> for row in board.itertuples():
    ...     print(row.method, row.cases, f"{row.rel_error:.4f}")
    bnsl-caballero 1/1 0.0093
    official-M1 1/1 1.2345
    scipy-lbfgsb 0/1 nan
    """
    rows = []
    for (task, method), group in results.groupby(["task", "method"], sort=False):
        done = group[group["status"] != "skipped"]
        row = {"task": task, "method": method, "cases": f"{len(done)}/{len(group)}"}
        if done.empty:
            rows.append(row | {"note": group["reason"].iloc[0]})
            continue
        for metric in METRICS:
            if metric in done and done[metric].notna().any():
                row[metric] = float(done[metric].median())
        if "rel_error" in done and done["rel_error"].notna().any():
            row["mean_rel_error"] = float(done["rel_error"].mean())
        row["seconds"] = float(done["seconds"].sum()) if "seconds" in done else np.nan
        bad = done[done["status"] != "converged"]
        if len(bad):
            reasons = bad["reason"].dropna() if "reason" in bad else pd.Series(dtype=str)
            row["note"] = f"{len(bad)} of {len(done)} {', '.join(sorted(set(bad['status'])))}"
            row["note"] += f" ({reasons.iloc[0]})" if len(reasons) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if "rel_error" in table:
        table = table.sort_values(["task", "rel_error"], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def markdown(board: pd.DataFrame, reproduced: pd.DataFrame | None, machine: dict) -> str:
    """The leaderboard (and the reproductions) as markdown.

    >>> from slaws import bench
    >>> board = bench.leaderboard(bench.run(["bnsl-4digit"], ["official-M1"]))
    >>> text = bench.markdown(board, None, {"cpu": "example", "cores": 2})
    >>> print(text.splitlines()[2][:36])
    Machine: cpu example, cores 2. Metri
    >>> [line for line in text.splitlines() if line.startswith("#")]
    ['# slaws bench', '## bnsl-4digit']
    """
    lines = ["# slaws bench", ""]
    lines.append(
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ". Metrics are "
        "medians over a task's cases; rel_error is ColPret's ARE (mean |pred - obs| / obs on "
        "held-out runs), coverage90 the share of held-out losses inside 90% intervals."
    )
    if reproduced is not None and len(reproduced):
        lines += ["", "## Published results reproduced", ""]
        lines += _md_table(reproduced, digits=7)
    for task, group in board.groupby("task", sort=False):
        spec = TASKS.get(task)
        lines += ["", f"## {task}", ""]
        if spec is not None:
            lines += [spec.description, ""]
        lines += _md_table(group.drop(columns="task"))
    return "\n".join(lines) + "\n"


def _md_table(frame: pd.DataFrame, digits: int = 4) -> list[str]:
    cols = [c for c in frame.columns if frame[c].notna().any()]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        out.append("| " + " | ".join(_fmt(row[c], digits) for c in cols) + " |")
    return out


def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return ""
        return f"{value:.{digits}g}"
    return "" if value is None else str(value).replace("|", "/")


def machine() -> dict:
    """The machine a run was measured on, for the leaderboard's header.

    >>> from slaws import bench
    >>> sorted(bench.machine())
    ['backend', 'cores', 'cpu', 'jax']
    """
    import platform

    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }


def write(results, board, reproduced, out_dir, machine: dict) -> list[Path]:
    """``bench.md``, ``bench.json`` and plots (with matplotlib) under ``out_dir``, each written
    atomically; returns their paths (the two files first).

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from slaws import bench
    >>> results = bench.run(["bnsl-4digit"], ["official-M1"])
    >>> board = bench.leaderboard(results)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = bench.write(results, board, None, tmp, {"cpu": "example"})
    ...     doc = json.loads(Path(tmp, "bench.json").read_text())
    >>> [p.name for p in paths[:2]], sorted(doc)
    (['bench.md', 'bench.json'], ['leaderboard', 'machine', 'reproductions', 'results'])
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "machine": machine,
        "leaderboard": _records(board),
        "reproductions": _records(reproduced) if reproduced is not None else [],
        "results": _records(results),
    }
    paths = [
        _atomic(out_dir / "bench.md", _text(markdown(board, reproduced, machine))),
        _atomic(out_dir / "bench.json", _text(json.dumps(doc, indent=1, allow_nan=False) + "\n")),
    ]
    return paths + _plots(results, out_dir)


def _records(frame: pd.DataFrame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [{k: v for k, v in row.items() if v is not None} for row in clean.to_dict("records")]


def _text(text: str) -> Callable[[str], object]:
    return lambda tmp: Path(tmp).write_text(text, encoding="utf-8")


def _atomic(path: Path, write: Callable[[str], object]) -> Path:
    """``write(temporary path)`` beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _plots(results: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``error_by_method.png`` and ``coverage.png`` (:mod:`slaws.plot`), when matplotlib is
    installed and there is something to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window from a batch run
    except ImportError:
        return []
    from slaws import plot

    paths = []
    if _column(results, "rel_error").notna().any():
        fig, _ = plot.method_errors(results)
        paths.append(_save(fig, out_dir / "error_by_method.png"))
    if _column(results, "coverage90").notna().any():
        fig, _ = plot.interval_coverage(results, nominal=INTERVAL)
        paths.append(_save(fig, out_dir / "coverage.png"))
    return paths


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        return _atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)


# The built-in tasks and methods register themselves.
from slaws import bench_methods, bench_tasks  # noqa: E402, F401
