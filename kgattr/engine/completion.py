"""From ranked candidates to a completion: rule checks, calibrated confidence, evidence."""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field

import numpy as np

from .calibration import calibrate, share_rest
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


def decide(why, names: np.ndarray, logits: np.ndarray, allowed: np.ndarray, alternatives: int = 3) -> list[tuple]:
    """Walk each cell's candidates best first; rule-breaking ones are rejected and the next consistent one wins.

    Args:
        why: ``why(m, value)``, the id of the rule that rejects ``value`` in cell ``m``.
        names: (M, k) candidate values, best first; None pads cells with fewer than k candidates.
        logits: (M, k) their calibrated logits.
        allowed: (M, k) bool, the rules' verdict on each candidate (compiled masks).

    Returns one (value or None, confidence, alternatives [{value, confidence}], rejected [{value, rule}])
    per cell. Confidence is the softmax of the logits over the consistent candidates.
    """
    valid = names != None                                                   # noqa: E711 (element-wise)
    keep = allowed & valid
    found = keep.any(1)
    first = np.where(found, keep.argmax(1), valid.sum(1))
    z = np.where(keep, logits, -np.inf)
    z = np.exp(z - np.where(found, z.max(1), 0.0)[:, None])
    p = z / np.maximum(z.sum(1, keepdims=True), 1e-30)
    rank = np.cumsum(keep, 1) - 1
    row, col = np.nonzero(keep & (rank >= 1) & (rank <= alternatives))
    bounds = np.searchsorted(row, np.arange(len(names) + 1))
    shown = np.round(p.astype(np.float64), 4).tolist()      # alternatives' confidences (float32 would print noise)
    chosen = p[np.arange(len(names)), np.minimum(first, names.shape[1] - 1)].tolist() if names.size else []
    col, bounds = col.tolist(), bounds.tolist()
    out = []
    for m, (candidates, f, ok) in enumerate(zip(names.tolist(), first.tolist(), found.tolist())):
        rejected = [{"value": v, "rule": why(m, v)} for v in candidates[:f]]
        if not ok:
            out.append((None, 0.0, [], rejected))
            continue
        alts = [{"value": candidates[j], "confidence": shown[m][j]} for j in col[bounds[m]:bounds[m + 1]]]
        out.append((candidates[f], chosen[m], alts, rejected))
    return out


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
    # implications and exclusions: the verdict depends on the product's own values (a value the mask refuses, the
    # rules refuse with them too)
    for m in [m for m, (c, a) in enumerate(zip(categories, attributes)) if rules.conditional(c, a)]:
        allowed[m] = [n is not None and ok and rules.check(categories[m], attributes[m], n, known[m]) is None
                      for n, ok in zip(names[m].tolist(), allowed[m].tolist())]
    decisions = decide(lambda m, v: rules.check(categories[m], attributes[m], v, known[m]).rule,
                       names, cells["logits"], allowed)
    copies, copy_confidence = cells["copy"].tolist(), cells["copy_confidence"].tolist()
    maps = model.calibration_["map"]
    # every confidence mapped at once: each decision's as from the mix, each copy's as copied
    calibrated = calibrate(maps, np.array([d[1] for d in decisions], dtype=np.float64), False).tolist()
    copied = calibrate(maps, np.where(cells["copy"] != None, cells["copy_confidence"], 0.5), True).tolist()  # noqa: E711
    decided = []                             # (value, confidence, alternatives, rejected, copied value) per cell
    for m, (r, attr, (value, conf, alts, rejected)) in enumerate(zip(rows, attributes, decisions)):
        copy = copies[m] if copies[m] is not None and copy_confidence[m] > conf \
            and not refused.is_refused(products[r].sku, attr, copies[m]) else None
        broken = rules.check(categories[m], attr, copy, known[m]) if copy is not None else None
        if broken is not None:               # a copy the rules reject is listed like any rejected value
            if all(r["value"] != copy for r in rejected):
                rejected = rejected + [{"value": copy, "rule": broken.rule}]
            copy = None
        if copy is not None:
            if value is not None and value != copy:
                alts = [{"value": value, "confidence": round(conf, 4)}] + alts[:2]
            value, conf = copy, copied[m]
            alts = share_rest(alts, 1.0, 1.0 - conf)
        elif value is not None:
            raw, conf = conf, calibrated[m]
            alts = share_rest(alts, 1.0 - raw, 1.0 - conf)
        decided.append((value, conf, alts, rejected, copy))
    backed = np.array([m for m, d in enumerate(decided) if d[0] is not None and d[1] >= evidence_floor], dtype=np.int64)
    found = dict(zip(backed.tolist(), model.evidence(products, cells["product"][backed], cells["attribute"][backed],
                                                     [decided[m][0] for m in backed.tolist()], neighbours, listed)))
    spans = [cells[k].tolist() for k in ("copy_field", "copy_start", "copy_end")]      # where copies were read
    for m, (r, attr, (value, conf, alts, rejected, copy)) in enumerate(zip(rows, attributes, decided)):
        p, evidence = products[r], found.get(m, {})
        if copy is not None and evidence:
            where, start, end = FIELDS[spans[0][m]], spans[1][m], spans[2][m]
            text = getattr(p, where)
            evidence["extracted"] = {"field": where, "start": start, "end": end, "text": text[start:end],
                                     "confidence": round(conf, 4)}
            evidence["text"] = passage(text, start, end)
        checked = rules.explain(categories[m], attr, value, known[m]) if explain and value is not None else []
        out[p.sku].completions.append(Completion(p.sku, attr, value, round(conf, 4), alts, rejected, evidence,
                                                 checked))
    return list(out.values())


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


