"""Attribute values read out of a product's own text.

Distant supervision tags, in each product's title and description, the spans where its known values
occur (one BIO tag sequence per attribute); a BERT encoder with one 3-way tag head per attribute is
fine-tuned on them. Extracted surface forms are mapped to the catalog's values through :func:`~kgattr.text.lexical.fold`;
a form that matches no known value is kept as a new-value suggestion.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from ..text.lexical import ValueMatcher, fold, whole_word

FIELDS = ("title", "description")
O, B, I = 0, 1, 2                                     # tag ids, per attribute


@dataclass(frozen=True)
class Span:
    """One extracted value: ``text[start:end]`` of the product's ``field`` states ``value`` of ``attribute``."""
    attribute: str
    value: str             # the catalog's spelling when ``known``; else the surface form
    known: bool
    field: str
    start: int
    end: int
    text: str
    confidence: float

    def to_json(self) -> dict:
        return asdict(self)


def tag_spans(text: str, values: dict[str, str], min_length: int = 2) -> list[tuple[int, int, str]]:
    """Distant-supervision spans: where the product's known ``values`` ({attribute: value}) occur in ``text``.

    Case, spaces and hyphens are ignored and matches stop at word boundaries. Every occurrence counts;
    longer matches win where they overlap, and two attributes may share one span when it is the same
    text. Returns (start, end, attribute) character offsets in ``text``, sorted.
    """
    folded, where = fold(text, offsets=True)
    found = []
    for attribute, value in values.items():
        key = fold(value).strip()
        if len(key) < min_length or not key[0].isalnum():
            continue
        found += [(m.start(), m.end(), attribute) for m in re.finditer(re.escape(key), folded)
                  if whole_word(folded, m.start(), m.end())]
    found.sort(key=lambda x: (x[0] - x[1], x[0], x[2]))
    kept: list[tuple[int, int, str]] = []
    for s, e, a in found:
        if all(e <= ks or s >= ke or (s, e) == (ks, ke) for ks, ke, _ in kept):
            kept.append((s, e, a))
    return sorted((where[s], where[e - 1] + 1, a) for s, e, a in kept)


def token_tags(offsets, spans, attributes: dict[str, int]) -> np.ndarray:
    """(tokens, attributes) int64 BIO tags of one window from its tokens' character ``offsets``.

    A token inside a span is B when the span starts at or within it, else I (a window that starts inside
    a long value continues it). Special and padding tokens (empty offsets) get -100, ignored by the loss.
    """
    tags = np.zeros((len(offsets), len(attributes)), dtype=np.int64)
    for t, (a, b) in enumerate(offsets):
        if b <= a:
            tags[t] = -100
            continue
        for s, e, attribute in spans:
            if a < e and b > s:
                tags[t, attributes[attribute]] = B if a <= s else I
    return tags


class Lexicon:
    """Known values per attribute, looked up by their folded form (``ADIDAS``, ``adidas`` -> ``Adidas``)."""

    def __init__(self, values: dict[str, list[str]]):
        self.values = values
        self._key = {a: {fold(v).strip(): v for v in sorted(vs, key=lambda v: (v.lower() != v, v))}
                     for a, vs in values.items()}

    @classmethod
    def from_catalog(cls, products, ontology=None) -> "Lexicon":
        """Values held in ``products``, and the ontology's allowed values where one is given."""
        values: dict[str, set] = {}
        for p in products:
            for a, v in p.attributes.items():
                values.setdefault(a, set()).add(v)
        if ontology is not None:
            for shape in ontology.shapes:
                for a, prop in shape.properties.items():
                    values.setdefault(a, set()).update(prop.values or ())
        return cls({a: sorted(vs) for a, vs in values.items()})

    def lookup(self, attribute: str, surface: str) -> str | None:
        """The known value that ``surface`` names, also with a plural "s" added or dropped; None if new."""
        keys = self._key.get(attribute, {})
        key = fold(surface).strip()
        for k in (key, key + "s", key[:-1] if key.endswith("s") else None):
            if k in keys:
                return keys[k]
        return None


