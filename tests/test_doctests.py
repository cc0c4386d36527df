"""Every public function and class has a runnable example in its docstring, and they all pass.

slaws.plot's examples run in tests/test_plot.py (with matplotlib's Agg backend)."""

import doctest
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import slaws

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(slaws.__path__, "slaws.")
    if name not in ("slaws.__main__", "slaws.plot")
)
# argparse handlers: documented by each sub-command's --help, run by tests/test_cli*.py.
HANDLERS = ("slaws.cli.cmd_",)
# Twice in CI (never locally) numpyro's package lost its ``distribution`` submodule attribute in
# the worker that ran these, after other tests (slaws.bayes._import_numpyro now restores it; the
# cause is unknown): run them in a fresh interpreter.
FRESH_PROCESS = {"slaws.bayes"}
# Examples run by their module's own tests, which sample the same models with the same settings
# first, so that the examples reuse the compiled programs (hierarchical NUTS takes ~25 s to build).
RUN_WITH_THEIR_TESTS = {"slaws.hierarchical": "tests/test_hierarchical.py"}
# Examples read these registered datasets; without them under SLAWS_DATA_DIR they are skipped.
NEEDS_DATA = {
    f"slaws.{name}" for name in ("baselines", "bench", "bench_tasks", "datasets", "revisiting")
}


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if obj.__module__ != module.__name__:
            continue  # imported from elsewhere
        if inspect.isclass(obj) and issubclass(obj, Exception | Warning):
            continue
        yield f"{module.__name__}.{name}", obj


def test_every_public_function_and_class_has_an_example():
    missing = [
        qualified
        for name in MODULES + ["slaws.plot"]
        for qualified, obj in _public(importlib.import_module(name))
        if ">>>" not in (obj.__doc__ or "") and not qualified.startswith(HANDLERS)
    ]
    assert not missing, f"no >>> example: {', '.join(missing)}"


@pytest.mark.parametrize("name", [m for m in MODULES if m not in RUN_WITH_THEIR_TESTS])
def test_examples_run(name):
    data = os.environ.get("SLAWS_DATA_DIR")
    if name in NEEDS_DATA and not (data and Path(data).is_dir()):
        pytest.skip("examples read registered datasets: SLAWS_DATA_DIR is not set")
    if name in FRESH_PROCESS:
        code = (
            "import doctest, importlib, sys\n"
            f"m = importlib.import_module({name!r})\n"
            "r = doctest.testmod(m, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)\n"
            "sys.exit(1 if r.failed else 0)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, raise_on_error=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
