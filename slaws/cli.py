"""The ``slaws`` command line.

Commands::

    slaws fit SOURCE [--law LAW] [--recipe NAME] [--objective KIND] [--delta X]
              [--columns canonical=source,...] [--fix name=value,... | --fix PRESET]
              [--max-steps N] [--method nuts|svi|bootstrap [--likelihood KIND] [--draws N]
              [--chains K] [--pool PARAMS] [--seed S]] [--json] [--out FILE] [--force] [--quiet]
    slaws forecast FIT.nc --at CSV_OR_GRID [--prob P] [--family NAME] [--law SPEC] [--seed S]
                   [--json]
    slaws compare SOURCE --laws LAW,LAW,... [--holdout FRAC] [--likelihood KIND] [--draws N]
                  [--warmup N] [--chains K] [--seed S] [--columns canonical=source,...]
                  [--json] [--out FILE] [--force] [--quiet]
    slaws optimal --law LAW --params PRESET|FIT.nc --compute C [C ...] [--flops 6ND|busbridge]
                  [--unique-tokens U] [--sample K [--seed S]] [--json] [--out FILE] [--force]
    slaws distill --student N_S [N_S ...] --compute C [C ...] [--scenario NAME]
                  [--params busbridge2025|FIT.nc] [--flops busbridge|6ND]
                  [--sample K [--seed S]] [--json] [--out FILE] [--force]
    slaws next-run FIT.nc --candidates CSV --target TARGET [--outcomes M] [--prob P]
                   [--seed S] [--flops 6ND|busbridge] [--json] [--out FILE] [--force]
    slaws bench [--datasets NAME ...] [--methods NAME ...] [--quick] [--all-cases] [--seed S]
                [--out-dir DIR] [--force] [--list] [--json] [--quiet]
    slaws demo [--json] [--quiet]
    slaws synth {chinchilla,distillation} [--seed S] [--noise X] --out FILE [--force]
    slaws laws | recipes | datasets | presets [--json]

Output: results go to stdout (with ``--json``, exactly one JSON object or list); progress
messages, ``slaws: warning: ...`` lines (e.g. :class:`slaws.data.DataWarning`) and errors go to
stderr. ``--out FILE`` writes the JSON atomically (temporary file + ``os.replace``) and refuses to
replace an existing file unless ``--force`` is given.

``optimal`` and ``distill`` (:mod:`slaws.allocation`) print one row per budget (and student
size and scenario); with ``--json`` the object holds ``law``, ``params``, ``parameters`` (what
the parameters are: point estimates, a posterior's draws, or ``--sample``'s draws from a preset's
published intervals, an approximation), ``draws``, ``flops``, ``bounds`` and ``rows`` (the
columns of :func:`slaws.allocation.compute_optimal` or :func:`slaws.allocation.distill`, in
order, NaN as null; with draws, each value is the median and ``*_q05``/``*_q95`` are quantiles).
Each row has ``at_bound`` and ``status``; a row whose status is not ``ok`` gets a ``slaws:
warning:`` line but does not change the exit code, unless every row is ``infeasible`` (no
allocation inside the bounds spends any budget asked for): then it is an input error, exit 2.

``next-run`` (:mod:`slaws.design`) ranks candidate runs (a CSV of the fit's inputs, with an
optional ``cost`` column in FLOPs, else 6ND) by the expected narrowing of the target's 90%
interval per FLOP, best first; with ``--json`` the object holds the settings, ``current`` (the
target's median, interval and width now), ``rows`` (the columns of
:func:`slaws.design.next_run`) and ``warnings`` (degenerate importance weights, also printed as
``slaws: warning:`` lines).

``compare`` (:mod:`slaws.compare`) prints one row per law, best PSIS-LOO first, with the
extrapolation score on the largest runs beside it; with ``--json`` the object holds the settings,
``good_k``, ``holdout`` (the held-out runs), ``rows`` (:data:`slaws.compare.COLUMNS`) and
``pointwise`` (each law's elpd_loo and Pareto k per run). A law whose fit fails or whose
diagnostics fail gets ``slaws: warning:`` lines and stays in the table; exit 1 only when no law
could be fitted.

Exit codes: 0 success; 2 a usage or input error (bad options, bad data, unknown names, an existing
``--out`` file), reported as one line ``slaws: error: <message>`` on stderr with nothing written;
1 a fit that found no finite objective, or an unexpected error (with a traceback). Set
``SLAWS_DEBUG=1`` to get tracebacks for the expected errors too.

JAX compilation cache: before fitting or solving, the CLI (not the library, which never changes
JAX's configuration) turns on JAX's persistent compilation cache in ``$SLAWS_JAX_CACHE`` (default
``~/.cache/slaws/jax``; set it to an empty string to turn the cache off) with
``jax_persistent_cache_min_compile_time_secs = 0`` and
``jax_persistent_cache_min_entry_size_bytes = 0``, so a repeated ``slaws fit`` of the same law
and data size (or ``slaws optimal``/``distill`` of the same shapes) skips XLA compilation.

Start-up is kept fast: jax, numpy and pandas are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

#: The committed demo data set (``slaws.synthetic.write_default()``'s output).
DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "synthetic_chinchilla.csv"
DEMO_PRESET = "hoffmann2022"
DEMO_BUDGET = 1e24

SYNTH_KINDS = ("chinchilla", "distillation")

# Kept here (not imported from slaws.flops / slaws.allocation, which import jax) for start-up.
FLOP_MODELS = ("6ND", "busbridge")
DISTILL_SCENARIOS = (
    "all",
    "supervised",
    "best-case",
    "teacher-inference",
    "teacher-pretraining",
    "teacher-pretraining-inference",
)
DISTILL_PRESET = "busbridge2025"


class CLIError(Exception):
    """An expected error: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors raise :class:`CLIError` instead of printing the usage and exiting."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _say(msg: str) -> None:
    print(f"slaws: {msg}", file=sys.stderr, flush=True)


def _warn(msg) -> None:
    print(f"slaws: warning: {_one_line(msg)}", file=sys.stderr, flush=True)


def _error(msg) -> None:
    text = _one_line(msg) or "error"
    print(f"slaws: error: {text}", file=sys.stderr, flush=True)


