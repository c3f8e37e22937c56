"""What backs a completion: products near it that hold a value of its attribute, the values it co-occurs with,
the passage of the product's own text that states it."""
from __future__ import annotations

import re
import string
from functools import lru_cache

import numpy as np


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
        # value node -> {value node co-occurring with it: (PMI, PMI as shown)}, positive PMI only
        self.pmi = {}
        for (node, target), w in pmi.items():
            if w > 0:
                self.pmi.setdefault(target, {})[node] = (w, round(w, 3))
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
        known, texts = {}, {}              # product row -> [(value node, (attribute, value))] it holds; -> its texts
        out = []
        for i, (r, attribute, value) in enumerate(zip(rows.tolist(), attributes.tolist(), values)):
            if r not in known:
                product = products[r]
                known[r] = [(self.vindex.get(item), item) for item in product.attributes.items()]
                texts[r] = [(product.title, folded(product.title)), (product.description, folded(product.description))]
            pmi = self.pmi.get(self.vindex.get((self.attributes[attribute], value)), {})
            pairs = [(*pmi[node], item) for node, item in known[r] if node in pmi]
            pairs.sort(key=lambda x: -x[0])
            graph = [{"attribute": a, "value": v, "pmi": shown} for _, shown, (a, v) in pairs[:3]]
            out.append({"similar_skus": similar[i], "listed_near": near[i], "graph": graph,
                        "text": stated(value, texts[r])})
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
        # one {sku, value} per (product, value node), shared by the cells that show it
        num_values = len(self.graph.values)
        pairs, at = np.unique(rows[cell, col].astype(np.int64) * num_values + held[cell, col], return_inverse=True)
        shown = [{"sku": self.graph.skus[k // num_values], "value": self.graph.values[k % num_values][1]}
                 for k in pairs.tolist()]
        found = list(map(shown.__getitem__, at.tolist()))
        return [found[bounds[m]:bounds[m + 1]] for m in range(len(rows))]


@lru_cache(maxsize=4096)
def _verbatim(value: str) -> re.Pattern:
    return re.compile(r"(?<![\w])" + re.escape(value) + r"(?![\w])", re.IGNORECASE)


_WORD = frozenset(string.ascii_lowercase + string.digits + "_")      # \w among lower-case ASCII characters


def folded(text: str) -> str | None:
    """``text`` in lower case where it is ASCII, else None. In ASCII text an ASCII value is found without the
    regex: case folding and word characters are then ASCII's."""
    return text.lower() if text.isascii() else None


def stated_at(value: str, text: str, lower: str | None) -> tuple[int, int] | None:
    """(start, end) of the first place where ``text`` states ``value`` verbatim: in any case, with no word
    character either side (``lower``: :func:`folded` ``text``); None where it does not."""
    if lower is None or not value.isascii():
        m = _verbatim(value).search(text)
        return m.span() if m else None
    value, n = value.lower(), len(value)
    at = lower.find(value)
    while at >= 0:
        if not (at and lower[at - 1] in _WORD) and not (at + n < len(lower) and lower[at + n] in _WORD):
            return at, at + n
        at = lower.find(value, at + 1)
    return None


def stated(value: str, texts: list[tuple[str, str | None]], width: int = 40) -> str | None:
    """The passage of the first of ``texts`` ((text, :func:`folded` text) pairs) that states ``value``
    verbatim, if any."""
    for text, lower in texts:
        span = stated_at(value, text, lower)
        if span:
            return passage(text, *span, width)
    return None


def text_evidence(value: str, title: str, description: str, width: int = 40) -> str | None:
    """The passage of the product's own text that states ``value`` verbatim, if any."""
    return stated(value, [(title, folded(title)), (description, folded(description))], width)


def passage(text: str, start: int, end: int, width: int = 40) -> str:
    """``text[start:end]`` with up to ``width`` characters either side, on one line."""
    start, end = max(0, start - width), min(len(text), end + width)
    return ("…" if start else "") + text[start:end].replace("\n", " ") + ("…" if end < len(text) else "")
