"""From ranked candidates to a completion: rule checks, calibrated confidence, evidence (gathered by
:mod:`kgattr.engine.evidence`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .calibration import calibrate, python_round
from .evidence import passage
from .scoring import FIELDS


@dataclass
class Completion:
    """One gap of one product and what kgattr proposes for it (``value`` None: abstained)."""
    sku: str
    attribute: str
    value: str | None
    confidence: float
    alternatives: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    checked: list[dict] = field(default_factory=list)     # with explain: every rule checked for ``value``

    def to_json(self) -> dict:
        out = {"attribute": self.attribute, "value": self.value, "confidence": self.confidence,
               "alternatives": self.alternatives, "rejected": self.rejected, "evidence": self.evidence}
        return {**out, "checked": self.checked} if self.checked else out


@dataclass
class ProductCompletion:
    sku: str
    known: dict[str, str]
    completions: list[Completion]

    def to_json(self) -> dict:
        return {"sku": self.sku, "known": self.known, "completions": [c.to_json() for c in self.completions]}


class Decisions(NamedTuple):
    """Each cell's walk down its candidates (M cells); see :func:`decide`."""
    first: np.ndarray        # (M,) column of the chosen candidate; where none is consistent, the number of candidates
    found: np.ndarray        # (M,) bool: a consistent candidate exists
    confidence: np.ndarray   # (M,) float64: the chosen one's softmax over the consistent candidates (0.0: none)
    cell: np.ndarray         # (A,) the next consistent candidates (the alternatives), cell by cell, best first:
    column: np.ndarray       # (A,) ... their cell and column,
    rank: np.ndarray         # (A,) ... their rank among the cell's alternatives (1 = next after the chosen one),
    shown: np.ndarray        # (A,) ... and their confidences to 4 digits (float64: float32 would print noise)


def decide(names: np.ndarray, logits: np.ndarray, allowed: np.ndarray, alternatives: int = 3) -> Decisions:
    """Walk each cell's candidates best first; rule-breaking ones are passed over and the next consistent one wins.
    The candidates before it (``names[m, :first[m]]``) are the ones the rules rejected.

    Args:
        names: (M, k) candidate values, best first; None pads cells with fewer than k candidates.
        logits: (M, k) their calibrated logits.
        allowed: (M, k) bool, the rules' verdict on each candidate.
        alternatives: consistent candidates kept after the chosen one, at most.
    """
    valid = names != None                                                   # noqa: E711 (element-wise)
    keep = allowed & valid
    found = keep.any(1)
    first = np.where(found, keep.argmax(1), valid.sum(1))
    z = np.where(keep, logits, -np.inf)
    z = np.exp(z - np.where(found, z.max(1), 0.0)[:, None])
    p = z / np.maximum(z.sum(1, keepdims=True), 1e-30)
    rank = np.cumsum(keep, 1)
    cell, column = np.nonzero(keep & (rank >= 2) & (rank <= alternatives + 1))
    chosen = p[np.arange(len(names)), np.minimum(first, names.shape[1] - 1)] if names.size else np.zeros(len(names))
    return Decisions(first, found, np.where(found, chosen.astype(np.float64), 0.0), cell, column,
                     rank[cell, column] - 1, np.round(p[cell, column].astype(np.float64), 4))