# --- entry point -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code: 0 on
    success, 2 for bad input (one ``slaws: error:`` line on stderr, no traceback; set
    ``SLAWS_DEBUG=1`` for one), 130 when interrupted.

    >>> from slaws.cli import main
    >>> main(["--version"])
    slaws 0.1.0
    0
    >>> main(["fit", "no-such-file.csv"])  # the error line goes to stderr
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (CLIError, ValueError, FileExistsError) as exc:
        # DataError, FitError, UnknownLawError, UnknownRecipeError and UnknownPresetError are
        # all ValueErrors.
        if os.environ.get("SLAWS_DEBUG"):
            raise
        _error(exc)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `slaws laws | head -1`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The ``slaws`` argument parser, one sub-command per ``cmd_*`` handler.

    >>> from slaws.cli import build_parser
    >>> argv = ["optimal", "--law", "chinchilla", "--params", "epoch2024", "--compute", "1e22"]
    >>> args = build_parser().parse_args(argv)
    >>> args.func.__name__, args.compute
    ('cmd_optimal', [1e+22])
    """
    from slaws import __version__

    parser = _Parser(
        prog="slaws",
        description="Fit neural scaling laws (JAX). Run 'slaws COMMAND --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"slaws {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "fit",
        help="fit a law to a data file or registered dataset",
        description="Fit LAW to SOURCE from the law's (or the recipe's) grid of starts and "
        "print the best fit.",
    )
    p.add_argument("source", metavar="SOURCE", help="a .csv/.tsv/.parquet file or dataset name")
    p.add_argument(
        "--law",
        help="law name (see 'slaws laws') or module:attribute; optional with a recipe that "
        "covers one law",
    )
    p.add_argument("--recipe", metavar="NAME", help="a published procedure (see 'slaws recipes')")
    p.add_argument(
        "--objective",
        metavar="KIND",
        help="huber (default), squared_log, squared or huber_likelihood",
    )
    p.add_argument("--delta", type=float, metavar="X", help="Huber delta (default 1e-3)")
    p.add_argument(
        "--columns",
        metavar="canonical=source,...",
        help="map canonical columns to the file's, e.g. 'N=params,loss=val_loss'",
    )
    p.add_argument(
        "--fix",
        metavar="name=value,...|PRESET",
        help="hold parameters fixed at the given values, or at a preset's (see 'slaws presets')",
    )
    p.add_argument("--max-steps", type=int, metavar="N", help="solver steps per start")
    p.add_argument(
        "--method",
        default="multistart",
        choices=("multistart", "nuts", "svi", "bootstrap"),
        help="multistart point fit (default), or a posterior: nuts, svi or bootstrap",
    )
    p.add_argument(
        "--likelihood",
        choices=("student_t", "normal", "huber"),
        help="posterior methods: noise model on log loss (default student_t)",
    )
    p.add_argument("--draws", type=int, metavar="N", help="posterior draws per chain (1000)")
    p.add_argument("--chains", type=int, metavar="K", help="NUTS chains (4)")
    p.add_argument(
        "--pool",
        metavar="PARAMS",
        help="--method nuts: one fit over the families of the 'family' column with these "
        "parameters partially pooled ('all', or e.g. E,alpha,beta; the rest shared)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="also write the result to FILE: JSON for multistart, netCDF (FIT.nc) for posteriors",
    )
    p.add_argument("--force", action="store_true", help="let --out replace an existing FILE")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "forecast",
        help="forecast losses with credible and predictive intervals from a posterior file",
        description="Forecast the loss at new inputs from FIT.nc (written by 'slaws fit "
        "--method nuts|svi|bootstrap --out FIT.nc'), flagging extrapolation.",
    )
    p.add_argument("fit_file", metavar="FIT.nc", help="a posterior written by slaws fit --out")
    p.add_argument(
        "--at",
        required=True,
        metavar="CSV_OR_GRID",
        help="a CSV of inputs, or a grid 'N=1e9:7e10,D=2e10:1.4e12' (Cartesian product)",
    )
    p.add_argument("--prob", type=float, default=0.9, metavar="P", help="interval mass (0.9)")
    p.add_argument(
        "--family",
        metavar="NAME",
        help="with a hierarchical fit (--pool): the family to forecast, or 'population' for a "
        "new one",
    )
    p.add_argument(
        "--law",
        metavar="SPEC",
        help="the posterior's law when it is a user's, as fitted: 'package.module:attribute' "
        "(a registered law is found by the name FIT.nc records)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser(
        "compare",
        help="rank laws for a dataset by PSIS-LOO and by extrapolation to the largest runs",
        description="Sample every law's posterior on SOURCE with NUTS (the same likelihood on "
        "log loss, draws and seed for all) and rank the laws by PSIS-LOO (arviz), with Pareto k "
        "diagnostics; beside it, each law refitted without the largest runs (by 6ND, or the "
        "laws' one input) scored on them: log predictive density, RMSE of log loss and 90% "
        "predictive coverage.",
    )
    p.add_argument("source", metavar="SOURCE", help="a .csv/.tsv/.parquet file or dataset name")
    p.add_argument(
        "--laws",
        required=True,
        metavar="LAW,LAW,...",
        help="laws to compare (see 'slaws laws'), or module:attribute for your own",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        metavar="FRAC",
        help="share of the runs held out, the largest (default 0.2; 0: no extrapolation score)",
    )
    p.add_argument(
        "--likelihood",
        default="student_t",
        choices=("student_t", "normal", "huber"),
        help="noise model on log loss, the same for every law (default student_t)",
    )
    p.add_argument("--draws", type=int, default=1000, metavar="N", help="draws per chain (1000)")
    p.add_argument("--warmup", type=int, default=1000, metavar="N", help="warm-up steps (1000)")
    p.add_argument("--chains", type=int, default=4, metavar="K", help="NUTS chains (4)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--columns",
        metavar="canonical=source,...",
        help="map canonical columns to the file's, e.g. 'N=params,loss=val_loss'",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")
    p.add_argument("--force", action="store_true", help="let --out replace an existing FILE")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "optimal",
        help="compute-optimal model size N and tokens D at given FLOP budgets",
        description="Minimise LAW's loss over N and D subject to C = 3 F(N) D (C = 6ND with "
        "--flops 6ND) at each budget C, with N and D in [1e6, 1e17]. With a posterior (FIT.nc "
        "from 'slaws fit --method nuts|svi|bootstrap --out FIT.nc') or --sample, every draw is "
        "solved: values are medians with _q05/_q95 quantile columns.",
    )
    p.add_argument("--law", required=True, help="law name (see 'slaws laws'), a law of N and D")
    _add_budget_options(p, params_default=None, flops_default="6ND")
    p.add_argument(
        "--unique-tokens",
        type=_positive_number("--unique-tokens"),
        metavar="U",
        help="unique tokens available (law data_constrained; default: every token is unique)",
    )
    _add_draw_and_output_options(p)
    p.set_defaults(func=cmd_optimal)

    p = sub.add_parser(
        "distill",
        help="compute-optimal distillation (Busbridge et al. 2025) for student sizes and budgets",
        description="For each student size N_S and budget C, choose the student's tokens and "
        "the teacher's size and tokens that minimise the student's loss under Busbridge et al. "
        "2025's distillation law (arXiv:2502.08606, Eq. 9 costs, Table 2 scenarios), with "
        "every variable in [1e6, 1e17]; 'supervised' is the same student trained without a "
        "teacher.",
    )
    p.add_argument(
        "--student",
        required=True,
        nargs="+",
        type=_positive_number("--student"),
        metavar="N_S",
        help="student sizes (non-embedding parameters), e.g. 1e9 3e9",
    )
    p.add_argument(
        "--scenario",
        default="all",
        choices=DISTILL_SCENARIOS,
        metavar="NAME",
        help=f"{', '.join(DISTILL_SCENARIOS)} (default all)",
    )
    _add_budget_options(p, params_default=DISTILL_PRESET, flops_default="busbridge")
    _add_draw_and_output_options(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser(
        "next-run",
        help="rank candidate runs by the expected narrowing of a target's interval per FLOP",
        description="For each candidate run, simulate its outcome from the posterior in FIT.nc "
        "(written by 'slaws fit --method nuts|svi|bootstrap --out FIT.nc'), reweight the "
        "posterior's draws by it, and report how much the run is expected to narrow the "
        "interval of log TARGET, per FLOP; best first.",
    )
    p.add_argument("fit_file", metavar="FIT.nc", help="a posterior written by slaws fit --out")
    p.add_argument(
        "--candidates",
        required=True,
        metavar="CSV",
        help="candidate runs: the fit's input columns (N, D, ...) and optionally 'cost' in FLOPs "
        "(default 3 F(N) D: 6ND)",
    )
    p.add_argument(
        "--target",
        required=True,
        metavar="TARGET",
        help="optimal_N@C, optimal_D@C, optimal_loss@C (compute-optimal at C FLOPs) or "
        "loss@N=7e10,D=1.4e12 (any law inputs)",
    )
    p.add_argument(
        "--outcomes", type=int, default=64, metavar="M", help="outcomes simulated per run (64)"
    )
    p.add_argument("--prob", type=float, default=0.9, metavar="P", help="interval mass (0.9)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--flops",
        default="6ND",
        choices=FLOP_MODELS,
        help="FLOP model pricing runs without a cost and defining C in optimal_* (default 6ND)",
    )
    p.add_argument("--json", action="store_true", help='print {..., "rows": [...]}')
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")
    p.add_argument("--force", action="store_true", help="let --out replace an existing FILE")
    p.set_defaults(func=cmd_next_run)

    p = sub.add_parser(
        "grid",
        help="statistics of a law over posterior draws on a huge grid, written to netCDF",
        description="Evaluate LAW for every parameter draw at every point of the Cartesian "
        "product of the --axis ranges and reduce over the draws (mean, sd, quantiles, P(loss <= "
        "t), argmin along an axis) without holding draws x grid in memory. Runs on every device "
        "(and every process under jax.distributed); writes --out block by block and resumes a "
        "killed run from OUT.parts.",
    )
    p.add_argument("--law", required=True, help="law name (see 'slaws laws')")
    _add_params_option(p)
    p.add_argument(
        "--axis",
        required=True,
        action="append",
        metavar="NAME=START:STOP:NUM[:log]|NAME=V1,V2",
        help="a grid axis, repeated: e.g. N=1e8:1e12:1000:log, D=1e9,1e10, L_T=2.1; C with N "
        "stands for D = C / 3F(N) (isoFLOP lines)",
    )
    p.add_argument(
        "--stats",
        default="mean,sd,q05,q95",
        metavar="LIST",
        help="mean, sd and quantiles qNN (q05 = 5%%, q975 = 97.5%%); default mean,sd,q05,q95",
    )
    p.add_argument(
        "--below",
        nargs="+",
        type=float,
        default=(),
        metavar="T",
        help="also the share of draws with loss <= T at each point",
    )
    p.add_argument(
        "--argmin",
        metavar="AXIS",
        help="also each draw's minimiser along AXIS (e.g. N on isoFLOP lines), summarised",
    )
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument(
        "--max-memory", default="2GB", metavar="SIZE", help="memory bound, e.g. 2GB (default)"
    )
    p.add_argument(
        "--quantile-tol",
        type=float,
        default=2e-3,
        metavar="X",
        help="rank tolerance of quantiles (default 0.002)",
    )
    p.add_argument("--flops", default="6ND", choices=FLOP_MODELS, help="FLOP model for C axes")
    _add_sample_options(p)
    p.add_argument("--out", required=True, metavar="FILE.nc", help="netCDF file to write")
    p.add_argument("--force", action="store_true", help="replace an existing FILE.nc")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--distributed",
        metavar="HOST:PORT,N,I",
        help="join N processes with jax.distributed (coordinator HOST:PORT, this one I); "
        "'auto' detects SLURM, Open MPI or Cloud TPU. Every process runs the same command; "
        "process 0 writes FILE.nc",
    )
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser(
        "demo",
        help="fit the bundled synthetic Chinchilla data and compare with the truth",
        description="Fit law 'chinchilla' to data/synthetic_chinchilla.csv (made from preset "
        "hoffmann2022 with 1% log-normal noise), compare fitted and true parameters, and the "
        "compute-optimal N and D at 1e24 FLOPs.",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "synth",
        help="write a seeded synthetic data set as CSV",
        description="Write a synthetic data set from slaws.synthetic: 'chinchilla' "
        "(chinchilla_like: law chinchilla, preset hoffmann2022, 72 rows) or 'distillation' "
        "(distillation_like: preset busbridge2025, 690 rows).",
    )
    p.add_argument("kind", choices=SYNTH_KINDS, metavar="{chinchilla,distillation}")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--noise",
        type=float,
        metavar="X",
        help="sd of log loss (default 0.01 for chinchilla, 0.005 for distillation)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="CSV file to write")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "bench",
        help="benchmark fitting methods on real public data",
        description="Fit every method to every benchmark task's smaller runs, score the "
        "held-out larger runs (relative error, log RMSE, 90% interval coverage, exponents, "
        "time), first recomputing each dataset's published numbers; write a markdown "
        "leaderboard, a JSON file and plots to --out-dir.",
    )
    p.add_argument(
        "--datasets", nargs="+", metavar="NAME", help="tasks to run (default: all; see --list)"
    )
    p.add_argument("--methods", nargs="+", metavar="NAME", help="methods (default: all)")
    p.add_argument(
        "--quick", action="store_true", help="fewer cases and only the fast methods (CI)"
    )
    p.add_argument(
        "--all-cases",
        action="store_true",
        help="run the slow methods (posteriors, rarer objectives) on every case, not 8 per task",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        help="where bench.md, bench.json and plots go (default benchmarks/results/bench, "
        "or benchmarks/results/bench-quick with --quick)",
    )
    p.add_argument("--force", action="store_true", help="replace existing results in DIR")
    p.add_argument("--list", action="store_true", help="list the tasks and methods and exit")
    p.add_argument("--json", action="store_true", help="print the leaderboard as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_bench)

    for name, func, what in (
        ("laws", cmd_laws, "registered laws"),
        ("recipes", cmd_recipes, "published fitting recipes"),
        ("datasets", cmd_datasets, "registered public datasets"),
        ("presets", cmd_presets, "published coefficient presets"),
    ):
        p = sub.add_parser(name, help=f"list {what}", description=f"List the {what}.")
        p.add_argument("--json", action="store_true", help="print a JSON list of objects")
        p.set_defaults(func=func)
    return parser


def _positive_number(flag: str):
    """An argparse ``type``: a positive finite number, ``1e24`` style accepted."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a positive finite number (e.g. 1e24)"
            )
        return value

    parse.__name__ = flag
    return parse


