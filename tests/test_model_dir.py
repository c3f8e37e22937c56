"""Model directories: written whole or not at all, damage named in one line, a text cache that never fails a job."""
import copy
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kgattr import AttributeCompleter, read_catalog, write_catalog
from kgattr.engine.modelfiles import FILES, MANIFEST
from kgattr.exceptions import ModelError
from kgattr.ontology.files import save_ontology

from test_cli import run


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, fitted, catalog):
    """A pristine model, and a catalog of its products with one of them changed (so impute needs the network)."""
    root = tmp_path_factory.mktemp("modeldir")
    fitted.save(root / "model")
    write_catalog(catalog, root / "catalog.jsonl")
    first = catalog.products[0]
    changed = type(catalog)([type(first)(first.sku, first.title + " Cotton", first.description, first.category,
                                         first.attributes)] + list(catalog.products[1:10]))
    write_catalog(changed, root / "changed.jsonl")
    return root


@pytest.fixture
def model(saved, tmp_path):
    shutil.copytree(saved / "model", tmp_path / "model")
    return tmp_path / "model"


def truncate(f):
    f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])


def garbage(f):
    f.write_bytes(b"\x00garbage\xff" * 3)


def same_size_garbage(f):
    f.write_bytes(bytes(range(256)) * (f.stat().st_size // 256) + b"x" * (f.stat().st_size % 256))


def edit_config(change):
    def edit(f):
        config = json.loads(f.read_text())
        change(config)
        f.write_text(json.dumps(config))
    return edit


CASES = [(name, how, fn) for name in FILES for how, fn in
         (("missing", os.remove), ("truncated", truncate), ("garbage", garbage), ("same-size", same_size_garbage))]
CASES += [
    ("config.json", "array", lambda f: f.write_text("[1, 2]")),
    ("config.json", "unknown-param", edit_config(lambda c: c["params"].update(dropout=0.1))),
    ("config.json", "param-type", edit_config(lambda c: c["params"].update(epochs="three"))),
    ("config.json", "params-not-object", edit_config(lambda c: c.update(params=[]))),
    ("config.json", "missing-param", edit_config(lambda c: c["params"].pop("seed"))),
    ("manifest.json", "missing", os.remove),
    ("manifest.json", "garbage", garbage),
]
EXPECT = {"missing": "missing", "truncated": "truncated (expected", "array": "expected a JSON object, found an array",
          "unknown-param": "unknown parameter 'dropout'",
          "param-type": "parameter 'epochs' must be an integer, not \"three\"",
          "params-not-object": "'params' must be a JSON object", "missing-param": "parameter 'seed' is missing"}


@pytest.mark.parametrize("name, how, damage", CASES, ids=[f"{n}-{h}" for n, h, _ in CASES])
def test_damaged_file_is_named_by_complete_and_impute(model, saved, catalog, tmp_path, name, how, damage):
    damage(model / name)
    complete = run("complete", "--model", model, "--sku", catalog.products[0].sku, "--json")
    impute = run("impute", saved / "changed.jsonl", "--model", model, "-o", tmp_path / "out.jsonl")
    for result in (complete, impute):
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        # the file named, with the line where a reader can tell it (a Turtle file's bad byte)
        assert re.match(rf"kgattr: error: {re.escape(str(model / name))}(:\d+)?: ", line) and "\n" not in line
        assert EXPECT.get(how, "") in line
    assert not (tmp_path / "out.jsonl").exists()


def test_a_missing_text_model_is_named_when_new_products_need_it(model, saved, catalog, tmp_path, caplog):
    edit_config(lambda c: c["params"].update(text_model="./gone-bert"))(model / "config.json")
    with caplog.at_level(logging.WARNING):
        assert run("complete", "--model", model, "--sku", catalog.products[0].sku, "--json").exit_code == 0
    assert "gone-bert: no such directory" in caplog.text
    result = run("impute", saved / "changed.jsonl", "--model", model, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 2
    assert result.output.startswith(f"kgattr: error: {model / 'config.json'}: text_model {model / 'gone-bert'}")


def test_older_and_foreign_directories_are_refused(model, tmp_path):
    edit_config(lambda c: c.update(format=3))(model / "config.json")
    (model / MANIFEST).unlink()
    with pytest.raises(ModelError, match="model format 3 .* train it again"):
        AttributeCompleter.load(model)
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "nowhere"):
        result = run("model", "verify", path)
        assert result.exit_code == 2 and str(path) in result.output


def test_impute_output_may_not_go_into_the_model(model, saved):
    before = snapshot(model)
    assert run("impute", saved / "catalog.jsonl", "--model", model, "-o", model / "config.json").exit_code == 2
    assert snapshot(model) == before


def test_verify_finds_a_flipped_byte(model):
    result = run("model", "verify", model)
    assert result.exit_code == 0 and f"{model}: ok (11 files" in result.output
    data = bytearray((model / "network.safetensors").read_bytes())
    data[-5] ^= 0x01                                   # inside the weights: loading cannot see it, the hash can
    (model / "network.safetensors").write_bytes(bytes(data))
    AttributeCompleter.load(model)
    result = run("model", "verify", model)
    assert result.exit_code == 1
    assert f"{model / 'network.safetensors'}: contents changed" in result.output


def test_train_refuses_a_folder_that_is_not_a_model(saved, tmp_path, tiny_bert):
    folder = tmp_path / "u"
    folder.mkdir()
    shutil.copy(saved / "catalog.jsonl", folder / "catalog.jsonl")
    before = snapshot(folder)
    result = run("train", folder / "catalog.jsonl", "--out", folder, "--text-model", tiny_bert, "--epochs", 1)
    assert result.exit_code == 2 and "not a kgattr model directory" in result.output and "\n" not in result.output.strip()
    assert snapshot(folder) == before
    # a model directory holding a file of the user's is refused too
    shutil.copytree(saved / "model", tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    result = run("train", folder / "catalog.jsonl", "--out", tmp_path / "m", "--text-model", tiny_bert)
    assert result.exit_code == 2 and "notes.txt" in result.output
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


def test_save_swaps_a_model_in_and_leaves_nothing_beside_it(fitted, saved, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(saved / "model", target)
    (target / "edges.safetensors").write_bytes(b"old")        # to see it replaced
    (tmp_path / ".m.partial-999999999-abc").mkdir()            # left by a process that is gone
    fitted.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert snapshot(target).keys() == snapshot(saved / "model").keys()
    assert run("model", "verify", target).exit_code == 0


def test_an_interrupted_save_removes_its_directory_and_keeps_the_model(fitted, model, monkeypatch):
    from kgattr.engine import modeldir

    before = snapshot(model)

    def interrupt(directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(modeldir, "write_manifest", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(model)
    assert snapshot(model) == before and sorted(p.name for p in model.parent.iterdir()) == ["model"]


def test_a_model_replaced_while_in_use_is_not_mixed_with_it(fitted, model, saved):
    loaded = AttributeCompleter.load(model)
    changed = copy.copy(fitted)
    changed.history_ = fitted.history_ + [0.0]
    changed.save(model)
    with pytest.raises(ModelError, match="replaced by another model while this one was in use"):
        loaded.impute(read_catalog(saved / "changed.jsonl"))


def test_paths_are_recorded_relative_to_the_model(fitted, tmp_path, caplog):
    project = tmp_path / "project"
    (project / "rules").mkdir(parents=True)
    save_ontology(fitted.ontology_, project / "rules" / "o.ttl")
    from kgattr.ontology.files import load_ontology

    trained_with = copy.copy(fitted)
    trained_with.ontology_ = load_ontology(project / "rules" / "o.ttl")
    trained_with.save(project / "models" / "m")
    config = json.loads((project / "models" / "m" / "config.json").read_text())
    assert config["ontology_files"] == ["../../rules/o.ttl"]
    moved = tmp_path / "elsewhere"
    shutil.move(project, moved)
    loaded = AttributeCompleter.load(moved / "models" / "m")
    assert loaded.ontology_.sources == (str(moved / "rules" / "o.ttl"),)
    (moved / "rules" / "o.ttl").unlink()
    with caplog.at_level(logging.WARNING):
        AttributeCompleter.load(moved / "models" / "m")
    assert f"{moved / 'rules' / 'o.ttl'} is gone; using the rules saved with the model" in caplog.text


KILLED_SAVE = """
import sys, time
from kgattr import AttributeCompleter
from kgattr.engine import modeldir, modelfiles
c = AttributeCompleter.load(sys.argv[1])
modeldir.load_network(c)
c.products_ = modeldir.read_products(sys.argv[1], c.graph_.skus)
c.history_ = c.history_ + [0.0]                                  # a model that differs from the one on disk
hash_file = modelfiles.sha256
modelfiles.sha256 = lambda f: (time.sleep(60), hash_file(f))[1]   # hold it while it writes the manifest
modeldir.save(c, sys.argv[1])
"""


def test_a_save_killed_while_writing_leaves_the_previous_model_intact(saved, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(saved / "model", target)
    before = snapshot(target)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(target)], cwd=Path(__file__).parent.parent)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob(".m.partial-*/products.sqlite")) and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.05)
        assert proc.poll() is None, "the save ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert snapshot(target) == before
    assert [p.name for p in tmp_path.glob(".m.partial-*")]             # left, recognisably named
    assert run("model", "verify", target).exit_code == 0


def test_a_corrupt_text_cache_is_moved_aside_and_rebuilt(tiny_bert, tmp_path, caplog):
    from kgattr.text.encoder import TextEncoder

    encoder = TextEncoder(tiny_bert, cache_dir=tmp_path)
    first = encoder.encode(["red shirt", "blue jeans"])
    [file] = tmp_path.glob("text-*.sqlite")
    file.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        again = encoder.encode(["red shirt", "blue jeans"])
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert [r.message.count("is corrupt") for r in caplog.records] == [1]
    assert file.with_name(file.name + ".corrupt").exists()
    db = sqlite3.connect(file)
    assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] == 2
    db.close()


def test_an_unwritable_cache_folder_is_bypassed(tiny_bert, tmp_path, caplog):
    from kgattr.text.encoder import TextEncoder

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        out = TextEncoder(tiny_bert, cache_dir=blocker / "cache").encode(["red shirt"])
    assert out.shape[0] == 1 and [r.message.count("cache not used") for r in caplog.records] == [1]


def test_threads_share_one_cache(tiny_bert, tmp_path):
    from kgattr.text.encoder import TextEncoder

    texts = [f"shirt number {i}" for i in range(40)]
    errors, results = [], {}

    def work(i):
        try:
            results[i] = TextEncoder(tiny_bert, cache_dir=tmp_path, batch_size=4).encode(texts[i % 3::2])
        except Exception as e:                      # noqa: BLE001 - any failure fails the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    [file] = tmp_path.glob("text-*.sqlite")
    db = sqlite3.connect(file)
    assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] == len(set(texts[0::2]) | set(texts[1::2]))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