def completions(model, products, cells, neighbours: np.ndarray, evidence_floor: float = 0.0, explain: bool = False,
                reviewed=None) -> list[ProductCompletion]:
    """Decide every gap of ``products`` (row-aligned with ``cells['product']`` and ``neighbours`` (n, k)) for a
    fitted :class:`~kgattr.completer.AttributeCompleter` ``model``.

    Evidence is gathered for completions at least ``evidence_floor`` confident (the others get ``{}``);
    ``explain`` lists every rule checked for each chosen value. Values reviewers refused (the model's and
    ``reviewed``'s) are no candidates.
    """
    refused = model.reviewed_.merge(reviewed) if reviewed is not None else model.reviewed_
    cells = refused.drop_refused(cells, [p.sku for p in products], model.attributes_, model.graph_.values)
    out = {p.sku: ProductCompletion(p.sku, dict(p.attributes), []) for p in products}
    listed = model.listed_near(products, by_category=False)[:, 0] if evidence_floor <= 1 and len(cells["product"]) else None
    vals = cells["values"]
    names = np.array([v for _, v in model.graph_.values] + [None], dtype=object)[vals]    # -1 pads -> None
    rows = cells["product"].tolist()                        # (M,) product of each cell, as Python ints
    own = [tuple(p.category) for p in products]
    categories = [own[r] for r in rows]
    masks, at = {}, []
    for c in categories:
        at.append(masks.setdefault(c, len(masks)))
    masks = np.stack([model.allowed_mask(c) for c in masks]) if masks else np.zeros((0, len(model.graph_.values)), bool)
    allowed = masks[np.array(at, dtype=np.int64)[:, None], vals] if len(at) else np.zeros(vals.shape, bool)
    attributes = [model.attributes_[a] for a in cells["attribute"].tolist()]
    known = [products[r].attributes for r in rows]
    rules = model.rules_
    # implications, exclusions, sh:disjoint: the verdict depends on the product's own values too (a value the mask
    # refuses, the rules refuse with them too)
    conditional = {pair: rules.conditional(*pair) for pair in set(zip(categories, attributes))}
    for m in [m for m, pair in enumerate(zip(categories, attributes)) if conditional[pair]]:
        passed = [n for n, ok in zip(names[m].tolist(), allowed[m].tolist()) if ok and n is not None]
        free = dict(zip(passed, rules.conflict_free(categories[m], attributes[m], passed, known[m])))
        allowed[m] = [free.get(n, False) for n in names[m].tolist()]
    d = decide(names, cells["logits"], allowed)
    rejected = {m: [{"value": v, "rule": rules.check(categories[m], attributes[m], v, known[m]).rule}
                    for v in names[m, :f].tolist()] for m, f in enumerate(d.first.tolist()) if f}
    mix = np.where(d.found, names[np.arange(len(names)), np.minimum(d.first, names.shape[1] - 1)], None)  # (M,)
    # a copy from the text wins where it is more confident, not refused, and consistent with the rules
    copy, has_copy = cells["copy"], cells["copy"] != None                            # noqa: E711
    copied = np.zeros(len(rows), bool)
    for m in np.flatnonzero(has_copy & (cells["copy_confidence"] > d.confidence)).tolist():
        if refused.is_refused(products[rows[m]].sku, attributes[m], copy[m]):
            continue
        broken = rules.check(categories[m], attributes[m], copy[m], known[m])
        if broken is None:
            copied[m] = True
        elif all(r["value"] != copy[m] for r in rejected.get(m, ())):  # listed like any rejected value
            rejected[m] = rejected.get(m, []) + [{"value": copy[m], "rule": broken.rule}]
    maps = model.calibration_["map"]
    # every confidence mapped at once: each decision's as from the mix, each copy's as copied
    confidence = np.where(copied, calibrate(maps, np.where(has_copy, cells["copy_confidence"], 0.5), True),
                          np.where(d.found, calibrate(maps, d.confidence, False), d.confidence))
    value = np.where(copied, copy, mix)
    others = alternatives(names, d, copied, confidence, mix, value)
    backed = np.flatnonzero((value != None) & (confidence >= evidence_floor))          # noqa: E711
    found = dict(zip(backed.tolist(), model.evidence(products, cells["product"][backed], cells["attribute"][backed],
                                                     value[backed].tolist(), neighbours, listed)))
    spans = [cells[k].tolist() for k in ("copy_field", "copy_start", "copy_end")]      # where copies were read
    shown = python_round(confidence, 4).tolist()
    for m, (r, attr, v, conf, alts, was_copied) in enumerate(zip(rows, attributes, value.tolist(), shown, others,
                                                                 copied.tolist())):
        p, evidence = products[r], found.get(m, {})
        if was_copied and evidence:
            where, start, end = FIELDS[spans[0][m]], spans[1][m], spans[2][m]
            text = getattr(p, where)
            evidence["extracted"] = {"field": where, "start": start, "end": end, "text": text[start:end],
                                     "confidence": conf}
            evidence["text"] = passage(text, start, end)
        checked = rules.explain(categories[m], attr, v, known[m]) if explain and v is not None else []
        out[p.sku].completions.append(Completion(p.sku, attr, v, conf, alts, rejected.get(m, []), evidence, checked))
    return list(out.values())


