"""Growing past one machine: text backends (ONNX Runtime, int8, static vectors) and Ray runs that give one machine's
outputs."""
import json
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from kgattr.cli.main import app
from kgattr.exceptions import EncoderError
from kgattr.io.datasets import make_catalog
from kgattr.text.encoder import TextEncoder, text_key

runner = CliRunner()


def _texts(n=150, seed=3):
    return [p.text for p in make_catalog(n, seed=seed)]


def test_unknown_backend_is_one_error():
    with pytest.raises(EncoderError, match="unknown text backend 'tf'"):
        TextEncoder(backend="tf")


def test_texts_batched_by_length_whole_batches_reproduce():
    enc = TextEncoder(batch_size=4)
    texts = ["bb", "a", "dddd", "cc", "a", "eeeee", "ff", "g", "hhh"]
    batches = enc.batches(texts)
    assert [len(b) for b in batches] == [4, 4, 1]
    flat = np.concatenate(batches)
    assert [len(texts[i]) for i in flat] == sorted(map(len, texts))
    # the texts of whole batches, taken on their own, fall into the same batches
    tail = [texts[i] for i in flat[4:]]
    assert [[tail[i] for i in b] for b in enc.batches(tail)] == [[texts[i] for i in b] for b in batches[1:]]


@pytest.mark.parametrize("backend, closest", [("onnx", 0.9999), ("onnx-int8", 0.9)])
def test_onnx_backends_match_torch(backend, closest, tiny_bert, tmp_path):
    pytest.importorskip("onnxruntime")
    texts = _texts(40)
    ref = TextEncoder(tiny_bert, cache_dir=tmp_path).encode(texts)
    enc = TextEncoder(tiny_bert, cache_dir=tmp_path, backend=backend)
    vectors = enc.encode(texts)
    assert vectors.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors * ref).sum(1).min() > closest
    exported = list((tmp_path / "onnx").glob(f"*-{backend}.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    np.testing.assert_array_equal(enc.encode_batches(texts), enc.encode_batches(texts))
    assert exported[0].stat().st_mtime_ns == stamp                  # exported once, then read
    # each backend its own cache file: the vectors differ
    assert enc.cache_file != TextEncoder(tiny_bert, cache_dir=tmp_path).cache_file


def test_static_backend_distils_once_and_encodes_the_same(tiny_bert, tmp_path):
    pytest.importorskip("model2vec")
    from kgattr.text.static import distilled

    texts = _texts(40)
    enc = TextEncoder(tiny_bert, cache_dir=tmp_path, backend="static")
    vectors = enc.encode(texts)
    assert vectors.shape == (40, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    [folder] = (tmp_path / "static").iterdir()                       # no temporary folder left beside it
    stamp = folder.stat().st_mtime_ns
    assert distilled(tiny_bert, tmp_path) == folder and folder.stat().st_mtime_ns == stamp     # distilled once
    np.testing.assert_array_equal(enc.encode_batches(texts), vectors)
    np.testing.assert_array_equal(enc.encode_batches(texts[5:6]), vectors[5:6])               # one text alone
    assert enc.cache_file != TextEncoder(tiny_bert, cache_dir=tmp_path).cache_file
    again = TextEncoder(tiny_bert, cache_dir=tmp_path / "again", backend="static").encode(texts)
    np.testing.assert_allclose(again, vectors, atol=1e-6)            # a second distillation: the same vectors


def test_model_trained_static_encodes_new_products_static(catalog, tiny_bert, tmp_path, monkeypatch):
    pytest.importorskip("model2vec")
    monkeypatch.setenv("KGATTR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in catalog))
    result = runner.invoke(app, ["train", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "m"), "--text-model",
                                 tiny_bert, "--epochs", "2", "--encoder", "static"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["text_backend"] == "static"
    new = make_catalog(60, seed=11)
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in new))
    result = runner.invoke(app, ["impute", str(tmp_path / "new.jsonl"), "--model", str(tmp_path / "m"),
                                 "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    static = TextEncoder(tiny_bert, cache_dir=tmp_path / "cache", backend="static").cache_file
    assert {text_key(p.text) for p in new} <= set(_cache_rows(static))
    assert not TextEncoder(tiny_bert, cache_dir=tmp_path / "cache").cache_file.exists()     # torch never ran


def test_model_saved_before_text_backend_loads(fitted, tmp_path):
    from kgattr import AttributeCompleter
    from kgattr.engine.modelfiles import write_manifest

    fitted.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"].pop("text_backend") == "torch"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    write_manifest(tmp_path / "m")
    assert AttributeCompleter.load(tmp_path / "m").text_backend == "torch"


# ---- Ray: a local cluster of two CPUs, started once for the tests below -------------------------------
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    pytest.importorskip("ray")
    import os

    from kgattr.engine.distributed import connect

    # the workers' cache (set when Ray starts) is not the one the local runs below use
    before = os.environ.get("KGATTR_CACHE")
    os.environ["KGATTR_CACHE"] = str(tmp_path_factory.mktemp("ray-cache"))
    ray = connect("local", num_cpus=2)
    yield os.environ["KGATTR_CACHE"]
    ray.shutdown()
    if before is None:
        os.environ.pop("KGATTR_CACHE")
    else:
        os.environ["KGATTR_CACHE"] = before


def _cache_rows(file) -> dict:
    with sqlite3.connect(file) as db:
        return dict(db.execute("SELECT key, vec FROM emb"))


def test_encode_on_ray_fills_the_cache_as_one_process(ray_cluster, tiny_bert, tmp_path, monkeypatch):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in make_catalog(150, seed=3)))
    files = {}
    for name, extra in (("local", []), ("ray", ["--ray", "--workers", "2"])):
        monkeypatch.setenv("KGATTR_CACHE", str(tmp_path / name))
        result = runner.invoke(app, ["encode", str(tmp_path / "c.jsonl"), "--text-model", tiny_bert, *extra])
        assert result.exit_code == 0, result.output
        assert "150 distinct texts, 150 encoded now" in result.output
        files[name] = next((tmp_path / name).glob("text-*.sqlite"))
    assert files["local"].name == files["ray"].name
    assert _cache_rows(files["local"]) == _cache_rows(files["ray"])         # three batches on two workers
    result = runner.invoke(app, ["encode", str(tmp_path / "c.jsonl"), "--text-model", tiny_bert, "--ray"])
    assert "0 encoded now" in result.output


def test_impute_on_ray_writes_the_same_bytes(ray_cluster, fitted, tmp_path, monkeypatch):
    import kgattr.engine.distributed

    fitted.save(tmp_path / "model")
    new = make_catalog(150, seed=11)                     # other products: encoded, searched and scored afresh
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in new))
    monkeypatch.setattr(kgattr.engine.distributed, "PRODUCTS_PER_SHARD", 40)       # four shards
    outputs = {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        monkeypatch.setenv("KGATTR_CACHE", str(tmp_path / f"cache-{name}"))
        out = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["impute", str(tmp_path / "new.jsonl"), "--model", str(tmp_path / "model"),
                                     "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        outputs[name] = [p.read_bytes() for p in (out, tmp_path / f"{name}.jsonl.cells.jsonl",
                                                  tmp_path / f"{name}.jsonl.review.jsonl")]
    assert outputs["local"][1].count(b"\n") > 100
    assert outputs["local"] == outputs["ray"]


def test_ray_missing_is_one_error(monkeypatch):
    import sys

    from kgattr.engine.distributed import RayError, connect

    monkeypatch.setitem(sys.modules, "ray", None)                 # as where it is not installed
    with pytest.raises(RayError, match=r"pip install 'kgattr\[ray\]'"):
        connect()


def test_train_on_ray_writes_the_same_model(ray_cluster, tiny_bert, tmp_path, monkeypatch):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(p.to_json()) + "\n" for p in make_catalog(150, seed=3)))
    files = {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        monkeypatch.setenv("KGATTR_CACHE", str(tmp_path / f"cache-{name}"))
        result = runner.invoke(app, ["train", str(tmp_path / "c.jsonl"), "--text-model", tiny_bert, "--epochs", "2",
                                     "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        files[name] = {p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())}
    assert "linear.safetensors" in files["local"]
    assert files["local"] == files["ray"]