class EvidenceFinder:
    """What backs a completion: similar products holding a value of its attribute, the products listed next to it
    (by SKU) holding one, the product's known values that co-occur most with it (PMI), and the passage of the
    product's own text that states it.

    Args:
        graph: the trained :class:`~kgattr.engine.graph.CatalogGraph`.
        attributes: attribute names, by index.
        value_attribute: (num_values,) attribute index of each value node.
    """

    def __init__(self, graph, attributes: list[str], value_attribute: np.ndarray):
        hv = graph.has_value
        # the values held, sorted by product * num_attributes + attribute (the key): (known cells,) each, where a
        # dense products x attributes table would grow with both
        key = hv[0].astype(np.int64) * len(attributes) + value_attribute[hv[1]]
        order = np.argsort(key, kind="stable")
        self.keys, self.held = key[order], hv[1][order]
        pmi = dict(zip(zip(graph.cooccurs[0].tolist(), graph.cooccurs[1].tolist()), graph.pmi.tolist()))
        self.pmi = {}                    # value node -> {value node co-occurring with it: PMI}, positive PMI only
        for (node, target), w in pmi.items():
            if w > 0:
                self.pmi.setdefault(target, {})[node] = w
        self.vindex = graph.value_index()
        self.graph, self.attributes = graph, attributes

    def __call__(self, products, rows: np.ndarray, attributes: np.ndarray, values: list[str], neighbours: np.ndarray,
                 listed: np.ndarray | None) -> list[dict]:
        """Evidence for each cell: ``values[i]`` of attribute index ``attributes[i]`` of ``products[rows[i]]`` (M,).
        ``neighbours``: (n, k) similar products of each product, most similar first; ``listed``: (n, 2w) products
        listed nearby, as from :meth:`~kgattr.engine.index.SequenceIndex.search`; both pool rows, -1 padded."""
        if not len(rows):
            return []
        half = listed.shape[1] // 2
        nearest_first = np.stack([listed[:, :half], listed[:, half:]], 2).reshape(len(listed), -1)  # before 1, after 1, ..
        similar = self._holding(neighbours[rows], attributes, 5)
        near = self._holding(nearest_first[rows], attributes, 4)
        known = {}                                 # product row -> [(value node, (attribute, value))] it holds
        out = []
        for i, (r, attribute, value) in enumerate(zip(rows.tolist(), attributes.tolist(), values)):
            product = products[r]
            if r not in known:
                known[r] = [(self.vindex.get(item), item) for item in product.attributes.items()]
            pmi = self.pmi.get(self.vindex.get((self.attributes[attribute], value)), {})
            pairs = [(pmi[node], item) for node, item in known[r] if node in pmi]
            pairs.sort(key=lambda x: -x[0])
            graph = [{"attribute": a, "value": v, "pmi": round(w, 3)} for w, (a, v) in pairs[:3]]
            out.append({"similar_skus": similar[i], "listed_near": near[i], "graph": graph,
                        "text": text_evidence(value, product.title, product.description)})
        return out

    def _holding(self, rows: np.ndarray, attributes: np.ndarray, limit: int) -> list[list[dict]]:
        """Per cell, the first ``limit`` of its ``rows`` (M, R) that hold a value of its attribute (``attributes``
        (M,), indices): [{sku, value}]."""
        if not len(self.keys):
            return [[] for _ in range(len(rows))]
        wanted = rows.astype(np.int64) * len(self.attributes) + attributes[:, None]
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        held = np.where((rows >= 0) & (self.keys[at] == wanted), self.held[at], -1)
        cell, col = np.nonzero((held >= 0) & (np.cumsum(held >= 0, 1) <= limit))
        bounds = np.searchsorted(cell, np.arange(len(rows) + 1)).tolist()
        found = [{"sku": self.graph.skus[j], "value": self.graph.values[v][1]}
                 for j, v in zip(rows[cell, col].tolist(), held[cell, col].tolist())]
        return [found[bounds[m]:bounds[m + 1]] for m in range(len(rows))]


@lru_cache(maxsize=4096)
def _verbatim(value: str) -> re.Pattern:
    return re.compile(r"(?<![\w])" + re.escape(value) + r"(?![\w])", re.IGNORECASE)


def text_evidence(value: str, title: str, description: str, width: int = 40) -> str | None:
    """The passage of the product's own text that states ``value`` verbatim, if any."""
    pattern = _verbatim(value)
    # ASCII text states an ASCII value only where its lower case holds the value's: a quick test before the regex
    lower = value.lower() if value.isascii() else None
    for text in (title, description):
        if lower is not None and text.isascii() and lower not in text.lower():
            continue
        m = pattern.search(text)
        if m:
            return passage(text, m.start(), m.end(), width)
    return None


def passage(text: str, start: int, end: int, width: int = 40) -> str:
    """``text[start:end]`` with up to ``width`` characters either side, on one line."""
    start, end = max(0, start - width), min(len(text), end + width)
    return ("…" if start else "") + text[start:end].replace("\n", " ") + ("…" if end < len(text) else "")


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
