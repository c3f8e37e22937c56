"""Catalogs, and reading them: JSON Lines (canonical); CSV, TSV, Parquet and pandas DataFrames in wide form
(writing them: :mod:`kgattr.io.writers`).

A product is ``{"sku", "title", "description", "category": [root, ..., leaf], "attributes": {name: value}}``.
Unknown extra fields are kept on read and written back unchanged, so a catalog round-trips.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from sys import intern
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from ..exceptions import CatalogError
from .inputs import (READ_ERRORS, SURROGATE_ESCAPE, bad_text, cell_text, decode_text, describe, encodable,
                     file_label, open_input, read_input)

CORE_FIELDS = ("sku", "title", "description", "category", "attributes")
_CORE = frozenset(CORE_FIELDS)
# Wide-form column that holds the category path, levels joined by this separator.
CATEGORY_SEPARATOR = " > "


@dataclass(slots=True)
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


# ---- reading ------------------------------------------------------------------------------------------------------
FORMATS = ("jsonl", "csv", "tsv", "parquet")
EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet"}


def _check_product(record: object, where: str) -> Product:
    """A product from a parsed record; null means missing but for ``sku``. Errors name ``where`` and the field."""
    if not isinstance(record, dict):
        raise CatalogError(f"{where}: expected a JSON object, got {describe(record)}")
    sku = record.get("sku")
    if sku is None or sku == "":
        raise CatalogError(f"{where}: field 'sku': missing")
    if not isinstance(sku, str):
        raise CatalogError(f"{where}: field 'sku': expected a string, got {describe(sku)}")
    if "\x00" in sku:
        raise CatalogError(f"{where}: field 'sku': holds a NUL character")
    for name in ("title", "description"):
        if not isinstance(record.get(name, ""), (str, type(None))):
            raise CatalogError(f"{where}: field {name!r}: expected a string, got {describe(record[name])}")
    category = record.get("category")
    if category is None:
        category = []
    elif isinstance(category, str):
        category = [c.strip() for c in category.split(CATEGORY_SEPARATOR.strip()) if c.strip()]
    if not isinstance(category, list):
        raise CatalogError(f"{where}: field 'category': expected a list of strings, got {describe(category)}")
    for i, level in enumerate(category):
        if not isinstance(level, str) or not level.strip():
            raise CatalogError(f"{where}: field 'category[{i}]': expected a category name, got "
                               f"{describe(level) if not isinstance(level, str) else 'a blank string'}")
    attributes = record.get("attributes")
    if not isinstance(attributes, (dict, type(None))):
        raise CatalogError(f"{where}: field 'attributes': expected an object, got {describe(attributes)}")
    try:                                                # the common case: every value a string, every name set
        kept = {name: value for name, value in (attributes or {}).items() if value.strip()}
        ok = all(map(str.strip, kept))
    except AttributeError:                              # a value that is not a string
        ok = False
    if not ok:
        kept = _attributes(attributes, where)
    extra = {} if record.keys() <= _CORE else {k: v for k, v in record.items() if k not in _CORE}
    # names, values and category levels repeat from product to product: one string each (a third of the memory a
    # large catalog takes)
    kept = {intern(name): intern(value) for name, value in kept.items()}
    return Product(sku, record.get("title") or "", record.get("description") or "", tuple(map(intern, category)),
                   kept, extra)


def _attributes(attributes: dict, where: str) -> dict[str, str]:
    """The non-blank values of ``attributes`` (null: missing), or the error of the first bad one."""
    kept = {}
    for name, value in attributes.items():
        if not isinstance(value, (str, type(None))):
            raise CatalogError(f"{where}: field {'attributes.' + name!r}: expected a string, got {describe(value)}")
        if value and value.strip():
            if not name.strip():
                raise CatalogError(f"{where}: field 'attributes': a value under a blank name")
            kept[name] = value
    return kept


def _json_records(stream: BinaryIO, name: str) -> Iterator[tuple[str, object]]:
    n = 0
    try:
        for n, raw in enumerate(stream, 1):
            if raw.isspace():
                continue
            where = f"{name}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                decode_text(raw, name, first_line=n)    # raises, naming the column
            if n == 1:
                line = line.removeprefix("\ufeff")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CatalogError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
            except ValueError:                          # an integer of more digits than Python converts
                raise CatalogError(f"{where}: malformed JSON (a number too long to read)") from None
            except RecursionError:
                raise CatalogError(f"{where}: malformed JSON (nested too deeply)") from None
            if SURROGATE_ESCAPE.search(line) and isinstance(record, dict):
                try:
                    field = bad_text(record)
                except RecursionError:
                    raise CatalogError(f"{where}: malformed JSON (nested too deeply)") from None
                if field is not None:
                    raise CatalogError(f"{where}: field {field!r}: not valid Unicode text (a lone surrogate)")
            yield where, record
    except READ_ERRORS as e:
        raise CatalogError(f"{name}:{n + 1}: damaged gzip data ({e})") from None


def read_json_lines(path) -> Iterator[tuple[str, object]]:
    """(``file:line``, parsed record) of each non-blank line of a JSON Lines file (gzip data read as such).

    Raises:
        CatalogError: naming the file and the line (and field, for text that could not be written back).
    """
    with open_input(path) as f:
        yield from _json_records(f, file_label(path))


def _wide_record(cells: dict) -> dict:
    """The product record of a wide-form row {column: text or None}."""
    record = {k: cells[k] for k in ("sku", "title", "description", "category") if k in cells}
    record["attributes"] = {k: v for k, v in cells.items() if k not in CORE_FIELDS}
    return record


def _check_columns(columns: list, name: str) -> None:
    seen = set()
    for i, column in enumerate(columns, 1):
        if not isinstance(column, str):
            raise CatalogError(f"{name}: column {i}: expected a name, got {describe(column)}")
        if not column.strip() or not encodable(column):
            raise CatalogError(f"{name}: column {i}: {'a blank name' if encodable(column) else 'a lone surrogate'}")
        if column in seen:
            raise CatalogError(f"{name}: column {i}: field {column!r}: a second column of that name")
        if column == "attributes":
            raise CatalogError(f"{name}: column {i}: field 'attributes': wide form has one column per attribute")
        seen.add(column)
    if "sku" not in seen:
        raise CatalogError(f"{name}: field 'sku': no such column")


def _csv_products(text: str, name: str, delimiter: str) -> Iterator[tuple[str, Product]]:
    import csv

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    header, end = None, 0
    while True:
        start = end + 1                                 # a quoted cell may span lines: name the row's first
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise CatalogError(f"{name}:{reader.line_num}: malformed {kind} ({e})") from None
        end = reader.line_num
        if row is None:
            return
        if not row:
            continue
        if header is None:
            _check_columns(row, name)
            header = row
        elif len(row) != len(header):
            raise CatalogError(f"{name}:{start}: {len(row)} fields where the header has {len(header)}")
        else:
            yield f"{name}:{start}", _check_product(_wide_record(dict(zip(header, row))), f"{name}:{start}")


def _frame_products(frame, name: str) -> Iterator[tuple[str, Product]]:
    """Products of a DataFrame in wide form; ``where`` is ``name: row N`` (N from 0, as ``iloc`` counts)."""
    if "sku" not in frame.columns and frame.index.name == "sku":
        frame = frame.reset_index()
    columns = list(frame.columns)
    _check_columns(columns, name)
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        where, cells = f"{name}: row {i}", {}
        for column, value in zip(columns, row):
            try:
                # a list column (Parquet list<string>, an array) holds a category path; elsewhere it is refused
                listed = column == "category" and (getattr(value, "ndim", 0) or isinstance(value, (list, tuple)))
                cells[column] = list(value) if listed else cell_text(value)
            except ValueError as e:
                raise CatalogError(f"{where}: field {column!r}: {e}") from None
        yield where, _check_product(_wide_record(cells), where)


def _parquet_frame(data: bytes, name: str):
    import pandas as pd

    try:
        # as objects: every cell decoded now, so that bad text in the file fails here
        return pd.read_parquet(io.BytesIO(data), dtype_backend="numpy_nullable").astype(object)
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError, ...); all mean a broken file
        why = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CatalogError(f"{name}: not a readable Parquet file ({why})") from None


def _sniff(data: bytes, name: str) -> str:
    """The format that the content of a file of an unknown extension looks like."""
    if data[:4] == b"PAR1":
        return "parquet"
    head = data[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    first = head.split(b"\n", 1)[0]
    if head[:1] == b"{":
        return "jsonl"
    if b"\t" in first:
        return "tsv"
    if b"," in first or first.strip() == b"sku":
        return "csv"
    raise CatalogError(f"{name}: cannot tell the catalog format from the name or the content; name the file "
                       f".jsonl, .csv, .tsv or .parquet, or give the format")


def read_catalog(source, *, format: str | None = None) -> Catalog:
    """Read a catalog from a file or a pandas DataFrame; any bad input raises CatalogError in one line.

    Args:
        source: a path (JSON Lines, CSV, TSV or Parquet; gzip data under any name) or a DataFrame in the wide form
            of CSV (columns ``sku``, ``title``, ``description``, ``category`` with levels joined by " > ", and one
            column per attribute; None and NaN mean missing).
        format: one of :data:`FORMATS`; None: by the extension (``.jsonl``/``.json``/``.ndjson``, ``.csv``,
            ``.tsv``, ``.parquet``, each optionally ``.gz``), else by the content.

    Returns:
        The :class:`Catalog`. Typed cells of Parquet and DataFrames read as a person writes them (2012.0 -> "2012");
        CSV and TSV cells are text and read as they stand.

    Raises:
        CatalogError: naming the file and line (``row N`` for Parquet and DataFrames) and the field.
    """
    if format is not None and format not in FORMATS:
        raise CatalogError(f"unknown catalog format {format!r} (choose from {', '.join(FORMATS)})")
    if not isinstance(source, (str, os.PathLike)):
        import pandas as pd

        if not isinstance(source, pd.DataFrame):
            raise CatalogError(f"cannot read a catalog from {describe(source)}: give a file or a pandas DataFrame")
        return _collect(_frame_products(source, "<DataFrame>"), "<DataFrame>")
    path, name = Path(source), file_label(source)
    format = format or EXTENSIONS.get(os.path.splitext(path.name.lower().removesuffix(".gz"))[1])
    if format == "jsonl":                               # streamed: the common case, and the largest files
        with open_input(path) as f:
            return _collect(((w, _check_product(r, w)) for w, r in _json_records(f, name)), name)
    data = read_input(path)
    format = format or _sniff(data, name)
    if format == "parquet":
        return _collect(_frame_products(_parquet_frame(data, name), name), name)
    if format == "jsonl":
        return _collect(((w, _check_product(r, w)) for w, r in _json_records(io.BytesIO(data), name)), name)
    return _collect(_csv_products(decode_text(data, name), name, "\t" if format == "tsv" else ","), name)


def _unique(products: Iterable[tuple[str, Product]]) -> Iterator[Product]:
    seen = {}
    for where, p in products:
        if p.sku in seen:
            raise CatalogError(f"{where}: field 'sku': duplicate SKU {p.sku!r} (first at {seen[p.sku]})")
        seen[p.sku] = where
        yield p


def _collect(products: Iterable[tuple[str, Product]], name: str) -> Catalog:
    out = list(_unique(products))
    if not out:
        raise CatalogError(f"{name}: no products")
    return Catalog(out, name)


def read_chunks(source, size: int, *, format: str | None = None) -> Iterator[Catalog]:
    """The catalog :func:`read_catalog` reads, as consecutive catalogs of up to ``size`` products each.

    A JSON Lines file is read as the chunks are taken, so only one chunk's products are in memory at a time (and
    the SKUs seen, to refuse a duplicate); other formats are read whole first. A bad product raises when its chunk
    is reached, after the chunks before it.
    """
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    if path is None or (format or EXTENSIONS.get(os.path.splitext(path.name.lower().removesuffix(".gz"))[1])) != "jsonl":
        catalog = read_catalog(source, format=format)
        for start in range(0, len(catalog), size):
            yield Catalog(catalog.products[start:start + size], catalog.source)
        return
    name, chunk, count = file_label(path), [], 0
    with open_input(path) as f:
        for count, p in enumerate(_unique((w, _check_product(r, w)) for w, r in _json_records(f, name)), 1):
            chunk.append(p)
            if len(chunk) == size:
                yield Catalog(chunk, name)
                chunk = []
    if not count:
        raise CatalogError(f"{name}: no products")
    if chunk:
        yield Catalog(chunk, name)


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


def title_key(title: str) -> str:
    """A title with case and spacing folded: the variants of one item (another colour, size, season) share it."""
    return " ".join(title.lower().split())


def drawn_titles(products, rate: float, seed: int) -> set[str]:
    """A random share ``rate`` of the products' titles (as :func:`title_key`), so that all the variants
    of a title fall on one side of a split."""
    import numpy as np

    titles = sorted({title_key(p.title) for p in products})
    drawn = np.random.default_rng(seed).random(len(titles)) < rate
    return {t for t, d in zip(titles, drawn) if d}
