"""The model directory: config.json + safetensors + FAISS index + id maps, never pickle.

```
config.json            parameters, network shape, attributes, the ontology files trained with, versions
nodes.json             id maps: SKUs, categories, (attribute, value) nodes
edges.safetensors      the co-occurrence graph
vocab.json             tf-idf vocabulary, attributes seen per category
network.safetensors    FusionGNN weights
linear.safetensors     linear text scorer (sparse term x value weights)
state.safetensors      neighbours, pool states, scored gaps of the training catalog
neighbours.faiss       product vectors for similar-product search
ontology.ttl           a copy of the ontology the model was trained with (used when its files are gone)
products.sqlite        the training catalog's products by SKU (for `complete` and evidence)
```
"""
from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from .catalog import Product
from .exceptions import KgattrError
from .extraction import ExtractedValues
from .graph import CatalogGraph
from .ontology import Ontology
from .rules import RuleSet
from .text import LexicalFeatures

log = logging.getLogger(__name__)

FORMAT = 3            # 2: calibration outcomes for per-attribute precision thresholds; 3: listing votes per category
STATE = ("knn_index", "knn_score", "text_hash", "record_hash", "value_attribute", "mix",
         "calibration_attribute", "calibration_confidence", "calibration_correct",
         "cells_product", "cells_attribute", "cells_values", "cells_logits")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("kgattr", "torch", "torch_geometric", "transformers", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def save(completer, path) -> None:
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file as save_torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        c = completer
        config = {"format": FORMAT, "params": c.get_params(), "network": c.model_.get_config(),
                  "attributes": c.attributes_, "targets": c.targets_, "history": c.history_,
                  "ontology_files": list(c.ontology_.sources), "versions": _versions()}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        c.graph_.save(tmp)
        vocab = {"lexical": c.lexical_.get_state(),
                 "category_attributes": [[list(k), sorted(v)] for k, v in c.category_attributes_.items()]}
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        save_torch({k: v.contiguous() for k, v in c.model_.state_dict().items()}, str(tmp / "network.safetensors"))
        state = {"knn_index": c.knn_[0], "knn_score": c.knn_[1], "text_hash": c.text_hash_, "record_hash": c.record_hash_,
                 "value_attribute": c.value_attribute_, "mix": c.mix_,
                 "pool_h1": c.pool_.h1.numpy()}
        state.update({f"cells_{k}": v for k, v in c.cells_.items()})
        state.update({f"calibration_{k}": v for k, v in c.calibration_.items()})
        if c.extracted_:
            state.update({f"extracted_{k}": v for k, v in c.extracted_.arrays.items()})
        save_numpy({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp / "state.safetensors"))
        save_numpy(c.linear_.get_state(), str(tmp / "linear.safetensors"))
        c.index_.save(tmp / "neighbours.faiss")
        (tmp / "ontology.ttl").write_text(c.ontology_.to_turtle(origin="model snapshot"), encoding="utf-8")
        db = sqlite3.connect(tmp / "products.sqlite")
        with db:
            db.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, record TEXT)")
            db.executemany("INSERT INTO products VALUES (?, ?)",
                           [(p.sku, json.dumps(p.to_json(), ensure_ascii=False)) for p in c.products_])
        db.close()
        from .catalog import _umask

        tmp.chmod(0o777 & ~_umask())                      # mkdtemp creates 0700
        for f in tmp.iterdir():
            f.chmod(0o666 & ~_umask())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(cls, path, ontology: Path | None = None):
    """A completer that can answer for the training catalog without torch; see :func:`load_network`."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not (path / "config.json").exists():
        raise KgattrError(f"{path}: not a kgattr model directory (no config.json)")
    config = json.loads((path / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise KgattrError(f"{path}: model format {config.get('format')} was written by another version of kgattr "
                          f"(this one reads format {FORMAT}); train it again")
    self = cls(**config["params"])
    self.path_ = path
    self.attributes_, self.targets_, self.history_ = config["attributes"], config["targets"], config["history"]
    self.network_config_ = config["network"]
    self.graph_ = CatalogGraph.load(path)
    vocab = json.loads((path / "vocab.json").read_text())
    self.lexical_ = LexicalFeatures.from_state(vocab["lexical"])
    self.category_attributes_ = {tuple(k): set(v) for k, v in vocab["category_attributes"]}
    state = load_file(str(path / "state.safetensors"))
    self.knn_ = (state["knn_index"], state["knn_score"])
    self.text_hash_, self.record_hash_ = state["text_hash"], state["record_hash"]
    self.value_attribute_ = state["value_attribute"]
    self.mix_ = state["mix"]
    self.pool_h1_ = state["pool_h1"]
    self.cells_ = {k[len("cells_"):]: state[k] for k in STATE if k.startswith("cells_")}
    self.calibration_ = {k[len("calibration_"):]: state[k] for k in STATE if k.startswith("calibration_")}
    self.extracted_ = ExtractedValues({k: state[f"extracted_{k}"] for k in ExtractedValues.KEYS}) \
        if "extracted_row" in state else None
    self.ontology_ = load_ontology(path, config.get("ontology_files", []), ontology)
    self.rules_ = RuleSet(self.ontology_)
    return self


def load_ontology(path: Path, recorded: list[str], override=None) -> Ontology:
    """The rules a loaded model applies: ``override`` files, else the files it was trained with (read afresh,
    so edits take effect without training again), else the snapshot saved with it."""
    if override:
        return Ontology.load(*([override] if isinstance(override, (str, Path)) else override))
    if recorded and all(Path(f).exists() for f in recorded):
        return Ontology.load(*recorded)
    if recorded:
        log.warning("%s: %s is gone; using the rules saved with the model", path,
                    next(f for f in recorded if not Path(f).exists()))
    return Ontology.load(path / "ontology.ttl")


def load_network(self) -> None:
    """Load what scoring new products needs: the network weights, pool states and the FAISS index."""
    import scipy.sparse as sp
    import torch
    from safetensors.numpy import load_file as load_file_numpy
    from safetensors.torch import load_file

    from .index import NeighbourIndex
    from .linear import LinearTextScorer
    from .model import FusionGNN
    from .train import Pool

    self.model_ = FusionGNN(**self.network_config_)
    self.model_.load_state_dict(load_file(str(self.path_ / "network.safetensors")))
    self.model_.eval()
    hv = self.graph_.has_value                # the training catalog's known values: (pool size, num_values) CSR
    values = sp.csr_matrix((np.ones(hv.shape[1], np.float32), (hv[0], hv[1])),
                           shape=(len(self.graph_.skus), len(self.graph_.values)))
    self.pool_ = Pool(torch.from_numpy(self.pool_h1_), values, self.value_attribute_)
    self.index_ = NeighbourIndex.load(self.path_ / "neighbours.faiss")
    self.linear_ = LinearTextScorer.from_state(load_file_numpy(str(self.path_ / "linear.safetensors")), C=self.svm_c)


def read_products(path, skus: list[str]) -> list[Product]:
    db = sqlite3.connect(Path(path) / "products.sqlite")
    found = {}
    for sku, record in db.execute(f"SELECT sku, record FROM products WHERE sku IN ({','.join('?' * len(skus))})", skus):
        r = json.loads(record)
        found[sku] = Product(r["sku"], r["title"], r["description"], tuple(r["category"]), r["attributes"])
    db.close()
    return [found[s] for s in skus]