class DictionaryExtractor:
    """The baseline: each attribute's known values looked up verbatim in the text (title first, then the
    description; the first, longest mention wins)."""

    def fit(self, products, attributes: list[str] | None = None, lexicon: Lexicon | None = None) -> "DictionaryExtractor":
        """Look up the values held in ``products`` (or those of ``lexicon``)."""
        lexicon = lexicon or Lexicon.from_catalog(products)
        self.attributes_ = attributes or sorted(lexicon.values)
        self.matchers_ = {a: ValueMatcher(lexicon.values.get(a, [])) for a in self.attributes_}
        return self

    def extract(self, products) -> list[list[Span]]:
        out = []
        for p in products:
            spans = []
            for a, matcher in self.matchers_.items():
                for field in FIELDS:
                    text = getattr(p, field)
                    hits = matcher.spans(text) if text else []
                    if hits:
                        s, e, columns = hits[0]
                        spans.append(Span(a, matcher.values[columns[0]], True, field, s, e, text[s:e], 1.0))
                        break
            out.append(spans)
        return out


def best_values(spans: list[Span]) -> dict[str, Span]:
    """One span per attribute: the most confident (the earliest among equals)."""
    best: dict[str, Span] = {}
    for s in spans:
        if s.attribute not in best or s.confidence > best[s.attribute].confidence:
            best[s.attribute] = s
    return best


def held_out(products, test_rate: float, seed: int) -> tuple[list, list]:
    """(train, test) products, whole titles on one side (variants share their title and most values)."""
    from ..bench.evaluation import _title_key, drawn_titles

    test_titles = drawn_titles(products, test_rate, seed)
    train, test = [], []
    for p in products:
        (test if _title_key(p.title) in test_titles else train).append(p)
    return train, test


def score_extraction(products, predicted: list[list[Span]], attributes: list[str], seen: Lexicon) -> dict:
    """Precision, recall and F1 over (sku, attribute, value) of the products' known values of ``attributes``.

    Each method gives at most one value per attribute (:func:`best_values`). A value for an attribute the
    product does not have, or a wrong one, is a false positive; values compare by :func:`~kgattr.text.lexical.fold`.
    Also: macro F1 (the mean F1 of the attributes with a known value in ``products``), recall of the values the
    text states verbatim, and how many values absent from ``seen`` (the training catalog's) were found.
    """
    wanted = set(attributes)
    per: dict[str, list[int]] = {a: [0, 0, 0] for a in attributes}           # tp, fp, fn
    stated = [0, 0]                                                             # found, total
    unseen = [0, 0, 0]                                                          # found, total, stated in text
    for p, spans in zip(products, predicted):
        best = {a: s for a, s in best_values(spans).items() if a in wanted}
        gold = {a: v for a, v in p.attributes.items() if a in wanted}
        in_text = {a for f in FIELDS for _, _, a in tag_spans(getattr(p, f), gold)}
        for a, s in best.items():
            per[a][0 if a in gold and fold(gold[a]) == fold(s.value) else 1] += 1
        for a, v in gold.items():
            hit = a in best and fold(best[a].value) == fold(v)
            per[a][2] += not hit
            if a in in_text:
                stated[0] += hit
                stated[1] += 1
            if seen.lookup(a, v) is None:
                unseen[0] += hit
                unseen[1] += 1
                unseen[2] += a in in_text
    tp, fp, fn = (sum(x[i] for x in per.values()) for i in range(3))
    macro = [_prf(*x)["f1"] for x in per.values() if x[0] + x[2]]
    return {**_prf(tp, fp, fn), "macro_f1": float(np.mean(macro)) if macro else 0.0,
            "recall_stated": stated[0] / max(1, stated[1]), "stated": stated[1],
            "unseen_found": unseen[0], "unseen": unseen[1], "unseen_stated": unseen[2],
            "attributes": {a: _prf(*x) for a, x in per.items()}}


