"""The pandas-first API: fit(df), complete_frame(df), cells(df), on a wide DataFrame as read from CSV."""
import numpy as np
import pandas as pd
import pytest

from kgattr import AttributeCompleter, write_catalog


@pytest.fixture(scope="module")
def frame(catalog, tmp_path_factory):
    path = tmp_path_factory.mktemp("frame") / "catalog.csv"
    write_catalog(catalog, path)
    df = pd.read_csv(path)
    assert df["year"].dtype == float and df["year"].isna().any()        # a typed column with gaps
    return df


@pytest.fixture(scope="module")
def completer(frame, tiny_bert, tmp_path_factory):
    return AttributeCompleter(text_model=tiny_bert, hidden_channels=32, epochs=4, neighbours=5, min_attribute_count=5,
                              cache_dir=tmp_path_factory.mktemp("cache")).fit(frame)


def test_fit_reads_a_frame_and_a_path(completer, catalog, tmp_path):
    assert list(completer.graph_.skus) == [p.sku for p in catalog]
    write_catalog(catalog, tmp_path / "c.jsonl")
    from kgattr.io.frames import as_catalog

    assert [p.sku for p in as_catalog(tmp_path / "c.jsonl")] == [p.sku for p in catalog]


def test_complete_frame_fills_gaps_and_keeps_known_values(completer, frame):
    before = frame.copy(deep=True)
    out = completer.complete_frame(frame, min_confidence=0.0)
    pd.testing.assert_frame_equal(frame, before)                          # the input is never modified
    assert list(out.index) == list(frame.index) and list(out.columns[:len(frame.columns)]) == list(frame.columns)
    for a in ("year", "base_colour", "season"):
        known = frame[a].notna()
        assert (out.loc[known, a] == frame.loc[known, a]).all()
        assert (out.loc[known, f"{a}_source"] == "catalog").all() and (out.loc[known, f"{a}_confidence"] == 1).all()
        filled = ~known & out[a].notna()
        assert filled.any() and (out.loc[filled, f"{a}_source"] == "kgattr").all()
        assert out.loc[filled, f"{a}_confidence"].between(0, 1).all()
    assert out["year"].dtype == float and (out["year"].dropna() > 1900).all()   # a float year stays a float
    strict = completer.complete_frame(frame, min_confidence=1.0)
    left = strict["year"].isna()
    assert left.sum() >= out["year"].isna().sum() and strict.loc[left, "year_source"].isna().all()
    assert np.isnan(strict.loc[left, "year_confidence"]).all()


def test_cells_are_tidy(completer, frame):
    cells = completer.cells(frame)
    assert list(cells.columns) == ["sku", "attribute", "value", "confidence", "source", "evidence"]
    assert len(cells) and cells["confidence"].dtype == float and (cells["source"] == "kgattr").all()
    gaps = {(s, a) for s, a in zip(cells["sku"], cells["attribute"])}
    first = frame.iloc[0]
    assert all(pd.isna(first[a]) for s, a in gaps if s == first["sku"] and a in frame.columns)
    out = completer.complete_frame(frame, min_confidence=0.0)
    for s, a, v in cells[cells["value"].notna()][["sku", "attribute", "value"]].head(20).itertuples(index=False):
        if a in frame.columns and frame[a].dtype == object:
            assert out.loc[out["sku"] == s, a].item() == v
