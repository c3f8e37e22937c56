"""Generated catalogs, impute chunk by chunk, the approximate neighbour index."""
import dataclasses

import numpy as np
import pytest

from kgattr.engine.imputation import impute_file
from kgattr.io.catalog import Catalog, read_catalog
from kgattr.io.writers import write_catalog
from kgattr.io.datasets import make_catalog
from kgattr.io.scale import copies, resample


def test_resample_is_deterministic_with_new_skus_and_perturbed_text(catalog):
    first = list(resample(catalog, 500, seed=3))
    assert [dataclasses.astuple(p) for p in first] == [dataclasses.astuple(p) for p in resample(catalog, 500, seed=3)]
    assert len(first) == 500 and len({p.sku for p in first}) == 500
    assert not {p.sku for p in first} & {p.sku for p in catalog}
    source = {p.sku: p for p in catalog}
    for p in first:
        original = source[p.sku.rsplit("~", 1)[0]]
        assert (p.category, p.attributes) == (original.category, original.attributes)
        assert p.title != original.title
    assert [dataclasses.astuple(p) for p in resample(catalog, 500, seed=4)] != [dataclasses.astuple(p) for p in first]


def test_copies_spread_the_draw_evenly():
    counts = copies(7, 30, seed=0)
    assert sum(counts) == 30 and set(counts) == {4, 5} and counts == copies(7, 30, seed=0)
    assert sum(copies(100, 10, seed=1)) == 10


