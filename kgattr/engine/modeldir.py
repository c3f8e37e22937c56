"""The model directory: config.json + safetensors + FAISS index + id maps, never pickle.

```
config.json            parameters, network shape, attributes, the ontology files trained with, versions
nodes.json             id maps: SKUs, categories, (attribute, value) nodes
edges.safetensors      the co-occurrence graph
vocab.json             tf-idf vocabulary, attributes seen per category
network.safetensors    FusionGNN weights
linear.safetensors     linear text scorer (sparse term x value weights)
state.safetensors      neighbours, pool states, scored gaps of the training catalog and the copy the text gives each
neighbours.faiss       product vectors for similar-product search
ontology.ttl           a copy of the ontology the model was trained with (used when its files are gone)
products.sqlite        the training catalog's products by SKU (for `complete` and evidence)
copier.json            copy rules: values read from a product's own text, the attributes that take them, and the
                       values the scored gaps' copies write
refused.json           only when trained with reviews: {"refused": [[sku, attribute, value], ...]}, values
                       reviewers turned down, never proposed again for those products
manifest.json          size and sha256 of each file above, written last
```

A directory is written whole beside its final name, then swapped in; loading checks every file's size against
the manifest and each file's header, and reads the contents of those it needs, naming the file at fault
(:func:`verify` also compares hashes). Paths config.json records (ontology files, text model and extractor
directories) are relative to the model directory when they start with ``./`` or ``../``.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np

from ..exceptions import ModelError
from ..extract.copying import TextCopier
from ..extract.extraction import ExtractedValues
from ..io.catalog import Product
from ..io.outputs import staged_folder, umask
from .graph import CatalogGraph
from .modelfiles import (FORMAT, STATE, check_files, check_format, check_target, json_object, mapped, read_manifest,
                         reading, write_manifest)
from ..ontology.files import load_ontology, to_turtle
from ..ontology.ontology import Ontology
from ..ontology.rules import RuleSet
from ..text.lexical import LexicalFeatures
from .reviewed import Reviewed

log = logging.getLogger(__name__)

PATH_PARAMS = ("text_model", "extractor")          # directories; text_model may also name a Hugging Face model
LATER_PARAMS = ("text_backend",)                   # added within format 4: absent means the default


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("kgattr", "torch", "torch_geometric", "transformers", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _relative(target: str, home: Path) -> str:
    """``target``, an existing path, as config.json records it: relative to the model directory ``home``
    (starting with ./ or ../), or absolute where no relative path leads there (another drive)."""
    try:
        rel = Path(os.path.relpath(Path(target).resolve(), home)).as_posix()
    except ValueError:
        return str(Path(target).resolve())
    return rel if rel.startswith("../") else "./" + rel


def _resolve(recorded: str | None, home: Path) -> str | None:
    """A path config.json records, made absolute; other strings (a Hugging Face model name) as they are."""
    if recorded and recorded.startswith(("./", "../")):
        return str((home / recorded).resolve())
    return recorded


def save(completer, path) -> None:
    """Write the model directory ``path`` whole, then swap it in for what is there (see :func:`check_target` and
    :func:`~kgattr.io.outputs.staged_folder`)."""
    path = Path(path)
    check_target(path)
    home = path.parent.resolve() / path.name
    try:
        with staged_folder(path) as tmp:
            _write(completer, tmp, home)
            write_manifest(tmp)
    except OSError as e:
        raise ModelError(f"{path}: cannot write the model ({e.strerror or e})") from e


def _write(c, tmp: Path, home: Path) -> None:
    """Every file of the model but the manifest, into ``tmp``; paths recorded relative to ``home``."""
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file as save_torch

    params = c.get_params()
    for name in PATH_PARAMS:
        if params[name] and Path(params[name]).is_dir():
            params[name] = _relative(params[name], home)
    config = {"format": FORMAT, "params": params, "network": c.model_.get_config(),
              "attributes": c.attributes_, "targets": c.targets_, "history": c.history_,
              "ontology_files": [_relative(f, home) for f in c.ontology_.sources], "versions": _versions()}
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    c.graph_.save(tmp)
    vocab = {"lexical": c.lexical_.get_state(),
             "category_attributes": [[list(k), sorted(v)] for k, v in c.category_attributes_.items()]}
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    # the scored gaps' copied values as a table ("copied") and, in state.safetensors, an index into it (-1: none)
    copied = list(dict.fromkeys(v for v in c.cells_["copy"] if v is not None))
    at = {v: i for i, v in enumerate(copied)}
    copier = {"copier": c.copier_.get_state() if c.copier_ else None, "attributes": getattr(c, "copies_for_", []),
              "copied": copied}
    (tmp / "copier.json").write_text(json.dumps(copier, ensure_ascii=False))
    save_torch({k: v.contiguous() for k, v in c.model_.state_dict().items()}, str(tmp / "network.safetensors"))
    state = {"knn_index": c.knn_[0], "knn_score": c.knn_[1], "text_hash": c.text_hash_, "record_hash": c.record_hash_,
             "value_attribute": c.value_attribute_, "mix": c.mix_,
             "pool_h1": c.pool_.h1.numpy()}
    state.update({f"cells_{k}": v for k, v in c.cells_.items()})
    state["cells_copy"] = np.fromiter((at.get(v, -1) for v in c.cells_["copy"]), np.int64, len(c.cells_["copy"]))
    state.update({f"calibration_{k}": v for k, v in c.calibration_.items()})
    if c.extracted_:
        state.update({f"extracted_{k}": v for k, v in c.extracted_.arrays.items()})
    save_numpy({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp / "state.safetensors"))
    save_numpy(c.linear_.get_state(), str(tmp / "linear.safetensors"))
    c.index_.save(tmp / "neighbours.faiss")
    (tmp / "ontology.ttl").write_text(to_turtle(c.ontology_, origin="model snapshot"), encoding="utf-8")
    db = sqlite3.connect(tmp / "products.sqlite")
    with db:
        db.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, record TEXT)")
        # a row at a time: a million products' records would be 1.3 GB as one list
        db.executemany("INSERT INTO products VALUES (?, ?)",
                       ((p.sku, json.dumps(p.to_json(), ensure_ascii=False)) for p in c.products_))
    db.close()
    if c.reviewed_.refused:
        (tmp / "refused.json").write_text(json.dumps({"refused": c.reviewed_.triples()}, ensure_ascii=False))
    for f in tmp.iterdir():
        f.chmod(0o666 & ~umask())


def _check_config(file: Path, config: dict, cls) -> None:
    """Raise a :class:`ModelError` naming the first key or parameter of ``config`` that ``cls`` cannot take."""
    import inspect

    for key, kind in (("params", dict), ("network", dict), ("attributes", list), ("targets", list),
                      ("history", list), ("ontology_files", list)):
        if not isinstance(config.get(key), kind):
            raise ModelError(f"{file}: {key!r} must be a JSON {'object' if kind is dict else 'array'}")
    for key in ("attributes", "targets", "ontology_files"):
        if not all(isinstance(x, str) for x in config[key]):
            raise ModelError(f"{file}: {key!r} must hold strings only")
    signature = inspect.signature(cls).parameters
    defaults = {k: p.default for k, p in signature.items()}
    params = config["params"]
    for name, value in params.items():
        if name not in cls.PARAMS:
            raise ModelError(f"{file}: unknown parameter {name!r}")
        kind = type(defaults[name])
        if defaults[name] is None:               # `int | None` (epochs) or `str | None` (paths), as annotated
            kind = int if str(signature[name].annotation).startswith("int") else str
            fits = value is None or (isinstance(value, kind) and not isinstance(value, bool))
        else:                                    # an int where a float is expected is fine; JSON true is no int
            fits = isinstance(value, (int, float) if kind is float else kind) and \
                (kind is bool) == isinstance(value, bool)
        if not fits:
            wanted = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a path or null")
            raise ModelError(f"{file}: parameter {name!r} must be {wanted}, not {json.dumps(value)}")
    absent = [name for name in cls.PARAMS if name not in params and name not in LATER_PARAMS]
    if absent:
        raise ModelError(f"{file}: parameter {absent[0]!r} is missing")


def _missing_paths(self) -> list[str]:
    """The text model and extractor directories the model records but that are gone, one line each."""
    recorded = [(name, getattr(self, name)) for name in PATH_PARAMS if getattr(self, name)]
    return [f"{self.path_ / 'config.json'}: {name} {where}: no such directory"
            for name, where in recorded if Path(where).is_absolute() and not Path(where).is_dir()]


def load(cls, path, ontology: Path | None = None):
    """A completer that can answer for the training catalog without torch; see :func:`load_network`."""
    path = Path(path)
    files = read_manifest(path)
    config_file = path / "config.json"
    config = json_object(config_file, files["config.json"])
    check_format(config_file, config)
    check_files(path, files)
    _check_config(config_file, config, cls)
    params = config["params"]
    self = cls(**{**params, **{k: _resolve(params[k], path) for k in PATH_PARAMS}})
    self.path_, self.manifest_ = path, files
    for line in _missing_paths(self):
        log.warning("%s; products not seen in training cannot be scored", line)
    self.attributes_, self.targets_, self.history_ = config["attributes"], config["targets"], config["history"]
    self.network_config_ = config["network"]
    with reading(path / "nodes.json"):                   # edges.safetensors: its header is checked already
        self.graph_ = CatalogGraph.load(path)
    with reading(path / "vocab.json"):
        vocab = json_object(path / "vocab.json")
        self.lexical_ = LexicalFeatures.from_state(vocab["lexical"])
        self.category_attributes_ = {tuple(k): set(v) for k, v in vocab["category_attributes"]}
    with reading(path / "copier.json"):
        copier = json_object(path / "copier.json")
        self.copier_ = TextCopier.from_state(copier["copier"]) if copier["copier"] else None
        self.copies_for_ = copier["attributes"]
        copied = np.array(copier["copied"] + [None], dtype=object)          # -1 in cells_copy: None
    with reading(path / "state.safetensors"):
        state = mapped(path / "state.safetensors")
        self.knn_ = (state["knn_index"], state["knn_score"])
        self.text_hash_, self.record_hash_ = state["text_hash"], state["record_hash"]
        self.value_attribute_ = state["value_attribute"]
        self.mix_ = state["mix"]
        self.pool_h1_ = state["pool_h1"]
        self.cells_ = {k[len("cells_"):]: state[k] for k in STATE if k.startswith("cells_")}
        self.cells_["copy"] = StoredCopies(self.cells_["copy"], copied)
        self.calibration_ = {k[len("calibration_"):]: state[k] for k in STATE if k.startswith("calibration_")}
        self.extracted_ = ExtractedValues({k: state[f"extracted_{k}"] for k in ExtractedValues.KEYS}) \
            if "extracted_row" in state else None
    self.reviewed_ = _read_refused(path / "refused.json") if "refused.json" in files else Reviewed()
    self.ontology_ = model_ontology(path, [_resolve(f, path) for f in config["ontology_files"]], ontology)
    self.rules_ = RuleSet(self.ontology_)
    return self


class StoredCopies:
    """The scored cells' copied values as a loaded model stores them: (M,) int64 codes into ``values`` (object;
    the last one None, for -1). ``x[cells]`` is the object array of those cells' values, made as it is asked
    for: a million products' 14.9 M cells took 0.1 s and 180 MB to make whole at every load."""

    dtype = np.dtype(object)

    def __init__(self, codes: np.ndarray, values: np.ndarray):
        self.codes, self.values = codes, values

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, cells) -> np.ndarray:
        return self.values[self.codes[cells]]

    def tolist(self) -> list:
        return self[:].tolist()

    def __iter__(self):
        for s in range(0, len(self.codes), 1 << 16):
            yield from self.values[self.codes[s:s + (1 << 16)]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


def _read_refused(file: Path) -> Reviewed:
    refused = json_object(file).get("refused")
    if not isinstance(refused, list) or not all(
            isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t) for t in refused):
        raise ModelError(f"{file}: 'refused' must be a list of [sku, attribute, value] strings")
    return Reviewed.from_triples([], refused)