def _add_params_option(p, default: str | None = None) -> None:
    p.add_argument(
        "--params",
        required=default is None,
        default=default,
        metavar="PRESET|FIT.nc",
        help="a preset (see 'slaws presets') or a posterior written by 'slaws fit --method "
        "nuts|svi|bootstrap --out FIT.nc'" + ("" if default is None else f" (default {default})"),
    )


def _add_sample_options(p) -> None:
    p.add_argument(
        "--sample",
        type=int,
        metavar="K",
        help="use K parameter sets drawn from the preset's published intervals "
        "(an approximation: independent marginals)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="seed of --sample (default 0)")


def _add_budget_options(p, *, params_default: str | None, flops_default: str) -> None:
    """--params, --compute and --flops of ``optimal`` and ``distill``."""
    _add_params_option(p, params_default)
    p.add_argument(
        "--compute",
        required=True,
        nargs="+",
        type=_positive_number("--compute"),
        metavar="C",
        help="FLOP budgets, e.g. 1e22 1e24",
    )
    p.add_argument(
        "--flops",
        default=flops_default,
        choices=FLOP_MODELS,
        help=f"FLOP model: 6ND (C = 6ND) or busbridge (attention and embedding terms, "
        f"Busbridge et al. 2025 Eq. 69); default {flops_default}",
    )


def _add_draw_and_output_options(p) -> None:
    """--sample, --seed, --json, --out and --force of ``optimal`` and ``distill``."""
    _add_sample_options(p)
    p.add_argument("--json", action="store_true", help='print {..., "rows": [...]}')
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")
    p.add_argument("--force", action="store_true", help="let --out replace an existing FILE")


# --- shared helpers ----------------------------------------------------------------------------


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache (see the module docstring); return its dir,
    or None where ``SLAWS_JAX_CACHE`` is empty (the cache stays off).

    >>> import os
    >>> from slaws.cli import enable_compilation_cache
    >>> os.environ["SLAWS_JAX_CACHE"] = ""
    >>> enable_compilation_cache() is None
    True
    >>> del os.environ["SLAWS_JAX_CACHE"]
    """
    import jax

    path = os.environ.get("SLAWS_JAX_CACHE")
    if path is None:
        path = os.path.join(os.path.expanduser("~"), ".cache", "slaws", "jax")
    if not path:
        return None
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


@contextlib.contextmanager
def _data_warnings_to_stderr():
    """Print every DataWarning and FitWarning as one ``slaws: warning:`` line; other warnings
    as usual."""
    from slaws.data import DataWarning
    from slaws.fitting import FitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.simplefilter("always", FitWarning)
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DataWarning | FitWarning):
                _warn(message)
            else:
                original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _check_out(path: str | None, force: bool) -> Path | None:
    """Refuse an --out FILE that exists (without --force) or cannot be written, before any work."""
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise CLIError(f"--out {path}: is a directory")
    if out.exists() and not force:
        raise FileExistsError(f"--out {path}: file exists; use --force to overwrite it")
    parent = out.parent
    if not parent.is_dir():
        raise CLIError(f"--out {path}: directory {str(parent)!r} does not exist")
    return out


def _write_atomic(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"--out {path}: file exists; use --force to overwrite it")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _finite_or_none(value):
    """JSON has no inf/nan: replace them by null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _dumps(obj) -> str:
    return json.dumps(_finite_or_none(obj), allow_nan=False)


def _progress(args):
    return None if getattr(args, "quiet", False) else _say


def _g(value, digits: int = 6) -> str:
    return f"{value:.{digits}g}" if value is not None else "-"


# --- fit -----------------------------------------------------------------------------------


def _parse_columns(text: str) -> dict[str, str]:
    usage = "expected canonical=source[,canonical=source...], e.g. 'N=params,loss=val_loss'"
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        name, sep, col = (s.strip() for s in entry.partition("="))
        if not sep or not name or not col:
            raise CLIError(f"bad --columns entry {entry.strip()!r}: {usage}")
        if name in mapping:
            raise CLIError(f"bad --columns: {name!r} is mapped twice")
        mapping[name] = col
    return mapping


def _parse_fix(text: str) -> dict[str, float] | str:
    text = text.strip()
    if "=" not in text:
        if not text or "," in text:
            raise CLIError(f"bad --fix {text!r}: expected name=value[,name=value...] or a preset")
        return text  # a preset name; fit() checks it
    fixed: dict[str, float] = {}
    for entry in text.split(","):
        name, sep, value = (s.strip() for s in entry.partition("="))
        if not sep or not name or not value:
            raise CLIError(
                f"bad --fix entry {entry.strip()!r}: expected name=value[,name=value...] "
                "or a preset name"
            )
        try:
            number = float(value)
        except ValueError:
            raise CLIError(
                f"bad --fix entry {entry.strip()!r}: {value!r} is not a number"
            ) from None
        if not math.isfinite(number):
            raise CLIError(f"bad --fix entry {entry.strip()!r}: value must be finite")
        if name in fixed:
            raise CLIError(f"bad --fix: {name!r} is given twice")
        fixed[name] = number
    return fixed


def _fit_options(args) -> dict:
    """Check the options that need no jax; return keyword arguments for ``fit``."""
    options: dict = {}
    if args.recipe is not None:
        options["recipe"] = args.recipe
    if args.objective is not None:
        options["objective"] = args.objective
    if args.delta is not None:
        if not (math.isfinite(args.delta) and args.delta > 0):
            raise CLIError(f"--delta must be a finite number > 0, not {args.delta!r}")
        if args.objective in ("squared", "squared_log"):
            raise CLIError(
                f"conflicting options: --delta applies to Huber objectives, not {args.objective!r}"
            )
        options["delta"] = args.delta
    if args.columns is not None:
        options["columns"] = _parse_columns(args.columns)
    if args.fix is not None:
        options["fixed"] = _parse_fix(args.fix)
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise CLIError(f"--max-steps must be >= 1, not {args.max_steps}")
        options["max_steps"] = args.max_steps
    return options


def _check_fix_preset(law_name: str, preset_name: str) -> None:
    """A preset that fixes none of the law's parameters is almost surely a mistake."""
    from slaws.law import get_law
    from slaws.presets import get_preset

    law = get_law(law_name)
    preset = get_preset(preset_name)
    if not set(preset["params"]) & set(law.param_names):
        raise CLIError(
            f"--fix {preset_name}: preset is for law {preset['law']!r} and fixes none of the "
            f"parameters of law {law.name!r} ({', '.join(law.param_names)})"
        )


def _recipe_law(recipe: str | None) -> str:
    """The law a recipe implies when --law is left out (epoch2024 -> chinchilla)."""
    if recipe is None:
        raise ValueError("give --law LAW (see 'slaws laws') or a --recipe that implies one")
    from slaws.recipes import get_recipe

    laws = list(get_recipe(recipe).grids)
    if len(laws) != 1:
        raise ValueError(f"recipe {recipe!r} covers laws {', '.join(laws)}: choose one with --law")
    return laws[0]


def cmd_fit(args) -> int:
    if args.method != "multistart":
        return _fit_posterior(args)
    for flag in ("likelihood", "draws", "chains"):
        if getattr(args, flag) is not None:
            raise CLIError(f"conflicting options: --{flag} needs --method nuts, svi or bootstrap")
    options = _fit_options(args)
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    from slaws.fitting import fit

    law = args.law or _recipe_law(args.recipe)
    if isinstance(options.get("fixed"), str):
        _check_fix_preset(law, options["fixed"])
    with _data_warnings_to_stderr():
        result = fit(law, args.source, progress=_progress(args), **options)
    text = _dumps(result.to_dict())
    if out is not None:
        _write_atomic(out, text + "\n", args.force)
    if args.json:
        print(text)
    else:
        print(_fit_summary(result))
    if result.status == "failed":
        _warn("fit failed: no start gave a finite objective")
        return 1
    return 0


def _fit_posterior(args) -> int:
    """``slaws fit --method nuts|svi|bootstrap``: a posterior, summarised, saved as netCDF."""
    for flag in ("objective", "delta", "max_steps"):
        if getattr(args, flag) is not None:
            raise CLIError(
                f"conflicting options: --{flag.replace('_', '-')} is for --method multistart"
            )
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, not {args.seed}")
    for flag in ("draws", "chains"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CLIError(f"--{flag} must be >= 1, not {value}")
    if args.chains is not None and args.method != "nuts":
        raise CLIError("conflicting options: --chains is for --method nuts")
    if args.pool is not None and (args.method != "nuts" or args.recipe):
        raise CLIError("conflicting options: --pool is for --method nuts without --recipe")
    options = _fit_options(args)
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    from slaws import bayes

    law = args.law or _recipe_law(args.recipe)
    if isinstance(options.get("fixed"), str):
        _check_fix_preset(law, options["fixed"])
    kwargs = {
        key: value
        for key, value in (
            ("likelihood", args.likelihood),
            ("draws", args.draws),
            ("chains", args.chains),
        )
        if value is not None
    }
    if args.method == "bootstrap" and "draws" not in kwargs:
        kwargs["draws"] = 4000
    pooled = None if args.pool in (None, "all") else [p.strip() for p in args.pool.split(",")]
    if pooled:
        from slaws.law import get_law

        names = get_law(law).param_names
        for name in pooled:
            if name not in names:
                raise CLIError(
                    f"--pool: law {law!r} has no parameter {name!r} ({', '.join(names)})"
                )
    if not args.quiet:
        how = f"nuts, {args.pool} pooled across families" if args.pool else args.method
        _say(f"sampling the posterior of {law!r} with {how}")
    with _data_warnings_to_stderr(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bayes.PosteriorWarning)
        if args.pool is not None:
            from slaws import hierarchical

            tree = hierarchical.sample(
                law,
                args.source,
                pooled=pooled,
                seed=args.seed,
                columns=options.get("columns"),
                fixed=options.get("fixed"),
                **kwargs,
            )
        else:
            tree = bayes.sample(
                law,
                args.source,
                method=args.method,
                seed=args.seed,
                recipe=options.get("recipe"),
                columns=options.get("columns"),
                fixed=options.get("fixed"),
                **kwargs,
            )
    for w in caught:
        if issubclass(w.category, bayes.PosteriorWarning):
            _warn(w.message)
    summary = bayes.summarize(tree)
    if out is not None:
        bayes.save(tree, out, force=args.force)
    if args.json:
        print(_dumps(summary))
    else:
        print(_posterior_summary(summary))
    return 0


def _posterior_summary(summary) -> str:
    lines = [
        f"law        {summary['law']}",
        f"method     {summary['method']} ({summary['likelihood']} likelihood)",
        f"recipe     {summary['recipe'] or '-'}",
        f"n_points   {summary['n_points']}",
        f"status     {summary['status']}",
        "",
        f"{'param':<12} {'mean':>11} {'sd':>11} {'q05':>11} {'q95':>11} {'r_hat':>6} {'ess':>6}",
    ]
    for name, s in summary["params"].items():
        r_hat = "-" if s["r_hat"] is None else f"{s['r_hat']:.3f}"
        ess = "-" if s["ess_bulk"] is None else f"{s['ess_bulk']:.0f}"
        lines.append(
            f"{name:<12} {_g(s['mean']):>11} {_g(s['sd']):>11} {_g(s['q05']):>11} "
            f"{_g(s['q95']):>11} {r_hat:>6} {ess:>6}"
        )
    return "\n".join(lines)


def _fit_summary(result) -> str:
    lines = [
        f"law        {result.law}",
        f"recipe     {result.recipe or '-'}",
        f"objective  {result.objective_name} = {_g(result.objective)}",
        f"n_points   {result.n_points}",
        f"n_starts   {result.n_starts}",
        f"status     {result.status}",
        f"seconds    {result.seconds:.2f}",
        "",
        f"{'param':<14} {'value':>14}",
    ]
    for name, value in result.params.items():
        note = "  (fixed)" if name in result.fixed else ""
        lines.append(f"{name:<14} {_g(value):>14}{note}")
    for name, value in result.extra.items():
        lines.append(f"{name:<14} {_g(value):>14}  (objective)")
    return "\n".join(lines)


def cmd_forecast(args) -> int:
    import itertools

    if not os.path.isfile(args.fit_file):
        raise CLIError(f"no such posterior file {args.fit_file!r}")
    if os.path.isfile(args.at) or args.at.endswith((".csv", ".tsv", ".parquet")):
        from slaws.data import load

        at = load(args.at, required=())
        at = at[[c for c in at.columns if c != "loss"]]
    else:
        axes = {}
        for part in args.at.split(","):
            name, sep, values = part.partition("=")
            try:
                axes[name.strip()] = [float(v) for v in values.split(":")]
            except ValueError:
                raise CLIError(f"--at: cannot read {part!r} as name=v1:v2:...") from None
            if not sep or not name.strip():
                raise CLIError(f"--at: expected name=v1:v2:..., got {part!r}")
        rows = list(itertools.product(*axes.values()))
        import pandas as pd

        at = pd.DataFrame(rows, columns=list(axes))
    from slaws import bayes

    tree = bayes.load(args.fit_file)  # a bad file is one ValueError line naming it
    if args.family is not None:
        from slaws import hierarchical

        tree = hierarchical.family_posterior(tree, args.family, seed=args.seed)
    from slaws.law import UnknownLawError, get_law

    try:
        law = get_law(args.law) if args.law else None
        table = bayes.forecast(tree, at, prob=args.prob, seed=args.seed, law=law)
    except UnknownLawError as error:
        if args.law:
            raise
        raise CLIError(f"{error}; name a user's law with --law package.module:attribute") from None
    if args.json:
        print(_dumps({"rows": table.to_dict(orient="records")}))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


# --- compare -----------------------------------------------------------------------------------


def cmd_compare(args) -> int:
    laws = [name.strip() for name in args.laws.split(",")]
    if not all(laws):
        raise CLIError(f"bad --laws {args.laws!r}: expected LAW,LAW,... (see 'slaws laws')")
    if not (math.isfinite(args.holdout) and 0 <= args.holdout < 1):
        raise CLIError(f"--holdout must be a share in [0, 1), not {args.holdout!r}")
    for flag in ("draws", "warmup", "chains"):
        if getattr(args, flag) < 1:
            raise CLIError(f"--{flag} must be >= 1, not {getattr(args, flag)}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, not {args.seed}")
    columns = _parse_columns(args.columns) if args.columns is not None else None
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    from slaws.compare import compare

    with _data_warnings_to_stderr():
        table = compare(
            args.source,
            laws,
            likelihood=args.likelihood,
            draws=args.draws,
            warmup=args.warmup,
            chains=args.chains,
            seed=args.seed,
            holdout=args.holdout,
            columns=columns,
            progress=_progress(args),
        )
    settings = {k: v for k, v in table.attrs.items() if k != "pointwise"}
    rows = table.to_dict(orient="records")  # <NA> ranks as None; _dumps makes NaN null
    result = {**settings, "rows": rows, "pointwise": table.attrs["pointwise"]}
    text = _dumps(result)
    if out is not None:
        _write_atomic(out, text + "\n", args.force)
    print(text if args.json else _compare_summary(result))
    for row in rows:
        for message in row["warnings"]:
            _warn(f"{row['law']}: {message}")
    return 1 if all(row["status"] == "failed" for row in rows) else 0


def _compare_summary(result) -> str:
    holdout = result["holdout"]
    if holdout["n_holdout"]:
        held = (
            f"the {holdout['n_holdout']} largest runs by {holdout['by']} ({holdout['by']} >= "
            f"{holdout['min_size']:.3g}); each law refitted on the other {holdout['n_train']}"
        )
    else:
        held = "none (--holdout 0)"
    good_k = result["good_k"]
    k_header = "k>good" if good_k is None else f"k>{good_k:.2f}"
    columns = [
        ("law", "law", None),
        ("rank", "rank", str),
        ("elpd_loo", "elpd_loo", lambda v: f"{v:.1f}"),
        ("se", "se", lambda v: f"{v:.1f}"),
        ("p_loo", "p_loo", lambda v: f"{v:.1f}"),
        ("d_elpd", "d_elpd", lambda v: f"{v:.1f}"),
        ("d_se", "d_se", lambda v: f"{v:.1f}"),
        ("weight", "weight", lambda v: f"{v:.2f}"),
        ("pareto_k_max", "k_max", lambda v: f"{v:.2f}"),
        ("n_high_k", k_header, str),
        ("holdout_lpd", "hold_lpd", lambda v: f"{v:.1f}"),
        ("holdout_rmse", "hold_rmse", lambda v: f"{v:.3g}"),
        ("holdout_coverage", "hold_cov", lambda v: f"{100 * v:.0f}%"),
        ("holdout_rank", "hold_rank", str),
        ("status", "status", None),
    ]
    lines = [
        f"source     {result['source']}: {result['n_points']} runs",
        f"posterior  NUTS, {result['chains']} chains x {result['draws']} draws after "
        f"{result['warmup']} warm-up steps, {result['likelihood']} likelihood on log loss, "
        f"seed {result['seed']}",
        f"holdout    {held}",
        "",
        _table(result["rows"], columns),
        "",
        "elpd_loo, se: PSIS-LOO expected log predictive density of log loss (higher is better)",
        "d_elpd, d_se: difference from the best law, and its standard error; weight: stacking",
        f"k_max, {k_header}: largest Pareto k, runs above arviz's good_k (LOO unreliable there)",
    ]
    if holdout["n_holdout"]:
        lines += [
            "hold_*: the held-out runs under the posterior without them: summed log predictive",
            "        density, RMSE of log loss of the median prediction, share inside the 90%",
            "        predictive interval, rank by hold_lpd",
        ]
    return "\n".join(lines)


# --- optimal and distill -----------------------------------------------------------------------

_STATUS_REASONS = {
    "not_converged": "the optimiser stopped above its gradient tolerance (share of draws in "
    "brackets); the allocation may be slightly off",
    "infeasible": "no allocation with every variable inside the bounds [1e6, 1e17] spends this "
    "budget",
}


def _check_draw_options(args) -> None:
    if args.sample is not None and args.sample < 1:
        raise CLIError(f"--sample must be >= 1, not {args.sample}")
    if args.seed is not None:
        if args.sample is None:
            raise CLIError("conflicting options: --seed is the seed of --sample")
        if args.seed < 0:
            raise CLIError(f"--seed must be >= 0, not {args.seed}")


def _allocation_params(args, law) -> dict:
    """Resolve ``--params`` (a preset name or a posterior file) for ``law`` into parameter draws
    before any solving. Returns ``source`` (the draws), ``parameters`` (a description for the
    output), ``draws`` (how many) and ``warning`` (for ``--sample``, else None)."""
    from slaws import allocation
    from slaws.presets import PRESETS

    text, sample = args.params, args.sample or 0
    try:
        draws = allocation.parameter_draws(text, law, sample=sample, seed=args.seed or 0)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CLIError(f"--params {text}: {exc}") from None
    n = len(draws[law.param_names[0]])
    warning = None
    if text not in PRESETS:
        parameters = f"posterior {text} ({n} draws)"
    elif not sample:
        parameters = f"preset {text} (point estimates)"
    else:
        level = f"{PRESETS[text].get('interval_level', 0.9):.0%}"
        parameters = (
            f"preset {text} sampled {sample} times from its published {level} intervals "
            "(approximation: independent marginals)"
        )
        warning = (
            f"--sample {sample}: parameters drawn independently from preset {text}'s published "
            f"{level} intervals (normal, or log-normal for log-scale parameters); the paper gives "
            "marginal intervals, not a joint posterior, so the quantiles are an approximation"
        )
    return {"source": draws, "parameters": parameters, "draws": n, "warning": warning}


def _allocation_result(args, law: str, params: dict, extra: dict, frame) -> dict:
    from slaws import allocation

    result = {
        "law": law,
        "params": args.params,
        "parameters": params["parameters"],
        "draws": params["draws"],
    }
    if args.sample:
        result["seed"] = args.seed or 0
    if params["draws"] > 1:
        result["values"] = "medians over the draws; *_q05 and *_q95: 5% and 95% quantiles"
    result |= {"flops": args.flops, **extra, "bounds": list(allocation.BOUNDS)}
    result["rows"] = frame.to_dict(orient="records")  # infeasible rows: NaN -> null
    return result


def _training_cost(log_forward, n: float, tokens: float) -> float:
    """FLOPs of training ``n`` parameters on ``tokens`` tokens: 3 F(N) D."""
    return 3.0 * tokens * math.exp(float(log_forward(math.log(n))))


def _nothing_feasible(frame, budget_text) -> None:
    """Every row infeasible: nothing to report, so a one-line error (exit 2) instead of a table
    of blanks. ``budget_text(row)`` says what made the first row impossible."""
    if (frame["status"] == "infeasible").all():
        others = len(frame) - 1
        more = f" (and {others} more plan{'s' * (others > 1)})" if others else ""
        raise CLIError(f"{budget_text(frame.iloc[0])}{more}")


def _emit_allocation(args, out, result, table: str, label) -> int:
    """Write ``--out``, print the JSON or the table, then one warning per row not ``ok``."""
    text = _dumps(result)
    if out is not None:
        _write_atomic(out, text + "\n", args.force)
    print(text if args.json else table)
    for row in result["rows"]:
        if row["status"] != "ok":
            reason = _STATUS_REASONS.get(row["status"].split("(")[0], "")
            _warn(f"{label(row)}: status {row['status']}: {reason}")
    return 0


def _number(digits: int):
    return lambda v: f"{v:.{digits}g}"


def _percent(v) -> str:
    return f"{100 * v:.1f}%"


def _table(rows: list[dict], columns: list[tuple]) -> str:
    """An aligned text table of ``rows``: ``columns`` lists (key, header, format or None for
    text); keys missing from the rows are skipped, and missing values print as ``-``."""
    columns = [c for c in columns if rows and c[0] in rows[0]]
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row[key]
            if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                line.append("-")
            else:
                line.append(fmt(value) if fmt else str(value))
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if fmt is None else cell.rjust(w)
            for cell, w, (_, _, fmt) in zip(line, widths, columns, strict=True)
        ).rstrip()
        for line in cells
    )