def test_sample_from_a_catalog_streams_jsonl(tmp_path, catalog):
    from typer.testing import CliRunner

    from kgattr.cli.main import app

    write_catalog(catalog, tmp_path / "c.jsonl")
    result = CliRunner().invoke(app, ["sample", "--from", str(tmp_path / "c.jsonl"), "--size", "50", "--seed", "2",
                                      "-o", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 0, result.output
    assert [p.sku for p in read_catalog(tmp_path / "g.jsonl")] == [p.sku for p in resample(catalog, 50, 2)]


def _mixed(catalog) -> Catalog:
    """The fitted catalog's products unchanged, with a value dropped, with new text, and new products."""
    products = list(catalog)[:100]
    for i, p in enumerate(list(catalog)[100:130]):
        products.append(dataclasses.replace(p, attributes=dict(list(p.attributes.items())[1:])) if i % 2 else
                        dataclasses.replace(p, title=p.title + " Classic"))
    products += [dataclasses.replace(p, sku=f"N{i}") for i, p in enumerate(make_catalog(30, seed=7))]
    return Catalog(products)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_impute_in_chunks_writes_what_impute_whole_writes(fitted, catalog, tmp_path, suffix):
    source = tmp_path / f"in{suffix}"
    write_catalog(_mixed(catalog), source)
    outputs = {}
    for chunk in (3, 10**6):
        out = tmp_path / str(chunk)
        files = [out / f"out{suffix}", out / "cells.jsonl", out / "review.jsonl"]
        done = impute_file(fitted, source, *files, min_confidence=0.6, chunk=chunk)
        assert done.products == 160 and done.filled and done.review
        outputs[chunk] = [f.read_bytes() for f in files]
        assert not list(out.glob(".*"))               # no temporary file left
    assert outputs[3] == outputs[10**6]


def test_a_bad_product_in_a_late_chunk_writes_nothing(fitted, catalog, tmp_path):
    from kgattr.exceptions import CatalogError

    source = tmp_path / "in.jsonl"
    write_catalog(catalog, source)
    with open(source, "a") as f:
        f.write('{"sku": "%s"}\n' % catalog.products[0].sku)
    with pytest.raises(CatalogError, match=":161: field 'sku': duplicate SKU"):
        impute_file(fitted, source, tmp_path / "o.jsonl", tmp_path / "c.jsonl", tmp_path / "r.jsonl",
                    min_confidence=0.5, chunk=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_approximate_index_above_its_threshold(tmp_path):
    from kgattr.engine.index import NeighbourIndex

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(20, size=2000)] + 0.3 * rng.normal(size=(2000, 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = NeighbourIndex().add(vectors)
    approximate = NeighbourIndex(exact_limit=100).add(vectors)
    assert not exact.approximate and approximate.approximate
    ids = np.arange(0, 2000, 10)
    want = exact.search(vectors[ids], 10, exclude=ids)
    got = approximate.search(vectors[ids], 10, exclude=ids)
    assert not (got.index == ids[:, None]).any()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want.index, got.index)])
    assert recall >= 0.9
    np.testing.assert_allclose(approximate.reconstruct(ids), vectors[ids], atol=1e-6)
    approximate.save(tmp_path / "n.faiss")
    loaded = NeighbourIndex.load(tmp_path / "n.faiss")
    assert loaded.approximate
    np.testing.assert_array_equal(loaded.search(vectors[ids], 10).index, approximate.search(vectors[ids], 10).index)
    again = NeighbourIndex(exact_limit=100).add(vectors)
    np.testing.assert_array_equal(again.search(vectors[ids], 10).index, approximate.search(vectors[ids], 10).index)


def test_measure_reports_time_memory_and_stops_a_process_past_its_memory():
    import sys

    from kgattr.bench.growth import GB, measure

    env = {"PATH": "/usr/bin:/bin"}
    import resource

    # a child's ru_maxrss starts from its parent's image (fork, then exec): pytest's own size is the margin
    margin = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    small = measure([sys.executable, "-c", "x = bytearray(50 * 2**20)"], env, GB + margin)
    assert small["exit"] == 0 and 50 * 2**20 < small["peak_bytes"] < GB + margin and small["seconds"] >= 0
    big = measure([sys.executable, "-c", "import time; x = bytearray(300 * 2**20); time.sleep(30)"], env, 200 * 2**20)
    assert big["exit"] == -9 and big["stopped"]["bytes"] > 200 * 2**20 and big["seconds"] < 20
    failed = measure([sys.executable, "-c", "raise SystemExit('kgattr: error: no')"], env, GB)
    assert failed["exit"] == 1 and failed["error"] == ["kgattr: error: no"]


def test_growth_report_exponents_predictions_and_files(tmp_path):
    from kgattr.bench.growth import STAGES, _predicted_peak, exponent, summarise, write_report

    assert exponent([10, 100], [3.0, 300.0]) == 2.0 and exponent([10], [1.0]) is None
    stage = lambda s, b: {"seconds": s, "cpu_seconds": s, "peak_bytes": b, "exit": 0}
    runs = {1000: {k: stage(10, 2**30) for k in STAGES}, 4000: {k: stage(40, 2 * 2**30) for k in STAGES}}
    assert _predicted_peak(runs, "train_warm", 16000) == pytest.approx(4 * 2**30)
    runs[16000] = {"sample": stage(160, 2**29), "train_warm": {"skipped": "predicted peak 7.0 GB > 6.0 GB"}}
    report = summarise(tmp_path / "c.jsonl", runs, 6 * 2**30)
    assert report["growth"]["train_warm"] == {"seconds": 1.0, "cpu_seconds": 1.0, "peak_bytes": 0.5}
    write_report(report, tmp_path)
    text = (tmp_path / "growth.md").read_text()
    assert "| train_warm | 10 s (10); 1.00 GiB | 40 s (40); 2.00 GiB | not run: predicted peak 7.0 GB > 6.0 GB |" in text
    assert (tmp_path / "growth.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_over_the_exact_limit_saves_loads_and_answers(catalog, tiny_bert, tmp_path, monkeypatch):
    from kgattr import AttributeCompleter
    from kgattr.engine.modelfiles import verify

    monkeypatch.setattr("kgattr.engine.index.EXACT_LIMIT", 50)
    fitted = AttributeCompleter(text_model=tiny_bert, hidden_channels=16, epochs=4, neighbours=5,
                                min_attribute_count=5, cache_dir=tmp_path / "cache").fit(catalog)
    assert fitted.index_.approximate
    fitted.save(tmp_path / "model")
    assert (tmp_path / "model" / "neighbours.faiss").read_bytes()[:4] == b"IwFl" and not verify(tmp_path / "model")
    loaded = AttributeCompleter.load(tmp_path / "model")
    new = Catalog([dataclasses.replace(p, sku=f"N{i}") for i, p in enumerate(make_catalog(5, seed=9))])
    result = loaded.impute(new)
    assert [pc.sku for pc in result] == [p.sku for p in new] and all(pc.completions for pc in result)
    assert all(len(c.evidence["similar_skus"]) for pc in result for c in pc.completions if c.value)


def test_a_smaller_draw_is_part_of_a_larger_one(catalog):
    draw = lambda size: {repr(dataclasses.astuple(p)) for p in resample(catalog, size, seed=5)}
    assert draw(70) <= draw(150) <= draw(400)


def test_cells_scored_to_disk_equal_those_scored_in_memory(fitted, catalog):
    from kgattr.engine.scoring import score_gaps
    from kgattr.engine.train import Neighbours

    text = fitted.text_encoder().encode([p.text for p in catalog])
    near = Neighbours(*fitted.knn_, fitted.listed_near(catalog.products))
    in_memory = score_gaps(fitted, catalog, fitted.model_inputs(catalog, text), near)
    assert list(in_memory) == list(fitted.cells_) and len(in_memory["product"])
    for name, column in fitted.cells_.items():
        assert column.dtype == in_memory[name].dtype and np.array_equal(column, in_memory[name]), name
    assert isinstance(fitted.cells_["logits"], np.memmap) and not isinstance(in_memory["logits"], np.memmap)


def test_rows_read_from_disk_equal_those_in_memory(monkeypatch):
    import scipy.sparse as sp

    from kgattr.engine.memory import to_disk

    rng = np.random.default_rng(0)
    dense = rng.random((300, 5), dtype=np.float32)
    matrix = sp.random(300, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    assert to_disk(dense) is dense                                  # small arrays stay in memory
    monkeypatch.setattr("kgattr.engine.memory.DISK_BYTES", 0)
    on_disk = to_disk(dense), to_disk(matrix)
    for rows in (np.arange(10, 90), rng.integers(0, 300, 500), slice(7, 250), np.zeros(0, np.int64)):
        assert np.array_equal(on_disk[0][rows], dense[rows])
        got, want = on_disk[1][rows], matrix[rows]
        assert got.shape == want.shape and all(np.array_equal(getattr(got, a), getattr(want, a))
                                               for a in ("data", "indices", "indptr"))
    assert on_disk[0].shape == dense.shape and to_disk(np.zeros((0, 3), np.float32))[np.zeros(0, int)].shape == (0, 3)


def test_a_fit_reading_its_inputs_from_disk_gives_the_same_model(fitted, catalog, monkeypatch):
    from kgattr import AttributeCompleter
    from kgattr.engine import memory

    read = []
    monkeypatch.setattr(memory, "DISK_BYTES", 0)
    monkeypatch.setattr(memory.DiskArray, "__getitem__",
                        lambda self, rows, get=memory.DiskArray.__getitem__: read.append(1) or get(self, rows))
    model = AttributeCompleter(**fitted.get_params()).fit(catalog)
    assert read and model.history_ == fitted.history_
    assert all(np.array_equal(model.cells_[k], fitted.cells_[k]) for k in fitted.cells_)