def _prf(tp: int, fp: int, fn: int) -> dict:
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def evaluate_extraction(products, extractor, *, test_rate: float = 0.1, seed: int = 0) -> dict:
    """Score ``extractor`` (a :class:`~kgattr.extract.combined.CombinedExtractor`) and each of its members.

    Unfitted, it is trained on the products outside held-out titles and scored on the held-out products;
    fitted (applied to another catalog), on every product. Scores are over every attribute the products have,
    the ones their text never states included, reading title and description, then titles alone.
    """
    import time

    from ..io.catalog import Product

    products = list(products)
    began = time.perf_counter()
    if hasattr(extractor, "orders_"):
        train, test = [], products
    else:
        train, test = held_out(products, test_rate, seed)
        extractor.fit(train)
    fitted = time.perf_counter()
    attributes = sorted({a for p in train + test for a in p.attributes})
    titles = [Product(p.sku, p.title, "", p.category, p.attributes) for p in test]
    methods, seconds = {}, {"train": round(fitted - began, 1)}
    for suffix, part in (("", test), (" (titles only)", titles)):
        readings = extractor.readings(part)
        found = {m: [list(r.values()) for r in rs] for m, rs in readings.items()}
        found["combined"] = extractor.combine(readings)
        for name, spans in found.items():
            methods[name + suffix] = score_extraction(test, spans, attributes, extractor.lexicon_)
        seconds.setdefault("extract", round(time.perf_counter() - fitted, 1))
    return {"products": {"train": len(train), "test": len(test)}, "attributes": attributes, "seconds": seconds,
            "methods": methods}


def markdown(report: dict) -> str:
    """The evaluation as Markdown: overall figures, then per attribute with a known value among those scored."""
    methods = report["methods"]
    lines = ["| method | precision | recall | F1 | macro F1 | recall of stated values | unseen values found |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in methods.items():
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['recall_stated']:.4f} | {m['unseen_found']} of {m['unseen']} ({m['unseen_stated']} stated) |")
    lines += ["", "| attribute | " + " | ".join(f"{n} P / R / F1" for n in methods) + " |",
              "| --- | " + " | ".join("---:" for _ in methods) + " |"]
    for a in report["attributes"]:
        cells = [methods[n]["attributes"][a] for n in methods]
        if not cells[0]["tp"] + cells[0]["fn"]:                   # no known value among the products scored
            continue
        lines.append(f"| {a} | " + " | ".join(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}"
                                               for c in cells) + " |")
    return "\n".join(lines)


class ExtractedValues:
    """The spans an extractor read in a list of products that name a known value, one per (product, value):
    arrays ``row``, ``value`` (value node index), ``field`` (index into FIELDS), ``start``, ``end``,
    ``confidence``, sorted by (row, value). This is the extractor's input to completion: a score per
    candidate, and evidence."""

    KEYS = ("row", "value", "field", "start", "end", "confidence")

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    @classmethod
    def read(cls, extractor, products, value_index: dict[tuple[str, str], int]) -> "ExtractedValues":
        best: dict[tuple[int, int], Span] = {}
        for r, spans in enumerate(extractor.extract(products)):
            for s in spans:
                v = value_index.get((s.attribute, s.value)) if s.known else None
                if v is not None and ((r, v) not in best or s.confidence > best[r, v].confidence):
                    best[r, v] = s
        items = sorted(best.items())
        columns = ([r for (r, _), _ in items], [v for (_, v), _ in items],
                   [FIELDS.index(s.field) for _, s in items], [s.start for _, s in items],
                   [s.end for _, s in items])
        arrays = {k: np.array(c, dtype=np.int64) for k, c in zip(cls.KEYS, columns)}
        arrays["confidence"] = np.array([s.confidence for _, s in items], dtype=np.float32)
        return cls(arrays)

    def matrix(self, rows: int, values: int):
        """CSR (rows, values) float32: the confidence with which each product's text states each value."""
        import scipy.sparse as sp

        a = self.arrays
        return sp.csr_matrix((a["confidence"], (a["row"], a["value"])), shape=(rows, values))

    def evidence(self, row: int, value: int, product) -> dict | None:
        """The span stating ``value`` in product ``row``: field, start, end, text, confidence."""
        a = self.arrays
        lo, hi = np.searchsorted(a["row"], [row, row + 1])
        i = lo + np.searchsorted(a["value"][lo:hi], value)
        if i >= hi or a["value"][i] != value:
            return None
        field, start, end = FIELDS[a["field"][i]], int(a["start"][i]), int(a["end"][i])
        return {"field": field, "start": start, "end": end, "text": getattr(product, field)[start:end],
                "confidence": round(float(a["confidence"][i]), 4)}
