"""Catalog output: JSON Lines written product by product (gzipped for a .gz path); CSV and Parquet in wide form,
from all products at once. Each ``*_writer`` returns a function of the temporary file, for
:func:`~kgattr.io.outputs.atomic_write` or a set of outputs written together."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Callable, Iterable

from .catalog import CATEGORY_SEPARATOR, Catalog
from .outputs import atomic_write


def open_jsonl(tmp: Path, path: str | os.PathLike):
    """``tmp`` opened to write JSON Lines text, gzipped when the final ``path`` ends in .gz."""
    return gzip.open(tmp, "wt", encoding="utf-8") if str(path).endswith(".gz") else open(tmp, "w", encoding="utf-8")


# json.dumps(r, ensure_ascii=False), less the encoder json.dumps builds a call when not given its defaults
_line = json.JSONEncoder(ensure_ascii=False).encode


def write_lines(f, records: Iterable[dict]) -> None:
    for r in records:
        f.write(_line(r) + "\n")


def jsonl_writer(records: Iterable[dict], path: str | os.PathLike) -> Callable[[Path], None]:
    """A function writing ``records`` as JSON Lines to the file it is given (gzipped when ``path`` ends in .gz)."""
    def write(tmp: Path) -> None:
        with open_jsonl(tmp, path) as f:
            write_lines(f, records)
    return write


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> None:
    atomic_write(path, jsonl_writer(records, path))


def streams(path: str | os.PathLike) -> bool:
    """Whether a catalog written to ``path`` is JSON Lines, written product by product (CSV and Parquet take
    their columns from all products, so they are written at the end)."""
    return Path(path).suffix not in (".csv", ".parquet")


def catalog_writer(catalog: Catalog, path: str | os.PathLike,
                   attributes: dict[str, dict[str, str]] | None = None) -> Callable[[Path], None]:
    """A function writing ``catalog`` to the file it is given, in the format of ``path``'s suffix; ``attributes``
    overrides products' attributes by SKU."""
    attributes = attributes or {}
    return records_writer([p.to_json(attributes.get(p.sku)) for p in catalog], path)


def records_writer(records: list[dict], path: str | os.PathLike) -> Callable[[Path], None]:
    """A function writing product ``records`` (as :meth:`Product.to_json` makes them) to the file it is given, in
    the format of ``path``'s suffix."""
    suffix = Path(path).suffix
    if streams(path):
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