def _header(result: dict, extra: list[tuple[str, str]]) -> list[str]:
    lo, hi = result["bounds"]
    lines = [
        f"law         {result['law']}",
        f"parameters  {result['parameters']}",
        f"flops       {result['flops']}",
        *(f"{key:<11} {value}" for key, value in extra),
        f"bounds      every size and token count in [{lo:.0e}, {hi:.0e}]",
    ]
    if "values" in result:
        lines.append(f"values      {result['values']}")
    return [*lines, ""]


def _footer(result: dict) -> list[str]:
    lines = []
    if any(row.get("at_bound") for row in result["rows"]):
        lines.append(
            "at_bound: variables within 0.1% of a bound (share of draws in brackets when not all)"
        )
    if result["draws"] > 1:
        lines.append("--json gives the 5% and 95% quantiles of every column")
    return ["", *lines] if lines else []


def cmd_optimal(args) -> int:
    _check_draw_options(args)
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    from slaws.law import get_law

    law = get_law(args.law)
    if tuple(law.inputs) != ("N", "D"):
        hint = "; use 'slaws distill'" if law.name == "distillation" else ""
        raise CLIError(
            f"--law {law.name}: compute-optimal allocation needs a law of N and D, not of "
            f"{', '.join(law.input_names())}{hint}"
        )
    inputs = {}
    if args.unique_tokens is not None:
        if "U" not in law.input_names():
            raise CLIError(
                f"conflicting options: --unique-tokens is for laws with a U input "
                f"(data_constrained), not {law.name!r}"
            )
        inputs["U"] = args.unique_tokens
    params = _allocation_params(args, law)
    if params["warning"]:
        _warn(params["warning"])
    from slaws import allocation
    from slaws.flops import get_flops

    frame = allocation.compute_optimal(
        law,
        params["source"],
        args.compute,
        flops=args.flops,
        inputs=inputs or None,
    )
    log_forward = get_flops(args.flops)
    lo, hi = allocation.BOUNDS
    cheapest, dearest = _training_cost(log_forward, lo, lo), _training_cost(log_forward, hi, hi)
    _nothing_feasible(
        frame,
        lambda row: (
            f"--compute {row['compute']:.4g}: no model with N and D in [{lo:.0e}, "
            f"{hi:.0e}] costs this under {args.flops} (the cheapest costs {cheapest:.3g} FLOPs, "
            f"the dearest {dearest:.3g})"
        ),
    )
    extra = {"inputs": inputs} if inputs else {}
    result = _allocation_result(args, law.name, params, extra, frame)
    unique = [("unique", f"U = {inputs['U']:.4g} tokens")] if inputs else []
    lines = _header(result, unique)
    number = _number(4)
    columns = [("compute", "C", number)]
    for key, header, fmt in (("N", "N", number), ("D", "D", number), ("loss", "loss", _number(5))):
        columns += [(key, header, fmt), (f"{key}_q05", "q05", fmt), (f"{key}_q95", "q95", fmt)]
    columns += [
        ("tokens_per_param", "D/N", number),
        ("at_bound", "at_bound", None),
        ("status", "status", None),
    ]
    lines += [_table(result["rows"], columns), *_footer(result)]
    return _emit_allocation(
        args, out, result, "\n".join(lines), lambda row: f"C={row['compute']:.4g}"
    )


