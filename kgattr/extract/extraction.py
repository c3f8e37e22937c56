"""Attribute values read out of a product's own text.

Distant supervision tags, in each product's title and description, the spans where its known values
occur (one BIO tag sequence per attribute); a BERT encoder with one 3-way tag head per attribute is
fine-tuned on them. Extracted surface forms are mapped to the catalog's values through :func:`~kgattr.text.lexical.fold`;
a form that matches no known value is kept as a new-value suggestion.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io.catalog import drawn_titles, title_key
from ..text.lexical import ValueMatcher, fold, whole_word

FIELDS = ("title", "description")
# config.json's kind of a saved token tagger and of a saved combined extractor
TAGGER_KIND, COMBINED_KIND = "kgattr-extractor", "kgattr-combined-extractor"
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


def saved_kind(path) -> str | None:
    """The ``kind`` in the config.json of the folder ``path`` (None: no readable one)."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_target(path: Path) -> None:
    """Refuse to save an extractor to ``path`` unless it is absent, an empty folder or a saved extractor, which a
    save replaces whole (so no other folder's files are lost)."""
    from ..exceptions import KgattrError

    if not path.exists():
        return
    if not path.is_dir():
        raise KgattrError(f"{path}: exists and is not a directory")
    if any(path.iterdir()) and saved_kind(path) not in (TAGGER_KIND, COMBINED_KIND):
        raise KgattrError(f"{path}: not empty and not a kgattr extractor directory; choose a new or empty directory")


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


def window_covers(offsets, spans) -> bool:
    """Whether a window (its tokens' character ``offsets``) holds part of any of ``spans``."""
    inside = [(a, b) for a, b in offsets if b > a]
    return bool(inside) and any(s < inside[-1][1] and e > inside[0][0] for s, e, _ in spans)


def decode_tags(probs: np.ndarray, offsets) -> list[tuple[int, int, int, float]]:
    """Spans of one window from its tag probabilities (tokens, attributes, 3): (attribute, start, end,
    confidence), confidence being the mean probability of "not O" over the span's tokens. An I without a
    B before it starts a span (the window may begin inside one)."""
    tags = probs.argmax(-1)                                                       # (tokens, attributes)
    out = []
    for a in np.flatnonzero((tags != O).any(0)):
        run: list[int] = []
        for t in range(len(tags)):
            tag = tags[t, a] if offsets[t][1] > offsets[t][0] else O
            if run and (tag != I):
                out.append(_span(a, run, probs, offsets))
                run = []
            if tag in (B, I):
                run.append(t)
        if run:
            out.append(_span(a, run, probs, offsets))
    return out


def _span(a: int, run: list[int], probs: np.ndarray, offsets) -> tuple[int, int, int, float]:
    return a, offsets[run[0]][0], offsets[run[-1]][1], float(1 - probs[run, a, O].mean())


def merge_spans(parts: list[list]) -> list[list]:
    """Spans of one attribute in one text, from overlapping windows: those that overlap become one."""
    parts.sort()
    merged = [parts[0]]
    for s, e, conf in parts[1:]:
        last = merged[-1]
        if s < last[1]:
            last[1], last[2] = max(last[1], e), max(last[2], conf)
        else:
            merged.append([s, e, conf])
    return merged


def word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Widened to whole words (a span that starts inside a word takes all of it), trimmed of outer punctuation."""
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def held_out(products, test_rate: float, seed: int) -> tuple[list, list]:
    """(train, test) products, whole titles on one side (variants share their title and most values)."""
    test_titles = drawn_titles(products, test_rate, seed)
    train, test = [], []
    for p in products:
        (test if title_key(p.title) in test_titles else train).append(p)
    return train, test


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
