"""Shared by the CLI tests: in-process runs of ``slaws.cli.main`` in an isolated environment."""

import urllib.error
import urllib.request

import pytest

from slaws import cli


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no dataset cache or JAX compilation cache outside tmp_path; cwd = tmp_path."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("SLAWS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SLAWS_DATA_DIR", raising=False)
    monkeypatch.delenv("SLAWS_DEBUG", raising=False)
    # In-process runs must not switch on JAX's process-wide persistent cache for other tests.
    monkeypatch.setenv("SLAWS_JAX_CACHE", "")
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expect_error(capsys, *argv, fragments=()):
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("slaws: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err
