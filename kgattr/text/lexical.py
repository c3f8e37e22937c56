"""Lexical features of product texts: tf-idf n-grams, folding, values stated in a text."""
from __future__ import annotations

import re

import numpy as np


class LexicalFeatures:
    """tf-idf of lower-cased word uni- and bi-grams, title and description as separate fields.

    Each field's part of a row is L2-normalised on its own, so the few title words (which name most
    attributes) are not drowned by a long description. Weighting as scikit-learn's
    ``TfidfVectorizer(sublinear_tf=True)`` with smooth idf, kept in numpy so loading needs no scikit-learn.

    Args:
        max_features: vocabulary size cap over both fields (most frequent terms kept).
        min_df: a term must occur in this many products.
    """

    _token = re.compile(r"(?u)\b\w\w+\b")
    FIELDS = ("title", "description")

    def __init__(self, *, max_features: int = 100_000, max_title_features: int = 20_000, min_df: int = 2):
        self.max_features = max_features
        self.max_title_features = max_title_features
        self.min_df = min_df

    @classmethod
    def terms(cls, text: str, field: str) -> list[str]:
        words = cls._token.findall(text.lower())
        prefix = field[0] + ":"                      # "t:" and "d:" keep the fields' vocabularies apart
        return [prefix + w for w in words] + [f"{prefix}{a} {b}" for a, b in zip(words, words[1:])]

    def fit(self, products) -> "LexicalFeatures":
        from collections import Counter

        df: Counter = Counter()
        n = 0
        for p in products:
            for f in self.FIELDS:
                df.update(set(self.terms(getattr(p, f), f)))
            n += 1
        min_df = min(self.min_df, max(1, n // 2))
        ranked = sorted((t for t, c in df.items() if c >= min_df), key=lambda t: (-df[t], t))
        # title terms first: columns [0, title_size) are all the linear scorer reads for many-valued attributes
        title = [t for t in ranked if t.startswith("t:")][:self.max_title_features]
        rest = [t for t in ranked if t.startswith("d:")][:max(0, self.max_features - len(title))]
        kept = title + rest
        self.title_size_ = len(title)
        self.vocabulary_ = {t: i for i, t in enumerate(kept)}
        self.idf_ = np.array([np.log((1 + n) / (1 + df[t])) + 1 for t in kept], dtype=np.float32)
        return self

    def transform(self, products):
        """CSR matrix (len(products), vocabulary size) of float32; each field's part has unit norm.

        Built :data:`CHUNK` products at a time into one array per part, so that the rows' small arrays never pile
        up: at a million products the matrix alone is ~1.4 GB."""
        from collections import Counter
        from itertools import islice

        import scipy.sparse as sp

        counts_of, data, indices, parts = [], [], [], iter(products)
        while chunk := list(islice(parts, CHUNK)):
            chunk_data, chunk_indices = [], []
            for p in chunk:
                size = 0
                for f in self.FIELDS:
                    counts = Counter(i for i in map(self.vocabulary_.get, self.terms(getattr(p, f), f)) if i is not None)
                    ids = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
                    w = (1 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf_[ids]
                    norm = np.linalg.norm(w)
                    chunk_indices.append(ids)
                    chunk_data.append(w / norm if norm > 0 else w)
                    size += len(ids)
                counts_of.append(size)
            data.append(np.concatenate(chunk_data).astype(np.float32, copy=False) if chunk_data
                        else np.zeros(0, np.float32))
            indices.append(np.concatenate(chunk_indices) if chunk_indices else np.zeros(0, np.int32))
        indptr = np.concatenate([[0], np.cumsum(counts_of, dtype=np.int64)])
        index_type = np.int32 if indptr[-1] < 2 ** 31 else np.int64
        return sp.csr_matrix((joined(data, np.float32), joined(indices, index_type), indptr.astype(index_type)),
                             shape=(len(counts_of), len(self.vocabulary_)))

    @property
    def size(self) -> int:
        return len(self.vocabulary_)

    def get_state(self) -> dict:
        return {"terms": list(self.vocabulary_), "idf": self.idf_.tolist(), "title_size": self.title_size_,
                "max_features": self.max_features, "max_title_features": self.max_title_features,
                "min_df": self.min_df}

    @classmethod
    def from_state(cls, state: dict) -> "LexicalFeatures":
        self = cls(max_features=state["max_features"], max_title_features=state["max_title_features"],
                   min_df=state["min_df"])
        self.title_size_ = state["title_size"]
        self.vocabulary_ = {t: i for i, t in enumerate(state["terms"])}
        self.idf_ = np.asarray(state["idf"], dtype=np.float32)
        return self


CHUNK = 8192           # products LexicalFeatures.transform reads into one part


def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    """``parts`` concatenated as ``dtype``, each let go once copied (``parts`` ends empty): the result's pages are
    written as the parts are freed, so memory peaks near the result's size, not twice it."""
    out = np.empty(sum(len(x) for x in parts), dtype=dtype)
    at = 0
    while parts:
        part = parts.pop(0)
        out[at:at + len(part)] = part
        at += len(part)
    return out


_GAP = re.compile(r"[\s\-_]+")


def whole_word(text: str, start: int, stop: int) -> bool:
    """Whether ``text[start:stop]`` has no letter or digit directly before or after it (``text`` :func:`fold`-ed,
    so it holds no underscore)."""
    return not ((start and text[start - 1].isalnum()) or (stop < len(text) and text[stop].isalnum()))


def fold(text: str, offsets: bool = False):
    """``text`` lower-cased, with each run of spaces, hyphens and underscores made one space, so that
    "Navy-Blue", "navy  blue" and "NAVY BLUE" read alike. With ``offsets``: also, for each character of
    the result, its position in ``text`` (characters whose lower case is longer are kept as they are,
    so positions stay one to one)."""
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    if not offsets:
        return _GAP.sub(" ", low)
    parts, where, last = [], [], 0
    for m in _GAP.finditer(low):
        parts += [low[last:m.start()], " "]
        where += [*range(last, m.start()), m.start()]
        last = m.end()
    parts.append(low[last:])
    where += range(last, len(low))
    return "".join(parts), where


class ValueMatcher:
    """Which known attribute values a text states verbatim.

    Matching is on :func:`fold`-ed text (case, spaces and hyphens ignored), on word boundaries, left to
    right, longest value first at each position (so "Navy Blue" is one mention, not also "Blue") — the
    semantics of one regex alternation, but found by looking values up by the word they start with,
    which is much faster over thousands of values. Values that do not start with a letter or digit are
    never matched.

    Args:
        values: the value strings, in the order of the columns returned.
    """

    _word = re.compile(r"\w+")

    def __init__(self, values: list[str]):
        self.values = values
        columns: dict[str, list[int]] = {}
        for i, v in enumerate(values):
            columns.setdefault(fold(v).strip(), []).append(i)
        self._columns = columns
        self._by_first: dict[str, list[str]] = {}
        for key in sorted(columns, key=len, reverse=True):
            first = self._word.match(key)
            if first:
                self._by_first.setdefault(first.group(0), []).append(key)

    def _matches(self, text: str):
        """(start, stop, key) of each mention in the folded ``text``."""
        end = 0
        for m in self._word.finditer(text):
            start = m.start()
            if start < end:
                continue
            for key in self._by_first.get(m.group(0), ()):
                stop = start + len(key)
                if text.startswith(key, start) and whole_word(text, start, stop):
                    yield start, stop, key
                    end = stop
                    break

    def find(self, text: str) -> set[int]:
        """Column indices of the values stated in ``text``."""
        return {c for _, _, key in self._matches(fold(text)) for c in self._columns[key]}

    def spans(self, text: str) -> list[tuple[int, int, list[int]]]:
        """Each mention in ``text``: (start, end) character offsets in ``text`` and the columns it names."""
        folded, where = fold(text, offsets=True)
        return [(where[start], where[stop - 1] + 1, self._columns[key]) for start, stop, key in self._matches(folded)]

    def transform(self, texts: list[str]):
        """CSR (len(texts), len(values)) of 0/1: value stated in the text."""
        import scipy.sparse as sp

        rows, cols = [], []
        for r, text in enumerate(texts):
            found = sorted(self.find(text))
            rows += [r] * len(found)
            cols += found
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(self.values)))
