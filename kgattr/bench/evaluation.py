"""Held-out evaluation: hide known cells (and whole products), then score any method's predictions of them.

Every method, kgattr's own and outside tools', goes through :func:`score`, so figures are comparable.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..engine.completion import lowest_threshold, precision_coverage
from ..io.catalog import Catalog, Product, drawn_titles, title_key

PRECISIONS = (0.90, 0.95, 0.99)


# An attribute is no target when one value fills at least this share of its cells, or when at least this
# share of its values copy the title or description or name the product's category (listing metadata).
CONSTANT_SHARE = 0.99
COPY_SHARE = 0.5


def draw(catalog: Catalog, limit: int | None, seed: int) -> Catalog:
    """A random sample of ``limit`` products in catalog order (the whole catalog when it has no more)."""
    if limit is None or limit >= len(catalog):
        return catalog
    keep = np.sort(np.random.default_rng(seed + 2).choice(len(catalog), limit, replace=False))
    return Catalog([catalog.products[i] for i in keep], catalog.source)


def default_min_count(num_products: int, share: float = 0.02, floor: int = 20) -> int:
    """How often a target attribute must be filled: ``share`` of the products, at least ``floor`` times."""
    return max(floor, int(np.ceil(share * num_products)))


def target_attributes(catalog: Catalog, min_count: int | None = None) -> list[str]:
    """Attributes filled at least ``min_count`` times (default: :func:`default_min_count`) with at least two
    distinct values."""
    if min_count is None:
        min_count = default_min_count(len(catalog))
    values = defaultdict(set)
    counts = Counter()
    for p in catalog:
        for a, v in p.attributes.items():
            counts[a] += 1
            values[a].add(v)
    return sorted(a for a, c in counts.items() if c >= min_count and len(values[a]) >= 2)


def metadata_attributes(catalog: Catalog, listed=()) -> dict[str, str]:
    """Attributes that are listing metadata rather than properties to complete, each with the reason.

    Detected from the data: one value fills :data:`CONSTANT_SHARE` of the cells; or in :data:`COPY_SHARE`
    of them the value is the title or the description (or at least half of it), or names a level of the
    product's category. ``listed`` names the rest (what the data cannot show, such as order quantities).

    Returns:
        {attribute: reason}, in attribute order.
    """
    from ..text.lexical import fold

    values: dict[str, Counter] = defaultdict(Counter)
    copies: dict[str, Counter] = defaultdict(Counter)
    for p in catalog:
        title, description = fold(p.title).strip(), f" {fold(p.description).strip()} "
        levels = [fold(c).strip() for c in p.category if c.strip()]
        for a, v in p.attributes.items():
            values[a][v] += 1
            value = fold(v).strip()
            if not value:
                continue
            copies[a]["title"] += value == title
            copies[a]["description"] += f" {value} " in description and 2 * len(value) >= len(description) - 2
            copies[a]["category"] += any(c in value and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", value)
                                         for c in levels)
    out = {}
    for a in sorted(values):
        n = sum(values[a].values())
        value, top = values[a].most_common(1)[0]
        copied = max(copies[a], key=copies[a].get, default=None)
        if a in listed:
            out[a] = "listed as metadata"
        elif top >= CONSTANT_SHARE * n:
            out[a] = f"(almost) constant: {value!r} in {top / n:.1%} of {n} cells"
        elif copied and copies[a][copied] >= COPY_SHARE * n:
            verb = {"title": "copies the title", "description": "copies the description",
                    "category": "names the product's category"}[copied]
            out[a] = f"{verb} in {copies[a][copied] / n:.1%} of {n} cells"
    return out


@dataclass
class Split:
    """A catalog with cells hidden: ``train`` keeps the rest; ``hidden`` is [(sku, attribute, value)]."""
    train: Catalog
    hidden: list[tuple[str, str, str]]
    cold: set[str] = field(default_factory=set)     # products held out whole: text and category only

    def truth(self) -> list[dict]:
        category = {p.sku: list(p.category) for p in self.train}
        return [{"sku": s, "attribute": a, "value": v, "category": category[s], "cold": s in self.cold}
                for s, a, v in self.hidden]


def split_catalog(catalog: Catalog, *, mask_rate: float, seed: int, attributes: list[str], cold_rate: float = 0.0,
                  limit: int | None = None) -> Split:
    """Hide each known cell of ``attributes`` with probability ``mask_rate``.

    Args:
        cold_rate: share of titles whose products lose every known value (all variants of a title fall on
            one side, so a cold product's twin never gives its values away); their target cells are hidden.
        limit: keep a random sample of this many products first (quick runs).
    """
    products = draw(catalog, limit, seed).products
    cold_titles = drawn_titles(products, cold_rate, seed + 1)
    rng = np.random.default_rng(seed)
    targets = set(attributes)
    out, hidden, cold = [], [], set()
    for p in products:
        is_cold = title_key(p.title) in cold_titles
        if is_cold:
            cold.add(p.sku)
        kept = {}
        for a, v in p.attributes.items():
            if is_cold:
                if a in targets:
                    hidden.append((p.sku, a, v))
            elif a in targets and rng.random() < mask_rate:
                hidden.append((p.sku, a, v))
            else:
                kept[a] = v
        out.append(Product(p.sku, p.title, p.description, p.category, kept, p.extra))
    return Split(Catalog(out, catalog.source), hidden, cold)


def twin_values(split: Split) -> dict[tuple[str, str], str]:
    """Hidden cells of products whose title and description other products share and show the attribute: the
    value most of those twins show (ties: the first in catalog order).

    Twins are mostly variants of one item (another colour, season, year). Where their value is not the hidden
    one, the labels differ where the text does not, and the text alone cannot tell which is meant.
    """
    key = {p.sku: (title_key(p.title), title_key(p.description)) for p in split.train}
    twins = defaultdict(list)
    for p in split.train:
        twins[key[p.sku]].append(p)
    out = {}
    for sku, a, _ in split.hidden:
        votes = Counter(q.attributes[a] for q in twins[key[sku]] if q.sku != sku and a in q.attributes)
        if votes:
            out[(sku, a)] = votes.most_common(1)[0][0]
    return out


def is_validation(sku: str) -> bool:
    """Half of the products, fixed by a hash of the SKU: where confidence thresholds are chosen."""
    return hashlib.sha1(sku.encode()).digest()[0] % 2 == 0


def coverage_at_precision(cells: list[tuple[str, bool, bool, float]], precisions=PRECISIONS) -> dict:
    """Per target precision: the threshold chosen on validation products and what it gives on the others.

    ``cells`` are (sku, predicted, correct, confidence), one per hidden cell.
    """
    validation = np.array([is_validation(c[0]) for c in cells], bool)
    predicted = np.array([c[1] for c in cells], bool)
    correct = np.array([c[2] for c in cells], bool)
    confidence = np.array([c[3] for c in cells], float)

    def part(mask):
        sel = mask & predicted
        return confidence[sel], correct[sel], int(mask.sum())

    thresholds, _, precision = precision_coverage(*part(validation))
    conf, right, total = part(~validation)
    out = {}
    for p in precisions:
        t = lowest_threshold(thresholds, precision, p)
        filled = conf >= t if t is not None else np.zeros(len(conf), bool)
        out[f"{p:.2f}"] = {"threshold": t, "coverage": float(filled.sum() / max(total, 1)),
                           "precision": float(right[filled].mean()) if filled.any() else None}
    return out


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[np.ndarray, ...]:
    """(mean confidence, accuracy, cells) of each non-empty equal-width confidence bin."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    return (np.array([confidence[which == b].mean() for b in used]),
            np.array([correct[which == b].mean() for b in used]), np.array([(which == b).sum() for b in used]))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins weighted by size."""
    conf, accuracy, cells = reliability(confidence, correct, bins)
    return float((np.abs(conf - accuracy) * cells).sum() / max(len(confidence), 1))


def score(hidden, predictions: dict[tuple[str, str], str], confidences: dict[tuple[str, str], float] | None = None,
          *, cold: set[str] = frozenset(), rules=None, categories: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Score predictions of ``hidden`` cells [(sku, attribute, value)]; a missing prediction counts as wrong.

    Returns micro and macro (over attributes) accuracy, per-attribute accuracy and coverage; with
    ``confidences``, the expected calibration error of the predicted cells and the coverage at precision
    0.90 / 0.95 / 0.99 (thresholds chosen on validation products, see :func:`is_validation`); with
    ``rules`` (a :class:`~kgattr.ontology.rules.RuleSet`) and the products' ``categories``, the share of predictions
    that break a rule; with ``cold`` SKUs among the hidden, the same figures for those products alone.
    """
    per = defaultdict(lambda: [0, 0])
    covered, broken = 0, 0
    cells = []
    for sku, a, v in hidden:
        guess = predictions.get((sku, a))
        covered += guess is not None
        per[a][0] += guess == v
        per[a][1] += 1
        if confidences is not None:
            cells.append((sku, guess is not None, guess == v, confidences.get((sku, a), 0.0)))
        if rules is not None and guess is not None and rules.check(tuple(categories[sku]), a, guess) is not None:
            broken += 1
    n = max(len(hidden), 1)
    result = {"micro": sum(c for c, _ in per.values()) / n,
              "macro": float(np.mean([c / t for c, t in per.values()])) if per else 0.0,
              "coverage": covered / n, "cells": len(hidden),
              "per_attribute": {a: {"accuracy": c / t, "cells": t} for a, (c, t) in sorted(per.items())}}
    if confidences is not None:
        conf = np.array([c[3] for c in cells if c[1]], dtype=float)
        right = np.array([c[2] for c in cells if c[1]], dtype=float)
        result["ece"] = expected_calibration_error(conf, right)
        result["coverage_at_precision"] = coverage_at_precision(cells)
    if rules is not None:
        result["rule_breaking"] = broken / max(covered, 1)
    cold_cells = [c for c in hidden if c[0] in cold]
    if cold_cells:
        result["cold"] = score(cold_cells, predictions, confidences, rules=rules, categories=categories)
        result["cold"].pop("per_attribute")
    return result


def read_cells(path) -> list[dict]:
    """Cells of a JSON Lines file, each {"sku", "attribute", "value"[, "confidence"]}; errors name file and line.

    Other fields (a truth file's "category" and "cold") are kept as they are.
    """
    from pathlib import Path

    from ..exceptions import CatalogError
    from ..io.catalog import read_json_lines

    path, cells = Path(path), []
    if not path.exists():
        raise CatalogError(f"{path}: no such file")
    for where, cell in read_json_lines(path):
        if not isinstance(cell, dict):
            raise CatalogError(f"{where}: expected a JSON object")
        for name in ("sku", "attribute", "value"):
            if not isinstance(cell.get(name), str):
                raise CatalogError(f"{where}: field {name!r} must be a string")
        if "confidence" in cell and not isinstance(cell["confidence"], (int, float)):
            raise CatalogError(f"{where}: field 'confidence' must be a number")
        cells.append(cell)
    return cells
