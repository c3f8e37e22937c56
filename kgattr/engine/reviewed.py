"""What reviewers decided in ``kgattr serve``, as training and imputing take it: values confirmed (accepted or
edited cells) become known values of their products, values refused (rejected suggestions, and the suggestion an
edit replaced) are never proposed again for that product.

The catalog file is never changed: the confirmed values are applied to the catalog in memory. A model trained with
reviews keeps its refused values in ``refused.json``, so that ``complete``, ``impute`` and the server's queue leave
them out too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.catalog import Catalog, Product

log = logging.getLogger(__name__)


@dataclass
class Reviewed:
    """The review's verdicts.

    Args:
        confirmed: {sku: {attribute: value}}, the values reviewers gave.
        refused: {sku: {(attribute, value)}}, the values they turned down.
    """
    confirmed: dict[str, dict[str, str]] = field(default_factory=dict)
    refused: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_triples(cls, confirmed, refused) -> "Reviewed":
        """From ``confirmed`` and ``refused`` lists of (sku, attribute, value)."""
        out = cls()
        for sku, attribute, value in confirmed:
            out.confirmed.setdefault(sku, {})[attribute] = value
        for sku, attribute, value in refused:
            out.refused.setdefault(sku, set()).add((attribute, value))
        return out

    @classmethod
    def read(cls, path) -> "Reviewed":
        """The latest decision on each cell of the review store ``path`` (a
        :class:`~kgattr.io.reviews.ReviewError` when it is missing or not a review store)."""
        import sqlite3

        from ..io.reviews import ReviewError, ReviewStore

        try:
            return cls.from_triples(*ReviewStore.open(path).training_labels())
        except sqlite3.Error as e:
            raise ReviewError(f"{path}: not a review store ({e})") from e

    def is_refused(self, sku: str, attribute: str, value: str) -> bool:
        """Whether reviewers turned ``value`` of ``attribute`` down for the product ``sku``."""
        return (attribute, value) in self.refused.get(sku, ())

    def triples(self) -> list[list[str]]:
        """The refused values as sorted [sku, attribute, value] lists (what ``refused.json`` holds)."""
        return sorted([sku, a, v] for sku, pairs in self.refused.items() for a, v in pairs)

    def merge(self, other: "Reviewed") -> "Reviewed":
        """Both reviews; ``other``'s confirmed value wins on a cell both hold."""
        confirmed = {s: dict(a) for s, a in self.confirmed.items()}
        for sku, attributes in other.confirmed.items():
            confirmed.setdefault(sku, {}).update(attributes)
        refused = {s: set(p) for s, p in self.refused.items()}
        for sku, pairs in other.refused.items():
            refused.setdefault(sku, set()).update(pairs)
        return Reviewed(confirmed, refused)

    def apply(self, catalog: Catalog) -> Catalog:
        """``catalog`` with the confirmed values of its products as known values (a new Catalog; a value the
        catalog already holds for that cell is kept: reviews fill gaps, as ``impute`` does)."""
        products, applied = [], 0
        for p in catalog.products:
            extra = {a: v for a, v in self.confirmed.get(p.sku, {}).items() if a not in p.attributes}
            if extra:
                applied += len(extra)
                p = Product(p.sku, p.title, p.description, p.category, {**p.attributes, **extra})
            products.append(p)
        log.info("%d reviewed values applied to %s", applied, catalog.source)
        return Catalog(products, catalog.source) if applied else catalog

    def drop_refused(self, cells: dict, skus: list[str], attributes: list[str], values: list) -> dict:
        """``cells`` (rows into products whose SKUs are ``skus``; ``values`` (M, k) value nodes best first, -1
        padding) without the candidates refused for their product: the next ones move up, -1 fills the end."""
        if not self.refused:
            return cells
        rows = [m for m, r in enumerate(cells["product"]) if skus[r] in self.refused]
        if not rows:
            return cells
        vals, logits = cells["values"].copy(), cells["logits"].copy()
        for m in rows:
            refused = self.refused[skus[cells["product"][m]]]
            attribute = attributes[cells["attribute"][m]]
            keep = [j for j, v in enumerate(vals[m]) if v < 0 or (attribute, values[v][1]) not in refused]
            if len(keep) < vals.shape[1]:
                pad = vals.shape[1] - len(keep)
                vals[m] = np.concatenate([vals[m, keep], np.full(pad, -1, vals.dtype)])
                logits[m] = np.concatenate([logits[m, keep], np.zeros(pad, logits.dtype)])
        return {**cells, "values": vals, "logits": logits}


def as_reviewed(reviewed) -> Reviewed:
    """A :class:`Reviewed` as given, or read from a review store path."""
    return reviewed if isinstance(reviewed, Reviewed) else Reviewed.read(Path(reviewed))
