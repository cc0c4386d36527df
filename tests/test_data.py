"""Tests for slaws.data (loading/validation) and slaws.datasets (registry)."""

import os
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slaws import data, datasets
from slaws.data import DataError, DataWarning, load, require_points

# CI sets SLAWS_DATA_DIR (tests/conftest.py defaults it to ../shared/data when it exists).
SHARED_DATA = Path(
    os.environ.get("SLAWS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
CHINCHILLA = SHARED_DATA / "chinchilla_epoch" / "svg_extracted_data.csv"


def write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(source, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load(source, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


GOOD = "N,D,loss\n1e6,2e7,3.5\n2e6,4e7,3.2\n4e6,8e7,3.0\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("SLAWS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SLAWS_DATA_DIR", raising=False)


# --- files and frames --------------------------------------------------------------------------


def test_load_csv_basic(tmp_path):
    path = write(tmp_path, GOOD)
    df = load(path)
    assert list(df.columns) == ["N", "D", "loss"]
    assert all(df[c].dtype == np.float64 for c in df.columns)
    assert isinstance(df.index, pd.RangeIndex)
    assert df.attrs["source"] == str(path)
    assert df.attrs["rows"] == [1, 2, 3]
    assert df.attrs["lines"] == [2, 3, 4]
    assert data.describe_row(df, 2) == "row 3 (line 4)"


def test_load_str_path_and_tsv(tmp_path):
    path = write(tmp_path, GOOD.replace(",", "\t"), name="runs.tsv")
    df = load(str(path))
    assert len(df) == 3 and df.attrs["source"] == str(path)


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame(
        {"N": [1e6, 2e6], "D": [2e7, 4e7], "loss": [3.5, 3.2], "family": ["a", "b"]},
        index=[10, 20],
    )
    path = tmp_path / "runs.parquet"
    frame.to_parquet(path)
    df = load(path)
    pd.testing.assert_frame_equal(
        df, frame.reset_index(drop=True)[["N", "D", "loss", "family"]], check_dtype=False
    )
    assert df.attrs["rows"] == [1, 2] and "lines" not in df.attrs
    assert list(df["family"]) == ["a", "b"]
    bad = frame.assign(loss=[3.5, -1.0])
    bad.to_parquet(path)
    msg = error_of(path)
    assert "runs.parquet" in msg and "'loss'" in msg and "row 2" in msg


def test_dataframe_not_mutated_and_row_labels():
    frame = pd.DataFrame(
        {"n": [1, 2, 3], "Tokens": [10, 20, 30], "Loss": [3.0, 2.0, 1.0], "extra": list("abc")},
        index=["r1", "r2", "r3"],
    )
    before = frame.copy()
    df = load(frame, columns={"D": "Tokens"})
    pd.testing.assert_frame_equal(frame, before)
    assert frame.attrs == {}
    assert list(df.columns) == ["N", "D", "loss"]
    assert df.attrs["source"] == "DataFrame" and df.attrs["rows"] == ["r1", "r2", "r3"]
    assert isinstance(df.index, pd.RangeIndex)
    df.loc[0, "N"] = 99.0
    df.loc[0, "loss"] = 99.0
    pd.testing.assert_frame_equal(frame, before)

    frame.loc["r2", "Loss"] = np.nan
    msg = error_of(frame, columns={"D": "Tokens"})
    assert msg.startswith("DataFrame:") and "'loss'" in msg and "row r2" in msg


def test_reloading_a_loaded_frame_keeps_file_rows(tmp_path):
    df = load(write(tmp_path, GOOD))
    again = load(df)
    assert again.attrs["source"] == df.attrs["source"] and again.attrs["lines"] == [2, 3, 4]


def test_column_mapping_and_case_insensitive(tmp_path):
    path = write(tmp_path, "Model Size,d,LOSS,step\n1e6,2e7,3.5,0\n2e6,4e7,3.2,10\n")
    df = load(path, columns={"N": "Model Size"})
    assert list(df.columns) == ["N", "D", "loss", "step"]
    assert df["N"].tolist() == [1e6, 2e6] and df["step"].tolist() == [0.0, 10.0]
    # None ignores a same-named column
    assert "step" not in load(path, columns={"N": "Model Size", "step": None}).columns


def test_mapping_to_absent_column_suggests(tmp_path):
    path = write(tmp_path, "Model Size,D,loss\n1e6,2e7,3.5\n")
    msg = error_of(path, columns={"N": "model_size"})
    assert "runs.csv" in msg and "'model_size'" in msg and "did you mean 'Model Size'" in msg


def test_unknown_canonical_key(tmp_path):
    msg = error_of(write(tmp_path, GOOD), columns={"Loss": "loss"})
    assert "'Loss'" in msg and "did you mean 'loss'" in msg


def test_missing_column_message(tmp_path):
    path = write(tmp_path, "n,d,lost\n1,2,3\n", name="data.csv")
    assert error_of(path) == (
        f"{path}: missing column 'loss' (columns are: n, d, lost; did you mean 'lost'? "
        "map it with columns={'loss': 'lost'} / --columns loss=lost)"
    )


def test_missing_column_hint_from_common_names(tmp_path):
    msg = error_of(write(tmp_path, "params,D,loss\n1,2,3\n"))
    assert "missing column 'N'" in msg and "did you mean 'params'?" in msg


def test_required_alternatives(tmp_path):
    req = ("N", "D", ("L_T", ("N_T", "D_T")), "loss")
    both = write(tmp_path, "N,D,N_T,D_T,loss\n1,2,3,4,5\n", name="a.csv")
    assert list(load(both, required=req).columns) == ["N", "D", "loss", "N_T", "D_T"]
    one = write(tmp_path, "N,D,L_T,loss\n1,2,3,5\n", name="b.csv")
    assert "L_T" in load(one, required=req).columns
    half = write(tmp_path, "N,D,N_T,loss\n1,2,3,5\n", name="c.csv")
    msg = error_of(half, required=req)
    assert "c.csv" in msg and "'L_T' or both 'N_T' and 'D_T'" in msg
    assert list(load(write(tmp_path, "x,loss\n1,2\n"), required=("x", "loss")).columns) == [
        "loss",
        "x",
    ]


def test_d_derived_from_flops(tmp_path):
    path = write(tmp_path, "N,C,loss\n1e6,6e13,3.5\n2e6,2.4e14,3.2\n")
    df = load(path)
    np.testing.assert_allclose(df["D"], [1e7, 2e7])
    assert list(df.columns) == ["N", "D", "loss", "C"]


def test_wrong_separator_hint(tmp_path):
    msg = error_of(write(tmp_path, GOOD, name="runs.tsv"))
    assert "runs.tsv" in msg and "read as one column" in msg


def test_missing_d_mentions_derivation(tmp_path):
    msg = error_of(write(tmp_path, "N,loss\n1,2\n"))
    assert "missing column 'D'" in msg and "'C'" in msg


@pytest.mark.parametrize(
    ("text", "column", "where", "what"),
    [
        ("N,D,loss\n1,2,3\n2,3,4\nabc,4,5\n", "'N'", "row 3 (line 4)", "'abc' is not a number"),
        ("N,D,loss\n1,2,3\n2,,4\n", "'D'", "row 2 (line 3)", "missing value"),
        ("N,D,loss\n1,2,nan\n", "'loss'", "row 1 (line 2)", "missing value"),
        ("N,D,loss\n1,2,3\n1,inf,3\n", "'D'", "row 2 (line 3)", "not finite"),
        ("N,D,loss\n1,2,3\n1,2,0\n", "'loss'", "row 2 (line 3)", "0 is not > 0"),
        ("N,D,loss\n-1,2,3\n", "'N'", "row 1 (line 2)", "-1 is not > 0"),
        ("N,D,loss,step\n1,2,3,-5\n", "'step'", "row 1 (line 2)", "negative"),
        ("N,D,loss\n1,2,3\n\n1,2,x\n", "'loss'", "row 2 (line 4)", "'x' is not a number"),
    ],
)
def test_bad_cells(tmp_path, text, column, where, what):
    msg = error_of(write(tmp_path, text))
    assert "runs.csv" in msg and f"column {column}" in msg and where in msg and what in msg


def test_bad_cell_counts_more_rows(tmp_path):
    msg = error_of(write(tmp_path, "N,D,loss\n1,2,-3\n1,2,-3\n1,2,-4\n"))
    assert "row 1 (line 2)" in msg and "2 more rows" in msg


def test_step_zero_is_fine(tmp_path):
    df = load(write(tmp_path, "N,D,loss,step\n1,2,3,0\n"))
    assert df["step"].tolist() == [0.0]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "file is empty"),
        ("N,D,loss\n", "no data rows"),
        ('N,D,loss\n1,2,3\n1,2,3,4,5\n"unterminated\n', "cannot read csv file"),
    ],
)
def test_empty_and_garbled_files(tmp_path, text, expect):
    msg = error_of(write(tmp_path, text))
    assert "runs.csv" in msg and expect in msg


def test_binary_garbage(tmp_path):
    path = tmp_path / "runs.parquet"
    path.write_bytes(b"\x00\xff garbage \x13\x37" * 20)
    msg = error_of(path)
    assert "runs.parquet" in msg and "cannot read parquet" in msg
    path = tmp_path / "runs.csv"
    path.write_bytes(b"N,D,loss\n\xff\xfe,1,2\n")
    assert "runs.csv" in error_of(path)


def test_no_such_file_or_dataset(tmp_path):
    msg = error_of("foo.csv")
    registered = ", ".join(datasets.names())
    assert msg == f"no such file or dataset 'foo.csv' (registered datasets: {registered})"
    assert "did you mean 'epoch-chinchilla'" in error_of("epoch-chinchila")
    missing = tmp_path / "nope.csv"
    assert "nope.csv: no such file" in error_of(missing)
    assert "unsupported file type" in error_of(write(tmp_path, GOOD, name="runs.txt"))


def test_empty_dataframe():
    assert error_of(pd.DataFrame({"N": [], "D": [], "loss": []})) == "DataFrame: no data rows"


def test_family_labels(tmp_path):
    df = load(write(tmp_path, "N,D,loss,Family\n1,2,3,a\n1,2,4,7\n"))
    assert df["family"].tolist() == ["a", "7"]
    msg = error_of(write(tmp_path, "N,D,loss,family\n1,2,3,a\n1,2,4,\n"))
    assert "'family'" in msg and "row 2 (line 3)" in msg


def test_duplicate_rows_warn(tmp_path):
    path = write(tmp_path, "N,D,loss\n1,2,3\n4,5,6\n1,2,3\n1,2,3\n")
    with pytest.warns(DataWarning, match=r"2 exact duplicate.*row 3 \(line 4\).*row 1"):
        df = load(path)
    assert len(df) == 4


def test_suspicious_units_warn(tmp_path):
    # tokens in billions next to raw parameter counts
    path = write(tmp_path, "N,D,loss\n1e8,2,3.0\n1e9,20,2.5\n")
    with pytest.warns(DataWarning, match="D/N"):
        load(path)


def test_clean_data_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(write(tmp_path, GOOD))


def test_require_points(tmp_path):
    df = load(write(tmp_path, GOOD))
    require_points(df, 3)
    with pytest.raises(DataError, match=r"runs\.csv: 3 rows but law 'x' has 5 .*at least 5"):
        require_points(df, 5, what="law 'x'")


# --- registry ----------------------------------------------------------------------------------


def test_registry_basics():
    assert "epoch-chinchilla" in datasets.names()
    ds = datasets.get("epoch-chinchilla")
    assert ds.folder == "chinchilla_epoch" and ds.file == "svg_extracted_data.csv"
    assert "92258837425e1b5f2851d624287f0120583a3d0e" in ds.url
    with pytest.raises(DataError, match="did you mean 'epoch-chinchilla'"):
        datasets.get("epoch_chinchilla")
    assert datasets.register(ds) is ds  # idempotent


@pytest.fixture
def shared_data(monkeypatch):
    if not CHINCHILLA.is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    monkeypatch.setenv("SLAWS_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


def test_epoch_chinchilla_loads(shared_data):
    assert datasets.locate("epoch-chinchilla", download=False) == CHINCHILLA
    df = load("epoch-chinchilla")
    assert len(df) == 245
    assert list(df.columns) == ["N", "D", "loss", "C"]  # the file's SVG 'x' is not canonical x
    np.testing.assert_allclose(df["D"], df["C"] / (6 * df["N"]))
    assert df["D"].min() == pytest.approx(2.45e8, rel=5e-3)
    assert df["D"].max() == pytest.approx(3.18e11, rel=5e-3)
    assert df["N"].min() == pytest.approx(5.73e7, rel=5e-3)
    assert df["loss"].max() == pytest.approx(5.006, rel=1e-3)
    assert df.attrs["source"] == "epoch-chinchilla"
    # user mappings override the dataset's
    assert "x" in load("epoch-chinchilla", columns={"x": "x"}).columns


def test_every_registered_file_is_found_and_checked(shared_data):
    """Each dataset and each of its parts is in the shared folder with the registered sha256;
    URLs are pinned to a commit."""
    for name in datasets.names():
        ds = datasets.get(name)
        for part in [None, *ds.parts]:
            spec = ds.part(part)
            assert datasets.locate(name, part, download=False).name == spec.file
            assert re.search(r"/[0-9a-f]{40}/", spec.url), (name, part, spec.url)
    frame = datasets.read("revisiting-scaling", "vision")
    assert {"Domain", "Seen Examples", "Loss", "Training"} <= set(frame.columns)
    with pytest.raises(DataError, match="has no part 'audio' \\(parts: reference, "):
        datasets.locate("revisiting-scaling", "audio")


def test_derived_files_are_never_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("SLAWS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SLAWS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        datasets.locate("gadre-overtrain")
    msg = str(info.value)
    assert "cannot be downloaded" in msg and "parsed from the 104 model JSON files" in msg
    assert "gadre_overtrain/models_tidy.csv" in msg and "\n" not in msg


def test_sha_mismatch(monkeypatch, tmp_path):
    folder = tmp_path / "corrupt" / "chinchilla_epoch"
    folder.mkdir(parents=True)
    (folder / "svg_extracted_data.csv").write_text(GOOD)
    monkeypatch.setenv("SLAWS_DATA_DIR", str(tmp_path / "corrupt"))
    with pytest.raises(DataError) as info:
        datasets.locate("epoch-chinchilla")
    msg = str(info.value)
    assert "\n" not in msg and "svg_extracted_data.csv" in msg and "sha256" in msg
    assert datasets.get("epoch-chinchilla").sha256 in msg


def test_offline_message(monkeypatch, tmp_path):
    monkeypatch.setenv("SLAWS_DATA_DIR", str(tmp_path / "empty"))
    cached = tmp_path / "cache" / "chinchilla_epoch" / "svg_extracted_data.csv"
    for download in (False, True):
        with pytest.raises(DataError) as info:
            datasets.locate("epoch-chinchilla", download=download)
        msg = str(info.value)
        assert "\n" not in msg and "'epoch-chinchilla'" in msg and "could not be downloaded" in msg
        assert "SLAWS_DATA_DIR" in msg and "chinchilla_epoch/svg_extracted_data.csv" in msg
        assert str(cached) in msg
    assert "network disabled" in msg
    assert not cached.exists()
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_download_checks_hash_and_caches(monkeypatch, tmp_path, shared_data):
    monkeypatch.delenv("SLAWS_DATA_DIR")
    payload = CHINCHILLA.read_bytes()

    class Response:
        def __init__(self, body):
            self.body, self.pos = body, 0

        def read(self, n):
            chunk = self.body[self.pos : self.pos + n]
            self.pos += len(chunk)
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(b"corrupt"))
    with pytest.raises(DataError, match="sha256"):
        datasets.locate("epoch-chinchilla")
    cache = tmp_path / "cache" / "chinchilla_epoch"
    assert not (cache / "svg_extracted_data.csv").exists() and not list(cache.iterdir())

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(payload))
    path = datasets.locate("epoch-chinchilla")
    assert path == cache / "svg_extracted_data.csv" and path.read_bytes() == payload
    assert len(load("epoch-chinchilla")) == 245
