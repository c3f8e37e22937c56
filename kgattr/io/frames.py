"""Completions as pandas DataFrames: a filled copy of a wide catalog frame, and one row per gap.

A wide frame is what :func:`~kgattr.io.catalog.read_catalog` reads: columns ``sku``, ``title``, ``description``,
``category`` and one per attribute, one product a row (``sku`` may be the index instead).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .catalog import Catalog, read_catalog

if TYPE_CHECKING:
    import pandas as pd

CELL_COLUMNS = ("sku", "attribute", "value", "confidence", "source", "evidence")


def as_catalog(source) -> Catalog:
    """A Catalog as it is; a DataFrame or a path read by :func:`~kgattr.io.catalog.read_catalog`."""
    return source if isinstance(source, Catalog) else read_catalog(source)


def cells_frame(result) -> "pd.DataFrame":
    """One row per gap of ``result`` (ProductCompletions), as :data:`CELL_COLUMNS`; ``value`` None where kgattr
    abstained."""
    import pandas as pd

    rows = [(pc.sku, c.attribute, c.value, c.confidence, "kgattr", c.evidence)
            for pc in result for c in pc.completions]
    return pd.DataFrame(rows, columns=list(CELL_COLUMNS)).astype({"confidence": float})


def filled_frame(frame, catalog: Catalog, result, min_confidence: float) -> "pd.DataFrame":
    """A copy of ``frame`` with each gap at least ``min_confidence`` sure filled, and for each attribute the
    columns ``<attribute>_confidence`` (1.0 for a known value, NaN for a gap left empty) and ``<attribute>_source``
    (``catalog``, ``kgattr`` or None). A filled value takes the type of its column where it can (a year of a float
    column becomes a float); else the column becomes one of objects.

    Args:
        frame: the wide DataFrame ``catalog`` was read from (row i is ``catalog.products[i]``).
        result: the ProductCompletions of ``catalog``.
    """
    import numpy as np
    import pandas as pd

    out = frame.copy(deep=True)
    completions = {pc.sku: pc.completions for pc in result}
    attributes = list(dict.fromkeys([*(a for p in catalog for a in p.attributes),
                                     *(c.attribute for pc in result for c in pc.completions)]))
    values = {a: list(out[a]) if a in out.columns else [None] * len(out) for a in attributes}
    confidence = {a: np.full(len(out), np.nan) for a in attributes}
    source = {a: [None] * len(out) for a in attributes}
    for i, product in enumerate(catalog):
        for a in product.attributes:
            confidence[a][i], source[a][i] = 1.0, "catalog"
        for c in completions.get(product.sku, ()):
            if c.value is not None and c.confidence >= min_confidence and c.attribute not in product.attributes:
                values[c.attribute][i] = c.value
                confidence[c.attribute][i], source[c.attribute][i] = c.confidence, "kgattr"
    for a in attributes:
        out[a] = _typed(values[a], out[a].dtype if a in out.columns else None, out.index)
        out[f"{a}_confidence"] = confidence[a]
        out[f"{a}_source"] = pd.Series(source[a], index=out.index, dtype=object)
    return out


def _typed(values: list, dtype, index) -> "pd.Series":
    """``values`` as a column of ``dtype`` where they convert (``"2012"`` -> 2012.0 in a float column; a gap filled
    in an integer column makes it float), else as objects."""
    import pandas as pd

    column = pd.Series(values, index=index, dtype=object)
    if dtype is None or dtype == object:
        return column
    try:
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            column = pd.to_numeric(column)
        return column.astype(dtype)
    except (ValueError, TypeError):
        return column