def alternatives(names: np.ndarray, d: Decisions, copied: np.ndarray, confidence: np.ndarray, mix: np.ndarray,
                 value: np.ndarray) -> list[list[dict]]:
    """Each cell's alternatives [{value, confidence}] to the ``value`` it took (M,), with its ``confidence``, from
    the mix (``mix``: the mix's values) or ``copied`` from the text. They keep the shares of what the mix's choice
    left that the mix gave them, rescaled to what the calibrated value leaves. Behind a copy that differs from
    the mix's choice, that choice comes first and two of the mix's alternatives follow."""
    led = copied & d.found & (mix != value)                 # (M,) cells whose alternatives the mix's choice leads
    take = ~led[d.cell] | (d.rank <= 2)
    ahead = np.flatnonzero(led)
    cell = np.concatenate([ahead, d.cell[take]])
    order = np.lexsort((np.concatenate([np.zeros(len(ahead), np.int64), d.rank[take]]), cell))
    cell = cell[order]
    values = np.concatenate([mix[ahead], names[d.cell[take], d.column[take]]])[order]
    share = np.concatenate([python_round(d.confidence[ahead], 4), d.shown[take]])[order]
    left = np.where(copied, 1.0, 1.0 - d.confidence)                      # what the mix's choice left
    scale = np.divide(1.0 - confidence, left, out=np.zeros(len(left)), where=left > 0)
    rescaled = python_round(share * scale[cell], 4)
    entries = [{"value": v, "confidence": c} for v, c in zip(values.tolist(), rescaled.tolist())]
    bounds = np.searchsorted(cell, np.arange(len(value) + 1)).tolist()
    return [entries[bounds[m]:bounds[m + 1]] for m in range(len(value))]


class CategoryRules:
    """What the rules say about the products of each category, worked out once per category: the values they
    allow, and the attributes kgattr completes (modelled, seen in the category or its nearest parent that has
    products, applicable).

    Args:
        rules: the :class:`~kgattr.ontology.rules.RuleSet`.
        values: (attribute, value) of each value node.
        attributes: attribute names, by index.
        targets: the attributes modelled.
        category_attributes: {category path: attribute indices seen with it}.
    """

    def __init__(self, rules, values: list, attributes: list[str], targets: list[str], category_attributes: dict):
        self.rules, self.values, self.attributes = rules, values, attributes
        self.targets, self.category_attributes = set(targets), category_attributes
        self.allowed_: dict[tuple, np.ndarray] = {}
        self.completed_: dict[tuple, list[int]] = {}

    def allowed(self, category) -> np.ndarray:
        """(num_values,) bool: the values the rules allow for a product of ``category``."""
        category = tuple(category)
        if category not in self.allowed_:
            self.allowed_[category] = np.array([self.rules.check(category, a, v) is None for a, v in self.values])
        return self.allowed_[category]

    def gaps(self, product) -> list[int]:
        """Attribute indices kgattr would fill for ``product``: modelled, seen in its category, allowed, absent."""
        category = tuple(product.category)
        if category not in self.completed_:
            known = category
            while known not in self.category_attributes:
                known = known[:-1]
            seen = self.category_attributes[known]
            self.completed_[category] = [i for i, a in enumerate(self.attributes)
                                         if i in seen and a in self.targets and self.rules.applicable(category, a) is None]
        return [i for i in self.completed_[category] if self.attributes[i] not in product.attributes]


def precision_coverage(confidence: np.ndarray, correct: np.ndarray, total: int) -> tuple[np.ndarray, ...]:
    """(thresholds, coverage, precision), best first: filling every predicted cell at least that confident.

    Coverage counts against ``total`` hidden cells, so cells a method leaves empty are never covered.
    """
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order])
    # only the last of tied confidences is a threshold one can choose
    last = np.r_[conf[1:] != conf[:-1], True] if len(conf) else np.zeros(0, bool)
    filled = np.arange(1, len(conf) + 1)
    return conf[last], filled[last] / max(total, 1), hits[last] / filled[last]


def lowest_threshold(thresholds: np.ndarray, precision: np.ndarray, target: float) -> float | None:
    """The lowest of ``thresholds`` (best first, from :func:`precision_coverage`) whose ``precision`` is at
    least ``target``; None when none is."""
    ok = np.flatnonzero(precision >= target)
    return float(thresholds[ok[-1]]) if len(ok) else None


def precision_thresholds(attribute: np.ndarray, confidence: np.ndarray, correct: np.ndarray, names: list[str],
                         precision: float, min_cells: int = 50) -> dict[str, float | None]:
    """Per attribute ``names[i]``: the lowest confidence threshold at which held-out cells (each of
    ``attribute`` index, ``confidence``, ``correct``) were at least ``precision`` precise; None when no
    threshold is. Attributes with fewer than ``min_cells`` cells take the threshold of all cells together."""
    def lowest(sel: np.ndarray) -> float | None:
        t, _, p = precision_coverage(confidence[sel], correct[sel], int(sel.sum()))
        return lowest_threshold(t, p, precision)

    pooled = lowest(np.ones(len(attribute), bool))
    counts = np.bincount(attribute, minlength=len(names))
    return {a: lowest(attribute == i) if counts[i] >= min_cells else pooled for i, a in enumerate(names)}
