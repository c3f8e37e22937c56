"""What backs a completion: products near it that hold a value of its attribute, the values it co-occurs with,
the passage of the product's own text that states it."""
from __future__ import annotations

import re
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
        self.value_attribute = value_attribute
        self.looked_up, self.keys = 0, None          # see _held
        # positive PMI of (value node, value node co-occurring with it), sorted by node * num_values + co-occurring
        # node (the key): (pairs,) each; the graph keeps one edge per ordered pair, positive ones only
        node, target = graph.cooccurs
        key = target * len(graph.values) + node
        order = np.argsort(key, kind="stable")
        order = order[graph.pmi[order] > 0]
        self.pmi_keys, self.pmi = key[order], graph.pmi[order].astype(np.float64)
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
        nodes = np.array([self.vindex.get((self.attributes[a], v), -1) for a, v in zip(attributes.tolist(), values)],
                         dtype=np.int64)
        graph = self._cooccurring(products, rows, nodes, 3)
        texts = {}                                  # product row -> its texts, as :func:`stated` takes them
        out = []
        for i, (r, value) in enumerate(zip(rows.tolist(), values)):
            if r not in texts:
                product = products[r]
                texts[r] = [(product.title, folded(product.title)), (product.description, folded(product.description))]
            out.append({"similar_skus": similar[i], "listed_near": near[i], "graph": graph[i],
                        "text": stated(value, texts[r])})
        return out

    def _cooccurring(self, products, rows: np.ndarray, nodes: np.ndarray, limit: int) -> list[list[dict]]:
        """Per cell, the first ``limit`` of the values its product ``products[rows[m]]`` holds that co-occur with
        its value node ``nodes[m]`` (M,; -1: none) with positive PMI, strongest first, ties in the product's order:
        [{attribute, value, pmi}]."""
        num_values = len(self.graph.values)
        held, count = [], []               # the value nodes each product holds, in its order (-1: not a node)
        products_of, at = np.unique(rows, return_inverse=True)
        for r in products_of.tolist():
            mine = [self.vindex.get(item, -1) for item in products[r].attributes.items()]
            held += mine
            count.append(len(mine))
        held, count = np.array(held, dtype=np.int64), np.array(count, dtype=np.int64)
        # every cell against every value its product holds: (pairs,) cell, place in the product, value node
        n = count[at]
        cell = np.repeat(np.arange(len(rows)), n)
        place = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        node = held[np.repeat((np.cumsum(count) - count)[at], n) + place]
        key = nodes[cell] * num_values + node
        found = np.minimum(np.searchsorted(self.pmi_keys, key), max(len(self.pmi_keys) - 1, 0))
        hit = (nodes[cell] >= 0) & (node >= 0) & (self.pmi_keys[found] == key) if len(self.pmi_keys) else key < 0
        cell, place, node, found = cell[hit], place[hit], node[hit], found[hit]
        order = np.lexsort((place, -self.pmi[found], cell))
        cell, node, found = cell[order], node[order], found[order]
        first = np.searchsorted(cell, np.arange(len(rows) + 1))
        top = np.arange(len(cell)) - first[cell] < limit
        cell, node, found = cell[top], node[top], found[top]
        # one {attribute, value, pmi} per pair of value nodes, shared by the cells that show it
        shown = {}
        for f, v in zip(found.tolist(), node.tolist()):
            if f not in shown:
                a, value = self.graph.values[v]
                shown[f] = {"attribute": a, "value": value, "pmi": round(float(self.pmi[f]), 3)}
        entries = [shown[f] for f in found.tolist()]
        bounds = np.searchsorted(cell, np.arange(len(rows) + 1)).tolist()
        return [entries[bounds[m]:bounds[m + 1]] for m in range(len(rows))]

    BLOCK = 8192               # cells whose neighbours' values are laid out at once: (BLOCK * R * values held,)

    def _held(self, rows: np.ndarray, attributes: np.ndarray) -> np.ndarray:
        """(M, R) value node of attribute ``attributes[m]`` (M,) each of ``rows`` (M, R) holds, -1 for none.

        The graph lists each product's values together, products in order (has_value[0] ascending), so a row's
        values are found by binary search and read (E / n values a row): a model loaded to complete one product
        reads a few pages of the edges. Once more rows were looked up than there are products, the E known cells
        are sorted once by product * num_attributes + attribute (the key) and each row is one binary search."""
        product, value = self.graph.has_value
        self.looked_up += rows.size
        if self.keys is None and self.looked_up > len(self.graph.skus):
            key = product * len(self.attributes) + self.value_attribute[value]
            order = np.argsort(key, kind="stable")
            self.keys, self.held = key[order], value[order]
        if self.keys is not None:
            if not len(self.keys):
                return np.full(rows.shape, -1, dtype=np.int64)
            wanted = rows.astype(np.int64) * len(self.attributes) + attributes[:, None]
            at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
            return np.where((rows >= 0) & (self.keys[at] == wanted), self.held[at], -1)
        r = np.maximum(rows, 0).ravel()
        start = np.searchsorted(product, r, "left")
        count = np.where(rows.ravel() >= 0, np.searchsorted(product, r, "right") - start, 0)
        # every (cell, row) pair against each value its row holds: (pairs * values held,)
        pair = np.repeat(np.arange(len(r)), count)
        at = np.repeat(start - np.cumsum(count) + count, count) + np.arange(count.sum())
        found = value[at]
        hit = self.value_attribute[found] == np.repeat(attributes, rows.shape[1])[pair]
        held = np.full(len(r), -1, dtype=np.int64)
        held[pair[hit]] = found[hit]
        return held.reshape(rows.shape)

    def _holding(self, rows: np.ndarray, attributes: np.ndarray, limit: int) -> list[list[dict]]:
        """Per cell, the first ``limit`` of its ``rows`` (M, R) that hold a value of its attribute (``attributes``
        (M,), indices): [{sku, value}]."""
        held = np.concatenate([self._held(rows[s:s + self.BLOCK], attributes[s:s + self.BLOCK])
                               for s in range(0, len(rows), self.BLOCK)])
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


# the only letters the regex's case folding matches to ASCII ones (İ ı ſ K), and the only ones among them whose
# lower case is ASCII or longer than one character (İ, K), as checked over every code point
_FOLDS_TO_ASCII = frozenset("\u0130\u0131\u017f\u212a")


def folded(text: str) -> str | None:
    """``text`` in lower case, where an ASCII value is found in it by plain search (its places are ``text``'s,
    and only ASCII letters lower to ASCII ones); None for text holding a letter the regex folds to ASCII."""
    return text.lower() if text.isascii() or _FOLDS_TO_ASCII.isdisjoint(text) else None


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"                    # what \w matches


def stated_at(value: str, text: str, lower: str | None) -> tuple[int, int] | None:
    """(start, end) of the first place where ``text`` states ``value`` verbatim: in any case, with no word
    character either side (``lower``: :func:`folded` ``text``); None where it does not."""
    if lower is None or not value.isascii():
        m = _verbatim(value).search(text)
        return m.span() if m else None
    wanted, n = value.lower(), len(value)
    at = lower.find(wanted)
    while at >= 0:
        if not (at and _word(text[at - 1])) and not (at + n < len(text) and _word(text[at + n])):
            return at, at + n
        at = lower.find(wanted, at + 1)
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