def cmd_distill(args) -> int:
    _check_draw_options(args)
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    from slaws.law import get_law

    law = get_law("distillation")
    params = _allocation_params(args, law)
    if params["warning"]:
        _warn(params["warning"])
    from slaws import allocation
    from slaws.flops import get_flops

    frame = allocation.distill(
        params["source"],
        args.student,
        args.compute,
        scenarios=args.scenario,
        flops=args.flops,
    )
    log_forward = get_flops(args.flops)
    lo, hi = allocation.BOUNDS

    def impossible(row) -> str:
        n_s = row["student_params"]
        low, high = _training_cost(log_forward, n_s, lo), _training_cost(log_forward, n_s, hi)
        return (
            f"--student {n_s:.4g} --compute {row['compute']:.4g}: no {row['scenario']} plan "
            f"with every size and token count in [{lo:.0e}, {hi:.0e}] spends this budget "
            f"(training this student alone on {lo:.0e} to {hi:.0e} tokens costs {low:.3g} to "
            f"{high:.3g} FLOPs under {args.flops})"
        )

    _nothing_feasible(frame, impossible)
    result = _allocation_result(args, law.name, params, {"scenario": args.scenario}, frame)
    lines = _header(result, [("scenario", args.scenario)])
    number = _number(4)
    loss = _number(5)
    columns = [
        ("scenario", "scenario", None),
        ("student_params", "N_S", number),
        ("compute", "C", number),
        ("student_loss", "L_S", loss),
        ("student_loss_q05", "q05", loss),
        ("student_loss_q95", "q95", loss),
        ("teacher_loss", "L_T", loss),
        ("N_T", "N_T", number),
        ("D_T", "D_T", number),
        ("D_S", "D_S", number),
        ("frac_student", "student", _percent),
        ("frac_teacher_inference", "t.infer", _percent),
        ("frac_teacher_pretraining", "t.pretrain", _percent),
        ("at_bound", "at_bound", None),
        ("status", "status", None),
    ]
    lines += [
        _table(result["rows"], columns),
        "",
        "student, t.infer, t.pretrain: shares of C spent on training the student, on the "
        "teacher's logits and on pretraining the teacher",
        *_footer(result)[1:],
    ]
    if any(row["scenario"] == "best-case" for row in result["rows"]):
        lines.append(
            "best-case: the teacher costs nothing; its N_T, D_T are the cheapest supervised "
            "teacher reaching L_T"
        )
    return _emit_allocation(
        args,
        out,
        result,
        "\n".join(lines),
        lambda row: f"{row['scenario']} N_S={row['student_params']:.4g} C={row['compute']:.4g}",
    )


