"""Held-out evaluation: hide known cells, fit on the rest, score the hidden cells.

The tf-idf baseline is the DataWig-style reference: word n-gram tf-idf of title + description and one
linear classifier per attribute, trained on exactly the same visible cells.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict

import numpy as np

from .catalog import Catalog, Product

log = logging.getLogger(__name__)


def target_attributes(catalog: Catalog, min_count: int) -> list[str]:
    """Attributes filled at least ``min_count`` times with at least two distinct values."""
    values = defaultdict(set)
    counts = Counter()
    for p in catalog:
        for a, v in p.attributes.items():
            counts[a] += 1
            values[a].add(v)
    return sorted(a for a, c in counts.items() if c >= min_count and len(values[a]) >= 2)


def mask_cells(catalog: Catalog, *, mask_rate: float, seed: int, attributes: list[str]):
    """(visible catalog, hidden cells [(sku, attribute, value)]): each known cell of ``attributes`` hidden
    independently with probability ``mask_rate``."""
    rng = np.random.default_rng(seed)
    targets = set(attributes)
    products, hidden = [], []
    for p in catalog:
        kept = {}
        for a, v in p.attributes.items():
            if a in targets and rng.random() < mask_rate:
                hidden.append((p.sku, a, v))
            else:
                kept[a] = v
        products.append(Product(p.sku, p.title, p.description, p.category, kept, p.extra))
    return Catalog(products, catalog.source), hidden


def score(hidden, predictions: dict[tuple[str, str], str],
          confidences: dict[tuple[str, str], float] | None = None, bins: int = 15) -> dict:
    """Micro and macro (over attributes) accuracy; a missing prediction counts as wrong.

    With ``confidences``, also the expected calibration error over the predicted cells: the gap between
    confidence and accuracy, averaged over ``bins`` equal-width confidence bins weighted by their size.
    """
    per = defaultdict(lambda: [0, 0])
    covered = 0
    conf, right = [], []
    for sku, a, v in hidden:
        guess = predictions.get((sku, a))
        covered += guess is not None
        per[a][0] += guess == v
        per[a][1] += 1
        if confidences is not None and guess is not None:
            conf.append(confidences.get((sku, a), 0.0))
            right.append(guess == v)
    n = max(len(hidden), 1)
    result = {"micro": sum(c for c, _ in per.values()) / n,
              "macro": float(np.mean([c / t for c, t in per.values()])) if per else 0.0,
              "coverage": covered / n, "cells": len(hidden),
              "per_attribute": {a: {"accuracy": c / t, "cells": t} for a, (c, t) in sorted(per.items())}}
    if confidences is not None:
        conf, right = np.array(conf, dtype=float), np.array(right, dtype=float)
        which = np.minimum((conf * bins).astype(int), bins - 1)
        gaps = [abs(conf[which == b].mean() - right[which == b].mean()) * (which == b).sum()
                for b in range(bins) if (which == b).any()]
        result["ece"] = float(sum(gaps) / max(len(conf), 1))
    return result


def read_cells(path) -> list[dict]:
    """Cells of a JSON Lines file, each {"sku", "attribute", "value"[, "confidence"]}; errors name file and line."""
    from pathlib import Path

    from .catalog import read_json_lines
    from .exceptions import CatalogError

    path, cells = Path(path), []
    if not path.exists():
        raise CatalogError(f"{path}: no such file")
    for where, cell in read_json_lines(path):
        if not isinstance(cell, dict):
            raise CatalogError(f"{where}: expected a JSON object")
        for field in ("sku", "attribute", "value"):
            if not isinstance(cell.get(field), str):
                raise CatalogError(f"{where}: field {field!r} must be a string")
        if "confidence" in cell and not isinstance(cell["confidence"], (int, float)):
            raise CatalogError(f"{where}: field 'confidence' must be a number")
        cells.append(cell)
    return cells


def tfidf_baseline(train: Catalog, hidden) -> dict[tuple[str, str], str]:
    """Predictions of one LinearSVC per attribute on tf-idf word 1-2-grams of title + description."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    docs = [f"{p.title} {p.description}" for p in train]
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True).fit_transform(docs)
    row = {p.sku: i for i, p in enumerate(train)}
    wanted = defaultdict(list)
    for sku, a, _ in hidden:
        wanted[a].append(sku)
    out = {}
    for a, skus in wanted.items():
        rows = [i for i, p in enumerate(train) if a in train.products[i].attributes]
        labels = [train.products[i].attributes[a] for i in rows]
        if len(set(labels)) < 2:
            guess = labels[0] if labels else None
            out.update({(s, a): guess for s in skus})
            continue
        clf = LinearSVC(C=0.5).fit(x[rows], labels)
        for s, g in zip(skus, clf.predict(x[[row[s] for s in skus]])):
            out[(s, a)] = g
    return out


def run_benchmark(catalog: Catalog, *, mask_rate: float = 0.2, seed: int = 0, min_count: int = 1000,
                  epochs: int | None = None, methods: tuple[str, ...] = ("tfidf", "kgattr"), progress: bool = False) -> dict:
    """Both methods on the same split; returns {"split": ..., "methods": {name: score + timings}}."""
    from .completer import AttributeCompleter

    attributes = target_attributes(catalog, min_count)
    train, hidden = mask_cells(catalog, mask_rate=mask_rate, seed=seed, attributes=attributes)
    result = {"split": {"mask_rate": mask_rate, "seed": seed, "attributes": attributes, "hidden": len(hidden)},
              "methods": {}}

    if "tfidf" in methods:
        t0 = time.time()
        baseline = tfidf_baseline(train, hidden)
        result["methods"]["tfidf"] = dict(score(hidden, baseline), fit_s=time.time() - t0, predict_s=0.0)
        log.info("tfidf: %s", {k: result["methods"]["tfidf"][k] for k in ("micro", "macro")})
    if "kgattr" not in methods:
        return result
    t0 = time.time()
    completer = AttributeCompleter(seed=seed, progress=progress, **({"epochs": epochs} if epochs else {})).fit(train)
    t1 = time.time()
    predictions = {}
    for pc in completer.impute(train, evidence_floor=float("inf")):      # accuracy needs values, not evidence
        for c in pc.completions:
            if c.value is not None:
                predictions[(pc.sku, c.attribute)] = c.value
    result["methods"]["kgattr"] = dict(score(hidden, predictions), fit_s=t1 - t0, predict_s=time.time() - t1)
    return result
