"""Shared by the benchmarks: the machine they ran on and an atomic JSON writer."""

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax
    import numpy
    import scipy

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def fresh_process(body: str, cache_dir: str) -> dict:
    """Run ``body`` in a new Python process whose JAX persistent compilation cache is
    ``cache_dir`` (turned on as the CLI turns it on); ``t0`` is its start, before any import.
    Returns the JSON object ``body`` prints last."""
    script = (
        "import time\nt0 = time.perf_counter()\n"
        "from slaws.cli import enable_compilation_cache\nenable_compilation_cache()\n" + body
    )
    env = {**os.environ, "SLAWS_JAX_CACHE": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