# --- next-run ----------------------------------------------------------------------------------


def cmd_next_run(args) -> int:
    out = _check_out(args.out, args.force)
    if args.outcomes < 2:
        raise CLIError(f"--outcomes must be >= 2, not {args.outcomes}")
    if not 0 < args.prob < 1:
        raise CLIError(f"--prob must be in (0, 1), not {args.prob:g}")
    if not os.path.isfile(args.fit_file):
        raise CLIError(f"no such posterior file {args.fit_file!r}")
    enable_compilation_cache()
    from slaws import bayes, design

    target = design.parse_target(args.target)  # a bad target fails before anything is read
    tree = bayes.load(args.fit_file)
    with _data_warnings_to_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore", design.DesignWarning)  # kept in the result, shown below
        table = design.next_run(
            tree,
            args.candidates,
            target,
            outcomes=args.outcomes,
            prob=args.prob,
            seed=args.seed,
            flops=args.flops,
        )
    info = table.attrs
    lo, hi = info["interval"]
    result = {
        "target": info["target"],
        "law": info["law"],
        "fit": args.fit_file,
        "draws": info["draws"],
        "likelihood": info["likelihood"],
        "candidates": args.candidates,
        "outcomes": info["outcomes"],
        "prob": info["prob"],
        "seed": info["seed"],
        "flops": args.flops,
        "current": {"median": info["median"], "lo": lo, "hi": hi, "width": info["width"]},
        "rows": table.to_dict(orient="records"),
        "warnings": info["warnings"],
    }
    text = _dumps(result)
    if out is not None:
        _write_atomic(out, text + "\n", args.force)
    print(text if args.json else _next_run_table(result))
    for message in result["warnings"]:
        _warn(message)
    return 0