def model_ontology(path: Path, recorded: list[str], override=None) -> Ontology:
    """The rules a loaded model applies: ``override`` files, else the files it was trained with (read afresh,
    so edits take effect without training again), else the snapshot saved with it."""
    if override:
        return load_ontology(*([override] if isinstance(override, (str, Path)) else override))
    if recorded and all(Path(f).exists() for f in recorded):
        log.info("%s: rules read from %s", path, ", ".join(recorded))
        return load_ontology(*recorded)
    if recorded:
        log.warning("%s: %s is gone; using the rules saved with the model", path / "config.json",
                    next(f for f in recorded if not Path(f).exists()))
    with reading(path / "ontology.ttl"):
        return load_ontology(path / "ontology.ttl")


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

    missing = _missing_paths(self)
    if missing:
        raise ModelError(missing[0])
    if read_manifest(self.path_) != self.manifest_:
        raise ModelError(f"{self.path_}: replaced by another model while this one was in use; run again")
    with reading(self.path_ / "config.json", "its 'network' cannot be built"):
        model = FusionGNN(**self.network_config_)
    with reading(self.path_ / "network.safetensors", "does not hold the network config.json describes"):
        model.load_state_dict(load_file(str(self.path_ / "network.safetensors")))
    model.eval()
    hv = self.graph_.has_value                # the training catalog's known values: (pool size, num_values) CSR
    values = sp.csr_matrix((np.ones(hv.shape[1], np.float32), (hv[0], hv[1])),
                           shape=(len(self.graph_.skus), len(self.graph_.values)))
    self.pool_ = Pool(torch.from_numpy(self.pool_h1_), values, self.value_attribute_)
    self.index_ = NeighbourIndex.load(self.path_ / "neighbours.faiss")
    with reading(self.path_ / "linear.safetensors"):
        self.linear_ = LinearTextScorer.from_state(load_file_numpy(str(self.path_ / "linear.safetensors")),
                                                   C=self.svm_c)
    self.model_ = model


def read_products(path, skus: list[str]) -> list[Product]:
    """The products ``skus`` of the training catalog, from products.sqlite (opened read-only)."""
    file = Path(path) / "products.sqlite"
    found = {}
    with reading(file):
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            for start in range(0, len(skus), 900):                     # SQLite's bound-variable limit
                chunk = skus[start:start + 900]
                for sku, record in db.execute(f"SELECT sku, record FROM products WHERE sku IN "
                                              f"({','.join('?' * len(chunk))})", chunk):
                    r = json.loads(record)
                    found[sku] = Product(r["sku"], r["title"], r["description"], tuple(r["category"]), r["attributes"])
        finally:
            db.close()
    absent = [s for s in skus if s not in found]
    if absent:
        raise ModelError(f"{file}: SKU {absent[0]!r} is missing (the file does not match nodes.json)")
    return [found[s] for s in skus]

