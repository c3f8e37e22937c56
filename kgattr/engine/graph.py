"""The co-occurrence graph of a catalog: products, categories and attribute values.

Node types: ``product``, ``category`` (every level of every path), ``value`` (one node per
(attribute, value) pair, grouped so each attribute's values are contiguous). Edge types:
``product -has_value-> value``, ``product -in-> category`` (leaf), ``category -parent-> category``
and ``value -cooccurs-> value`` weighted by positive pointwise mutual information.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class SkuTable(Sequence):
    """The products' SKUs by index, found without a pass over them (a model loaded to complete one product reads
    a few pages of the table, not a million strings).

    Args:
        table: (n, width) uint8, each SKU's UTF-8 bytes padded with NUL (catalogs refuse a SKU holding one).
        by_bytes: (n,) int64 product indices in the byte order of their SKUs.
    """

    def __init__(self, table: np.ndarray, by_bytes: np.ndarray):
        self.table, self.by_bytes = table, by_bytes
        self.bytes_ = table.reshape(-1).view(f"S{table.shape[1]}")         # (n,) fixed-width strings, no copy

    @classmethod
    def of(cls, skus: list[str]) -> "SkuTable":
        encoded = np.array([s.encode() for s in skus] or [b""], dtype=bytes)[:len(skus)]
        width = max(encoded.dtype.itemsize, 1)
        table = np.frombuffer(encoded.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(len(skus), width)
        return cls(table, np.argsort(encoded, kind="stable"))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.bytes_[i].decode()

    def __iter__(self):
        return (b.decode() for b in self.bytes_)

    def rows(self, skus: list[str]) -> np.ndarray:
        """(m,) int64 index of each of ``skus``, -1 for one not in the table."""
        if not hasattr(self, "sorted_"):
            self.sorted_ = self.bytes_[self.by_bytes]                         # (n,) in byte order
        encoded = [s.encode() for s in skus]
        query = np.array(encoded or [b""], dtype=self.bytes_.dtype)[:len(skus)]  # longer ones cut, then told apart
        at = np.minimum(np.searchsorted(self.sorted_, query), max(len(self) - 1, 0))
        found = np.array([len(e) <= self.table.shape[1] for e in encoded], dtype=bool)
        if len(self):
            found &= self.sorted_[at] == query
            return np.where(found, self.by_bytes[at], -1)
        return np.full(len(skus), -1, dtype=np.int64)

    def get(self, sku: str, default=None):
        row = int(self.rows([sku])[0])
        return default if row < 0 else row

    def __contains__(self, sku) -> bool:
        return isinstance(sku, str) and self.get(sku) is not None


@dataclass
class CatalogGraph:
    skus: SkuTable
    categories: list[tuple[str, ...]]
    values: list[tuple[str, str]]          # (attribute, value), sorted
    has_value: np.ndarray                  # (2, E) int64: product index, value index
    in_category: np.ndarray                # (2, N) int64: product index, leaf category index
    parent: np.ndarray                     # (2, C') int64: category index, parent category index
    cooccurs: np.ndarray                   # (2, P) int64: value index pairs, both directions
    pmi: np.ndarray                        # (P,) float32
    listing: np.ndarray                    # (N,) int64: product indices in SKU order (see sku_key)

    @property
    def attributes(self) -> list[str]:
        return sorted({a for a, _ in self.values})

    def value_index(self) -> dict[tuple[str, str], int]:
        return {v: i for i, v in enumerate(self.values)}

    def to_hetero(self):
        """The graph as a PyG ``HeteroData`` (reverse edges added for message passing)."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["product"].num_nodes = len(self.skus)
        data["category"].num_nodes = len(self.categories)
        data["value"].num_nodes = len(self.values)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        data["product", "has_value", "value"].edge_index = t(self.has_value)
        data["value", "rev_has_value", "product"].edge_index = t(self.has_value[::-1])
        data["product", "in", "category"].edge_index = t(self.in_category)
        data["category", "rev_in", "product"].edge_index = t(self.in_category[::-1])
        data["category", "parent", "category"].edge_index = t(self.parent)
        data["value", "cooccurs", "value"].edge_index = t(self.cooccurs)
        data["value", "cooccurs", "value"].edge_weight = t(self.pmi)
        return data

    def to_networkx(self):
        """A networkx ``Graph`` with typed, labelled nodes, for GraphML export and inspection."""
        import networkx as nx

        g = nx.Graph()
        for i, sku in enumerate(self.skus):
            g.add_node(f"p:{sku}", type="product", label=sku)
        for i, path in enumerate(self.categories):
            g.add_node(f"c:{' > '.join(path)}", type="category", label=path[-1])
        for attr, value in self.values:
            g.add_node(f"v:{attr}={value}", type="value", attribute=attr, label=value)
        cname = [f"c:{' > '.join(p)}" for p in self.categories]
        vname = [f"v:{a}={v}" for a, v in self.values]
        for p, v in self.has_value.T:
            g.add_edge(f"p:{self.skus[p]}", vname[v], type="has_value")
        for p, c in self.in_category.T:
            g.add_edge(f"p:{self.skus[p]}", cname[c], type="in")
        for c, parent in self.parent.T:
            g.add_edge(cname[c], cname[parent], type="parent")
        for (u, v), w in zip(self.cooccurs.T, self.pmi):
            if u < v:
                g.add_edge(vname[u], vname[v], type="cooccurs", pmi=float(w))
        return g

    def save(self, directory, *, graphml: bool = False) -> None:
        """Write ``nodes.json`` + ``edges.safetensors`` (and ``graph.graphml``) into ``directory``."""
        from safetensors.numpy import save_file

        from ..io.outputs import atomic_write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        nodes = {"categories": [list(c) for c in self.categories], "values": [list(v) for v in self.values]}
        atomic_write(directory / "nodes.json", lambda tmp: tmp.write_text(json.dumps(nodes, ensure_ascii=False)))
        tensors = {"has_value": self.has_value, "in_category": self.in_category, "parent": self.parent,
                   "cooccurs": self.cooccurs, "pmi": self.pmi, "listing": self.listing, "sku_table": self.skus.table,
                   "sku_by_bytes": self.skus.by_bytes}
        atomic_write(directory / "edges.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        if graphml:
            import networkx as nx

            atomic_write(directory / "graph.graphml", lambda tmp: nx.write_graphml(self.to_networkx(), str(tmp)))

    @classmethod
    def load(cls, directory) -> "CatalogGraph":
        """The graph ``save`` wrote; its edges and SKUs mapped from ``edges.safetensors``, not read."""
        from .modelfiles import mapped

        directory = Path(directory)
        nodes = json.loads((directory / "nodes.json").read_text())
        t = mapped(directory / "edges.safetensors")
        return cls(SkuTable(t["sku_table"], t["sku_by_bytes"]), [tuple(c) for c in nodes["categories"]],
                   [tuple(v) for v in nodes["values"]], t["has_value"], t["in_category"], t["parent"], t["cooccurs"],
                   t["pmi"], t["listing"])


def build_graph(catalog, *, min_cooccurrence: int = 5) -> CatalogGraph:
    """Build the co-occurrence graph of ``catalog``.

    Args:
        catalog: products to read; the catalog itself is not modified.
        min_cooccurrence: value pairs seen together in fewer products get no edge (PMI is noise there).
    """
    import scipy.sparse as sp

    values = sorted({(a, v) for p in catalog for a, v in p.attributes.items()})
    vindex = {v: i for i, v in enumerate(values)}
    categories = sorted({p.category[:d] for p in catalog for d in range(1, len(p.category) + 1)})
    cindex = {c: i for i, c in enumerate(categories)}
    rows, cols = [], []
    in_cat = []
    for i, p in enumerate(catalog):
        for item in p.attributes.items():
            rows.append(i)
            cols.append(vindex[item])
        if p.category:
            in_cat.append((i, cindex[p.category]))
    has_value = np.array([rows, cols], dtype=np.int64).reshape(2, -1)
    parent = np.array([(cindex[c], cindex[c[:-1]]) for c in categories if len(c) > 1], dtype=np.int64).reshape(-1, 2).T
    n = len(catalog)
    incidence = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(values)))
    counts = (incidence.T @ incidence).tocoo()                       # (V, V) products sharing both values
    marginal = np.asarray(incidence.sum(0)).ravel()
    keep = (counts.row != counts.col) & (counts.data >= min_cooccurrence)
    u, v, c = counts.row[keep], counts.col[keep], counts.data[keep]
    pmi = np.log(c * n / (marginal[u] * marginal[v]))
    positive = pmi > 0
    skus = [p.sku for p in catalog]
    return CatalogGraph(
        skus=SkuTable.of(skus), categories=categories, values=values, has_value=has_value,
        in_category=np.array(in_cat, dtype=np.int64).reshape(-1, 2).T, parent=parent,
        cooccurs=np.stack([u[positive], v[positive]]).astype(np.int64), pmi=pmi[positive].astype(np.float32),
        listing=listing_order(skus))


def sku_key(sku: str) -> tuple:
    """Natural sort key: digit runs compare as numbers ("A9" < "A10"), the rest case-folded."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.findall(r"\d+|\D+", sku))


def listing_order(skus) -> np.ndarray:
    """(n,) int64 indices of ``skus`` in :func:`sku_key` order, ties in their own order."""
    return np.array(sorted(range(len(skus)), key=[sku_key(s) for s in skus].__getitem__), dtype=np.int64)


def category_attributes(catalog, attributes: list[str]) -> dict[tuple[str, ...], set[int]]:
    """Indices of ``attributes`` seen in each category and in each of its ancestors (the root is ())."""
    aindex = {a: i for i, a in enumerate(attributes)}
    out: dict[tuple[str, ...], set[int]] = {}
    for p in catalog:
        for depth in range(0, len(p.category) + 1):
            out.setdefault(tuple(p.category[:depth]), set()).update(aindex[a] for a in p.attributes)
    return out