def _next_run_table(result) -> str:
    now = result["current"]
    level = f"{result['prob']:.0%}"
    lines = [
        f"target      {result['target']}: median {now['median']:.4g}, {level} interval "
        f"{now['lo']:.4g} to {now['hi']:.4g} (width {now['width']:.4g} in log)",
        f"posterior   {result['fit']}: law {result['law']}, {result['draws']} draws, "
        f"{result['likelihood']} noise",
        f"outcomes    {result['outcomes']} simulated per candidate (seed {result['seed']})",
        "",
    ]
    keys = list(result["rows"][0])
    inputs = keys[keys.index("row") + 1 : keys.index("cost")]
    number, width = _number(4), _number(4)
    columns = [
        ("rank", "rank", str),
        ("row", "row", str),
        *((name, name, number) for name in inputs),
        ("cost", "cost", number),
        ("expected_width", "expected", width),
        ("expected_width_se", "±se", _number(2)),
        ("reduction", "reduction", width),
        ("reduction_share", "narrows", _percent),
        ("reduction_per_flop", "per FLOP", _number(3)),
        ("ess_min", "ESS min", lambda v: f"{v:.0f}"),
        ("ess_median", "ESS median", lambda v: f"{v:.0f}"),
    ]
    lines += [
        _table(result["rows"], columns),
        "",
        f"widths: of the {level} interval of log {result['target']} (log of q_hi / q_lo); "
        "per FLOP: reduction / cost; ESS: of the importance weights, min and median over the "
        f"outcomes, out of {result['draws']} draws",
    ]
    return "\n".join(lines)


# --- demo --------------------------------------------------------------------------------------


