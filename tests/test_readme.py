"""README.md's quickstarts run as written: the Python block, then the command-line block in bash,
in one fresh directory."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert match, f"README.md has no block after <!-- {marker} -->"
    return match.group(1)


def _env() -> dict:
    bin_dir = str(Path(sys.executable).parent)  # the venv's slaws console script
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def test_quickstarts_run_as_written(tmp_path):
    """The Python block, then the command-line block in the same directory (it reads the
    posterior the Python block saved)."""
    code = _block("quickstart-python")
    assert len(code.splitlines()) <= 20
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]  # the posterior converged
    assert proc.stdout.startswith("converged {'E': ")
    for word in ("credible_lo", "tokens_per_param", "teacher-pretraining-inference"):
        assert word in proc.stdout
    assert (tmp_path / "fit.nc").is_file()

    script = _block("quickstart-cli")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for name in ("runs.csv", "grid.nc"):
        assert (tmp_path / name).is_file(), name
    assert '"status": "converged"' in proc.stdout
