"""Catalog input and output: JSON Lines (canonical), CSV and Parquet in wide form.

A product is ``{"sku", "title", "description", "category": [root, ..., leaf], "attributes": {name: value}}``.
Unknown extra fields are kept on read and written back unchanged, so a catalog round-trips.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .exceptions import CatalogError
from .outputs import _umask, atomic_write  # noqa: F401  (writers elsewhere import them from here)

CORE_FIELDS = ("sku", "title", "description", "category", "attributes")
# Wide-form column that holds the category path, levels joined by this separator.
CATEGORY_SEPARATOR = " > "


@dataclass
class Product:
    sku: str
    title: str = ""
    description: str = ""
    category: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"{self.title}. {self.description}" if self.description else self.title

    def to_json(self, attributes: dict[str, str] | None = None) -> dict:
        record = {"sku": self.sku, "title": self.title, "description": self.description,
                  "category": list(self.category), "attributes": dict(attributes or self.attributes)}
        record.update(self.extra)
        return record


class Catalog:
    """An ordered, SKU-unique collection of products. Never modified by kgattr in place."""

    def __init__(self, products: Iterable[Product], source: str = "<memory>"):
        self.products = list(products)
        self.source = source
        self.index = {}
        for i, p in enumerate(self.products):
            if p.sku in self.index:
                raise CatalogError(f"{source}: product {i + 1}: field 'sku': duplicate SKU {p.sku!r}")
            self.index[p.sku] = i

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    def __getitem__(self, sku: str) -> Product:
        return self.products[self.index[sku]]

    def __contains__(self, sku: str) -> bool:
        return sku in self.index


def _check_product(record: object, where: str) -> Product:
    if not isinstance(record, dict):
        raise CatalogError(f"{where}: expected a JSON object, got {type(record).__name__}")
    sku = record.get("sku")
    if sku is None or sku == "":
        raise CatalogError(f"{where}: field 'sku': missing")
    if not isinstance(sku, str):
        raise CatalogError(f"{where}: field 'sku': expected a string, got {json.dumps(sku)}")
    for name in ("title", "description"):
        value = record.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise CatalogError(f"{where}: field {name!r}: expected a string, got {json.dumps(value)[:60]}")
    category = record.get("category", [])
    if isinstance(category, str):
        category = [c.strip() for c in category.split(CATEGORY_SEPARATOR.strip()) if c.strip()]
    if not isinstance(category, list) or not all(isinstance(c, str) for c in category):
        raise CatalogError(f"{where}: field 'category': expected a list of strings")
    attributes = record.get("attributes", {}) or {}
    if not isinstance(attributes, dict):
        raise CatalogError(f"{where}: field 'attributes': expected an object")
    for name, value in attributes.items():
        if not isinstance(value, str):
            raise CatalogError(f"{where}: field 'attributes.{name}': expected a string, got {json.dumps(value)[:60]}")
    extra = {k: v for k, v in record.items() if k not in CORE_FIELDS}
    return Product(sku, record.get("title") or "", record.get("description") or "", tuple(category),
                   {k: v for k, v in attributes.items() if v.strip()}, extra)


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_json_lines(path: Path) -> Iterator[tuple[str, object]]:
    """(``file:line``, parsed record) of each non-blank line of a JSON Lines file (optionally gzipped)."""
    with _open_text(path, "r") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{n}", json.loads(line)
            except json.JSONDecodeError as e:
                raise CatalogError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None


def _read_jsonl(path: Path) -> Iterator[Product]:
    for where, record in read_json_lines(path):
        yield _check_product(record, where)


def _read_wide(path: Path) -> Iterator[Product]:
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    if "sku" not in frame.columns:
        raise CatalogError(f"{path}: field 'sku': no such column")
    attribute_columns = [c for c in frame.columns if c not in CORE_FIELDS]
    # CSV line numbers: header is line 1.
    for n, row in enumerate(frame.to_dict("records"), 2):
        attributes = {}
        for c in attribute_columns:
            v = row[c]
            if v is None or (isinstance(v, float) and v != v) or v == "":
                continue
            attributes[c] = v
        record = {k: row[k] for k in ("sku", "title", "description", "category") if k in row}
        if isinstance(record.get("sku"), float) or isinstance(record.get("sku"), int):
            raise CatalogError(f"{path}:{n}: field 'sku': expected a string, got {record['sku']!r}")
        record["attributes"] = attributes
        yield _check_product(record, f"{path}:{n}")


def read_catalog(path: str | os.PathLike) -> Catalog:
    """Read a catalog (``.jsonl``, ``.jsonl.gz``, ``.csv``, ``.parquet``); errors name file, line and field."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: no such file")
    reader = _read_wide if path.suffix in (".csv", ".parquet") else _read_jsonl
    products = []
    seen: dict[str, int] = {}
    for p in reader(path):
        if p.sku in seen:
            raise CatalogError(f"{path}: product {len(products) + 1}: field 'sku': duplicate SKU {p.sku!r} "
                               f"(first at product {seen[p.sku] + 1})")
        seen[p.sku] = len(products)
        products.append(p)
    return Catalog(products, str(path))


def jsonl_writer(records: Iterable[dict], path: str | os.PathLike) -> Callable[[Path], None]:
    """A function writing ``records`` as JSON Lines to the file it is given (gzipped when ``path`` ends in .gz)."""
    def write(tmp: Path) -> None:
        opener = gzip.open(tmp, "wt", encoding="utf-8") if str(path).endswith(".gz") else open(tmp, "w", encoding="utf-8")
        with opener as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return write


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> None:
    atomic_write(path, jsonl_writer(records, path))


def catalog_writer(catalog: Catalog, path: str | os.PathLike,
                   attributes: dict[str, dict[str, str]] | None = None) -> Callable[[Path], None]:
    """A function writing ``catalog`` to the file it is given, in the format of ``path``'s suffix; ``attributes``
    overrides products' attributes by SKU."""
    attributes = attributes or {}
    records = [p.to_json(attributes.get(p.sku)) for p in catalog]
    suffix = Path(path).suffix
    if suffix not in (".csv", ".parquet"):
        return jsonl_writer(records, path)
    import pandas as pd

    rows = []
    for r in records:
        row = {k: r[k] for k in ("sku", "title", "description")}
        row["category"] = CATEGORY_SEPARATOR.join(r["category"])
        row.update(r["attributes"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    return (lambda tmp: frame.to_parquet(tmp, index=False)) if suffix == ".parquet" \
        else (lambda tmp: frame.to_csv(tmp, index=False))


def write_catalog(catalog: Catalog, path: str | os.PathLike,
                  attributes: dict[str, dict[str, str]] | None = None) -> None:
    """Write ``catalog`` to ``path`` (format from the suffix); ``attributes`` overrides products' attributes by SKU."""
    atomic_write(path, catalog_writer(catalog, path, attributes))


def content_hashes(products) -> tuple:
    """(text hashes (n,), record hashes (n,)) int64: of title, description and category; and of those plus
    the known values. A model keeps what it computed for a product while these stay the same."""
    import numpy as np

    out = np.zeros((2, len(products)), dtype=np.int64)
    for i, p in enumerate(products):
        text = json.dumps([p.title, p.description, list(p.category)])
        record = json.dumps([text, sorted(p.attributes.items())])
        for j, x in enumerate((text, record)):
            out[j, i] = int.from_bytes(hashlib.sha1(x.encode()).digest()[:8], "little") >> 1
    return out[0], out[1]

