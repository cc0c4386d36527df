import os
import sys
import tempfile
from pathlib import Path

# The suite starts dozens of Python processes (xdist workers, CLI subprocesses, notebook kernels),
# each importing jax, scipy and pandas: from bytecode written once that takes ~5 s, from source
# ~16 s. Some images set PYTHONDONTWRITEBYTECODE, and .ci/setup installs without compiling.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# SciPy's baselines call BLAS on tiny matrices every iteration; with two test workers on two
# cores, a BLAS thread pool per call only adds contention (before numpy is imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# numpyro and the grid build fresh closures per call, so jit's in-memory cache misses and the
# same programs compile again in every test (and in both workers, and in subprocesses): JAX's
# persistent cache, shared by all of them, turns most of those compilations into reads. Set in the
# environment (not jax.config) so subprocesses inherit it; the CLI's own SLAWS_JAX_CACHE wins.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"slaws-tests-jax-cache-{os.getuid()}"),
)
# Every compilation: the many small ones add up (a CI run took 5% longer caching only those
# over a second).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The CLI in subprocesses (not ~/.cache/slaws/jax, which a fresh CI machine has cold anyway).
os.environ.setdefault("SLAWS_JAX_CACHE", os.environ["JAX_COMPILATION_CACHE_DIR"])

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests: the same examples on every run (CI must be reproducible), no example database
# written into the checkout, and no deadline (the first example of a property compiles).
settings.register_profile(
    "slaws",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "slaws"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    # CI points SLAWS_DATA_DIR at ../shared/data; do the same for a local run that did not.
    if "SLAWS_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
        os.environ["SLAWS_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture
def epoch_available():
    root = os.environ.get("SLAWS_DATA_DIR")
    if not root or not (Path(root) / "chinchilla_epoch" / "svg_extracted_data.csv").is_file():
        pytest.skip("epoch-chinchilla not under SLAWS_DATA_DIR (CI sets it to ../shared/data)")