def _join_processes(spec: str) -> None:
    """``--distributed``: jax.distributed.initialize, with gloo collectives for CPU hosts."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if spec == "auto":
        jax.distributed.initialize()
        return
    try:
        address, count, index = spec.split(",")
        count, index = int(count), int(index)
    except ValueError:
        raise CLIError(f"--distributed {spec!r}: expected HOST:PORT,N,I or auto") from None
    if not 0 <= index < count:
        raise CLIError(f"--distributed {spec!r}: process index must be in [0, {count})")
    jax.distributed.initialize(address, num_processes=count, process_id=index)


def cmd_bench(args) -> int:
    # SciPy's baselines call BLAS on tiny matrices at every iteration; a thread pool per call
    # makes them several times slower on a busy machine, which would flatter slaws's ratios.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from slaws import bench

    if args.list:
        for kind, registry in (("task", bench.TASKS), ("method", bench.METHODS)):
            for name, item in registry.items():
                print(f"{kind}\t{name}\t{_one_line(item.description)}")
        return 0
    tasks = bench._known(args.datasets, bench.TASKS, "dataset")
    methods = bench._known(args.methods, bench.METHODS, "method")
    default = "benchmarks/results/" + ("bench-quick" if args.quick else "bench")
    out_dir = Path(args.out_dir or default)
    existing = [out_dir / f for f in ("bench.md", "bench.json") if (out_dir / f).exists()]
    if existing and not args.force:
        raise CLIError(f"{existing[0]} exists (use --force to replace it)")
    enable_compilation_cache()
    say = (lambda msg: None) if args.quiet else _say
    say("reproducing published numbers")
    reproduced = bench.reproductions(tasks, quick=args.quick)
    for row in reproduced.to_dict("records"):
        if not row.get("ok"):
            _warn(f"{row['dataset']}: {row['quantity']} not reproduced ({row.get('source')})")
    slow_cases = None if args.all_cases else bench.SLOW_CASES
    options = dict(quick=args.quick, slow_cases=slow_cases, seed=args.seed, progress=say)
    results = bench.run(tasks, methods, **options)
    board = bench.leaderboard(results)
    paths = bench.write(results, board, reproduced, out_dir, bench.machine())
    if args.json:
        print(json.dumps(bench._records(board), indent=1))
    else:
        print(bench.markdown(board, reproduced, bench.machine()), end="")
    say("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_grid(args) -> int:
    _check_draw_options(args)
    out = _check_out(args.out, args.force)
    enable_compilation_cache()
    if args.distributed:
        _join_processes(args.distributed)
    import time

    from slaws import grid
    from slaws.law import get_law

    law = get_law(args.law)
    params = _allocation_params(args, law)
    if params["warning"]:
        _warn(params["warning"])
    bar, started = None, False

    def progress(done, total):
        nonlocal bar, started
        if not started:
            started = True
            if done:
                _say(f"resuming: {done} of {total} tiles already in {out}.parts")
            import jax

            if not args.quiet and jax.process_index() == 0:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, initial=done, unit="tile", file=sys.stderr, leave=False)
            return
        if bar is not None:
            bar.update(done - bar.n)

    start = time.perf_counter()
    try:
        ds = grid.evaluate(
            law,
            params["source"],
            args.axis,
            stats=args.stats,
            below=args.below,
            argmin=args.argmin,
            dtype=args.dtype,
            max_memory=args.max_memory,
            quantile_tol=args.quantile_tol,
            flops=args.flops,
            out=out,
            force=args.force,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    info = json.loads(ds.attrs["slaws"])
    sizes = {name: ds.sizes[name] for name in info["axes"]}
    points = math.prod(sizes.values())
    evaluations = points * params["draws"]
    ds.close()
    import jax

    summary = {
        "out": str(out),
        "law": law.name,
        "params": args.params,
        "parameters": params["parameters"],
        "draws": params["draws"],
        "axes": sizes,
        "points": points,
        "evaluations": evaluations,
        "stats": info["stats"],
        "below": info["below"],
        "argmin": info["argmin"],
        "dtype": args.dtype,
        "quantile_max_rank_error": info["quantile_max_rank_error"],
        "seconds": round(seconds, 3),
        "evaluations_per_second": evaluations / seconds,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
    }
    beyond = info["quantile_points_beyond_tol"]
    summary["quantile_points_beyond_tol"] = beyond
    if jax.process_index() != 0:
        return 0
    if args.json:
        print(_dumps(summary))
    else:
        _print_grid_summary(summary, info, args)
    for name, count in beyond.items():
        if count:
            _warn(
                f"{name}: {count} of {points:,} points still wider than --quantile-tol "
                f"{args.quantile_tol:g} after the bracketing passes (largest rank error "
                f"{info['quantile_max_rank_error'][name]:.4f}, recorded in the file)"
            )
    return 0


def _print_grid_summary(summary, info, args) -> None:
    import jax

    out, points, sizes = summary["out"], summary["points"], summary["axes"]
    evaluations, seconds = summary["evaluations"], summary["seconds"]
    shape = " x ".join(f"{k} {v:,}" for k, v in sizes.items())
    print(f"wrote {out}: {summary['law']}, {summary['parameters']}")
    draws = summary["draws"]
    print(f"grid {shape} = {points:,} points x {draws:,} draws = {evaluations:.3g} evaluations")
    rate = evaluations / seconds
    print(f"{seconds:.2f} s ({rate:.3g} evaluations/s on {jax.device_count()} device(s))")
    print(f"stats: {', '.join(info['stats'])}")
    for name, err in info["quantile_max_rank_error"].items():
        print(f"{name}: largest rank error {err:.4f} (tolerance {args.quantile_tol:g})")


def compute_optimal(params: dict, budget: float) -> dict[str, float]:
    """Chinchilla's closed-form compute-optimal allocation under C = 6 N D.

    N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6)^(alpha/(alpha+beta)) / G,
    G = (alpha A / (beta B))^(1/(alpha+beta)).

    >>> from slaws.cli import compute_optimal
    >>> from slaws.presets import get_preset
    >>> best = compute_optimal(get_preset("epoch2024")["params"], 5.88e23)
    >>> f"N {best['N']:.3g}, D {best['D']:.3g}, D/N {best['tokens_per_param']:.1f}"
    'N ..., D ..., D/N ...'
    """
    a, b = params["alpha"], params["beta"]
    g = (a * params["A"] / (b * params["B"])) ** (1.0 / (a + b))
    n_opt = g * (budget / 6.0) ** (b / (a + b))
    d_opt = (budget / 6.0) ** (a / (a + b)) / g
    return {"N": n_opt, "D": d_opt, "tokens_per_param": d_opt / n_opt}


def cmd_demo(args) -> int:
    with tempfile.TemporaryDirectory(prefix="slaws-demo-") as tmp:
        path = DEMO_DATA
        if not path.is_file():
            from slaws.synthetic import write_default

            path = write_default(Path(tmp) / DEMO_DATA.name)
            if not args.quiet:
                _say(f"{DEMO_DATA} is missing; regenerated it as {path}")
        enable_compilation_cache()
        from slaws.fitting import fit
        from slaws.presets import get_preset

        with _data_warnings_to_stderr():
            result = fit("chinchilla", path, progress=_progress(args))
    regenerated = path != DEMO_DATA
    true = dict(get_preset(DEMO_PRESET)["params"])
    fitted = dict(result.params)
    rel = {k: fitted[k] / true[k] - 1.0 for k in true}
    optimal = {
        "C": DEMO_BUDGET,
        "fitted": compute_optimal(fitted, DEMO_BUDGET),
        "true": compute_optimal(true, DEMO_BUDGET),
    }
    if args.json:
        print(
            _dumps(
                {
                    "data": str(DEMO_DATA),
                    "regenerated": regenerated,
                    "true_preset": DEMO_PRESET,
                    "fit": result.to_dict(),
                    "true": true,
                    "relative_error": rel,
                    "compute_optimal": optimal,
                }
            )
        )
    else:
        print(_demo_summary(result, true, rel, optimal))
    return 1 if result.status == "failed" else 0


def _demo_summary(result, true, rel, optimal) -> str:
    lines = [
        f"Fitted law 'chinchilla' to {DEMO_DATA.parent.name}/{DEMO_DATA.name}: {result.n_points} "
        f"synthetic runs from preset {DEMO_PRESET!r} with 1% log-normal noise.",
        f"objective {result.objective_name}, status {result.status}, "
        f"{result.n_starts:,} starts, {result.seconds:.1f} s",
        "",
        f"{'param':<8} {'fitted':>12} {'true':>12} {'rel. error':>11}",
    ]
    for name in true:
        lines.append(
            f"{name:<8} {_g(result.params[name]):>12} {_g(true[name]):>12} {rel[name]:>+11.2%}"
        )
    c = optimal["C"]
    lines += [
        "",
        f"Compute-optimal allocation at C = {c:.0e} FLOPs (C = 6 N D):",
        f"{'':<8} {'N_opt':>12} {'D_opt':>12} {'D/N':>8}",
    ]
    for which in ("fitted", "true"):
        o = optimal[which]
        lines.append(f"{which:<8} {o['N']:>12.4g} {o['D']:>12.4g} {o['tokens_per_param']:>8.1f}")
    n_err = optimal["fitted"]["N"] / optimal["true"]["N"] - 1.0
    d_err = optimal["fitted"]["D"] / optimal["true"]["D"] - 1.0
    lines.append(f"{'rel. err':<8} {n_err:>+12.1%} {d_err:>+12.1%}")
    return "\n".join(lines)


# --- synth -------------------------------------------------------------------------------------


def cmd_synth(args) -> int:
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, not {args.seed}")
    out = _check_out(args.out, args.force)
    from slaws import synthetic

    kwargs = {"seed": args.seed}
    if args.noise is not None:
        kwargs["noise"] = args.noise
    make = synthetic.chinchilla_like if args.kind == "chinchilla" else synthetic.distillation_like
    frame = make(**kwargs)
    try:
        synthetic.write_csv(frame, out, force=args.force)
    except FileExistsError:
        raise FileExistsError(f"--out {out}: file exists; use --force to overwrite it") from None
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(frame)} rows ({', '.join(frame.columns)}) to {out}")
    return 0


# --- listings ----------------------------------------------------------------------------------


def _summary_line(text: str, limit: int = 100) -> str:
    """The first paragraph of ``text`` on one line, cut to ``limit`` characters."""
    para = _one_line(str(text).strip().split("\n\n")[0])
    return para if len(para) <= limit else para[: limit - 3].rstrip() + "..."


def _print_listing(items: list[dict], key: str, as_json: bool) -> int:
    if as_json:
        print(_dumps(items))
        return 0
    width = max((len(item["name"]) for item in items), default=0)
    for item in items:
        print(f"{item['name']:<{width}}  {_summary_line(item[key])}")
    return 0


def cmd_laws(args) -> int:
    from slaws.law import get_law, law_names

    items = []
    for name in law_names():
        law = get_law(name)
        what = _summary_line(law.doc, 1000) if law.doc else ""
        if len(what) < 60:  # a bare formula: say where it comes from
            what = f"{what}; {law.citation}" if what else law.citation
        items.append(
            {
                "name": name,
                "inputs": list(law.input_names()),
                "params": list(law.param_names),
                "citation": law.citation,
                "description": what,
                "line": f"({', '.join(law.input_names())}) {what}",
            }
        )
    if args.json:
        for item in items:
            del item["line"]
    return _print_listing(items, "line", args.json)


def cmd_recipes(args) -> int:
    from slaws.recipes import get_recipe, names

    items = []
    for name in names():
        rec = get_recipe(name)
        items.append(
            {
                "name": name,
                "laws": list(rec.grids),
                "objective": rec.objective.describe(),
                "citation": rec.citation,
                "description": rec.doc,
            }
        )
    return _print_listing(items, "citation", args.json)


def cmd_datasets(args) -> int:
    from slaws import datasets

    items = []
    for name in datasets.names():
        ds = datasets.get(name)
        items.append(
            {
                "name": name,
                "description": ds.description,
                "citation": ds.citation,
                "licence": ds.licence,
                "url": ds.url,
                "sha256": ds.sha256,
            }
        )
    return _print_listing(items, "description", args.json)


def cmd_presets(args) -> int:
    from slaws.presets import get_preset, names

    items = []
    for name in names():
        preset = get_preset(name)
        items.append(
            {
                "name": name,
                "law": preset["law"],
                "params": dict(preset["params"]),
                "citation": preset.get("citation", ""),
                "line": f"[{preset['law']}] {preset.get('citation', '')}",
            }
        )
    if args.json:
        for item in items:
            del item["line"]
    return _print_listing(items, "line", args.json)


if __name__ == "__main__":
    sys.exit(main())
