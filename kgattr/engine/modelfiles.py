"""The files of a model directory and their manifest: what may be replaced, what is damaged, and how to say so.

``manifest.json`` is written last: ``{"format": FORMAT, "files": {name: {"size": bytes, "sha256": hex}}}``. Loading
checks sizes and headers (cheap); :func:`verify` also hashes every file. A model is written whole beside its final
name and swapped in (:func:`kgattr.io.outputs.staged_folder`); an interrupted swap leaves the previous model in
``.NAME.old-PID-*``.
"""
from __future__ import annotations

import glob
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

from ..exceptions import KgattrError, ModelError

FORMAT = 10           # 2: calibration outcomes for per-attribute precision thresholds; 3: listing votes per category;
                      # 4: manifest.json, paths relative to the model directory; 5: the similar-product vote a
                      # member of the mix, copy rules (copier.json); 6: a calibration map per source; 7: beta maps;
                      # 8: the copy the text gives each scored gap (cells_copy*, copier.json "copied");
                      # 9: copy rules counted apart where they write a known value (copier.json);
                      # 10: the products' SKUs and their orders kept with the graph (edges.safetensors "listing",
                      # "sku_table", "sku_by_bytes"; nodes.json without "skus")
FILES = ("config.json", "nodes.json", "edges.safetensors", "vocab.json", "network.safetensors", "linear.safetensors",
         "state.safetensors", "neighbours.faiss", "ontology.ttl", "products.sqlite", "copier.json")
OPTIONAL = ("refused.json",)      # written only when there is something to keep: a model without it reads as before
MANIFEST = "manifest.json"
STATE = ("knn_index", "knn_score", "text_hash", "record_hash", "value_attribute", "mix",
         "calibration_attribute", "calibration_confidence", "calibration_correct", "calibration_map",
         "cells_product", "cells_attribute", "cells_values", "cells_logits", "cells_copy", "cells_copy_confidence",
         "cells_copy_field", "cells_copy_start", "cells_copy_end")
TENSORS = {"edges.safetensors": ("has_value", "in_category", "parent", "cooccurs", "pmi", "listing", "sku_table",
                                  "sku_by_bytes"),
           "state.safetensors": STATE + ("pool_h1",),
           "linear.safetensors": ("linear_indptr", "linear_indices", "linear_data", "linear_shape", "linear_bias"),
           "network.safetensors": ()}
# first bytes of the other binary files: a faiss.IndexFlatIP or IndexIVFFlat (what NeighbourIndex writes below and
# above its exact limit), an SQLite database
MAGIC = {"neighbours.faiss": ((b"IxFI", b"IwFl"), "a FAISS index"),
         "products.sqlite": ((b"SQLite format 3\0",), "an SQLite database")}


# safetensors' dtype names, as numpy's
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32", "I16": "int16",
          "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def mapped(file: Path) -> dict:
    """The tensors of the safetensors ``file`` as numpy arrays mapped from it, copy-on-write: a page is read when
    it is first used, so loading costs nothing per product (``state.safetensors`` of 200,000 products is 0.7 GB, of
    which one ``complete`` reads a few pages). The file's size and header are those :func:`check_files` checked."""
    import numpy as np

    with open(file, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        shape, dtype = tuple(t["shape"]), DTYPES[t["dtype"]]
        out[name] = np.memmap(file, dtype=dtype, mode="c", offset=8 + size + start, shape=shape) if end > start \
            else np.zeros(shape, dtype=dtype)
    return out


@contextmanager
def reading(file: Path, what: str = "unexpected content"):
    """Turn any error raised while reading ``file`` into a one-line :class:`ModelError` that names it."""
    try:
        yield
    except KgattrError:
        raise
    except FileNotFoundError as e:
        raise ModelError(f"{file}: missing") from e
    except OSError as e:
        raise ModelError(f"{file}: cannot be read ({e.strerror or e})") from e
    except Exception as e:                       # whatever the parser of a damaged file raises
        detail = " ".join(str(e).split())[:160]
        raise ModelError(f"{file}: {what} ({type(e).__name__}: {detail})") from e


def json_object(file: Path, entry: dict | None = None) -> dict:
    """The JSON object in ``file``; anything else is a :class:`ModelError`.

    Args:
        entry: the file's manifest entry: a file that is not JSON is reported by its size when that differs.
    """
    with reading(file, "not valid JSON"):
        try:
            value = json.loads(file.read_bytes())
        except ValueError:
            if entry and damage(file, entry):
                raise ModelError(damage(file, entry)) from None
            raise
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(value),
                                                                                               "a number")
        raise ModelError(f"{file}: expected a JSON object, found {kind}")
    return value


def check_format(file: Path, record: dict) -> None:
    if record.get("format") != FORMAT:
        raise ModelError(f"{file.parent}: model format {record.get('format')} was written by another version of "
                         f"kgattr (this one reads format {FORMAT}); train it again")


def sha256(file: Path) -> str:
    with open(file, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(directory: Path) -> None:
    """Record the size and sha256 of every model file in ``directory``."""
    names = FILES + tuple(name for name in OPTIONAL if (directory / name).exists())
    files = {name: {"size": (directory / name).stat().st_size, "sha256": sha256(directory / name)} for name in names}
    (directory / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files}, indent=1))


def damage(file: Path, entry: dict, hashes: bool = False) -> str | None:
    """What is wrong with ``file`` given its manifest ``entry`` (None: nothing found).

    Args:
        hashes: compare sha256 too (reads the whole file).
    """
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return f"{file}: missing"
    except OSError as e:
        return f"{file}: cannot be read ({e.strerror or e})"
    if size != entry["size"]:
        return f"{file}: {'truncated' if size < entry['size'] else 'wrong size'} " \
               f"(expected {entry['size']} bytes, found {size})"
    try:
        if hashes and sha256(file) != entry["sha256"]:
            return f"{file}: contents changed since it was written (sha256 differs from {MANIFEST})"
    except OSError as e:
        return f"{file}: cannot be read ({e.strerror or e})"
    return None


def read_manifest(path: Path) -> dict:
    """The manifest's ``files`` of the model directory ``path``; a :class:`ModelError` when there is none of
    this format."""
    if not path.is_dir():
        aside = sorted(path.parent.glob(f".{glob.escape(path.name)}.old-*"))
        raise ModelError(f"{path}: no such model directory" +
                         (f" (an interrupted save left the previous model in {aside[0]})" if aside else ""))
    file = path / MANIFEST
    if not file.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a kgattr model directory (no {MANIFEST})")
        check_format(path / "config.json", json_object(path / "config.json"))
        raise ModelError(f"{file}: missing")
    manifest = json_object(file)
    check_format(file, manifest)
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) - set(OPTIONAL) != set(FILES) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int) and isinstance(e.get("sha256"), str)
            for e in files.values()):
        raise ModelError(f"{file}: not a manifest of the files of format {FORMAT}")
    return files


def check_files(path: Path, files: dict) -> None:
    """Raise a :class:`ModelError` naming the first file of the model directory ``path`` whose size differs from
    the manifest's ``files`` or whose header is not what it should be. config.json is left to its reader, which
    checks every key and parameter it needs (so a hand edit that keeps it valid is no damage to loading)."""
    for name in files:
        problem = damage(path / name, files[name]) if name != "config.json" else None
        if problem:
            raise ModelError(problem)
    _check_headers(path)


def _check_headers(path: Path) -> None:
    from safetensors import safe_open

    for name, (magics, kind) in MAGIC.items():
        with reading(path / name), open(path / name, "rb") as f:
            head = f.read(max(map(len, magics)))
            if not any(head.startswith(m) for m in magics):
                raise ModelError(f"{path / name}: not {kind}")
    for name, required in TENSORS.items():
        with reading(path / name, "not a safetensors file"), safe_open(str(path / name), "np") as f:
            keys = set(f.keys())
        absent = [k for k in required if k not in keys]
        if absent:
            raise ModelError(f"{path / name}: tensor {absent[0]!r} is missing")


def verify(path) -> list[str]:
    """One line per file of the model directory ``path`` whose size or sha256 differs from the manifest."""
    path = Path(path)
    files = read_manifest(path)
    return [problem for name in files if (problem := damage(path / name, files[name], hashes=True))]


def _is_model(path: Path) -> bool:
    if (path / MANIFEST).is_file():
        return True
    try:
        config = json.loads((path / "config.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "format" in config and "params" in config


def check_target(path: Path) -> None:
    """Raise a :class:`ModelError` unless a model may be written to ``path``: absent, an empty directory, or a
    model directory holding nothing but model files (which a save replaces)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ModelError(f"{path}: exists and is not a directory")
    names = sorted(p.name for p in path.iterdir())
    listed = lambda found: ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    if names and not _is_model(path):
        raise ModelError(f"{path}: not empty and not a kgattr model directory (it holds {listed(names)}); "
                         f"choose a new or empty directory")
    foreign = [n for n in names if n not in FILES + OPTIONAL + (MANIFEST,)]
    if foreign:
        raise ModelError(f"{path}: holds files that are not part of a kgattr model ({listed(foreign)}); "
                         f"move them or choose another directory")
