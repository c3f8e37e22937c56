"""Similar-product retrieval: FAISS over product embeddings (text fused with category), and catalog order."""
from __future__ import annotations

import bisect
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .graph import SkuTable, listing_order, sku_key


class Hits(NamedTuple):
    score: np.ndarray   # (n, k) float32, inner products, descending
    index: np.ndarray   # (n, k) int64, -1 where fewer than k were found


def product_vectors(text: np.ndarray, category: np.ndarray, num_categories: int, category_weight: float) -> np.ndarray:
    """(n, d + num_categories) float32: the text embedding beside a scaled one-hot of the leaf category.

    Inner products then read ``cos(text) + category_weight**2 * [same category]``; -1 marks an
    unknown category (no bonus).
    """
    out = np.zeros((len(text), text.shape[1] + num_categories), dtype=np.float32)
    out[:, :text.shape[1]] = text
    known = category >= 0
    out[np.flatnonzero(known), text.shape[1] + category[known]] = category_weight
    return out


def value_profile(values, seed: int, dim: int = 64) -> np.ndarray:
    """(n, dim) unit vectors of the products' known values (truncated SVD of the product x value matrix),
    for neighbours without text."""
    from sklearn.decomposition import TruncatedSVD

    dim = max(1, min(dim, min(values.shape) - 1))
    x = TruncatedSVD(dim, random_state=seed).fit_transform(values).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


EXACT_LIMIT = 100_000     # vectors up to which the search is exact: Myntra's 44,441 products take ~20 s all-vs-all
POINTS_PER_CLUSTER = 64   # k-means of the inverted file: training vectors per cluster
CHUNK = 65_536            # vectors made, added or searched at a time by fill and search_stored


class NeighbourIndex:
    """Inner-product search over product vectors: exact (``faiss.IndexFlatIP``) up to ``exact_limit`` vectors,
    approximate above (``faiss.IndexIVFFlat``).

    Exact search costs n * d per query, so finding every product's neighbours (training) grows with n**2; the
    inverted file compares a query with ``nlist`` ~ sqrt(n) cluster centres and the vectors of the ``nprobe``
    nearest clusters only. IVF rather than HNSW: it is built deterministically (k-means with a fixed seed, where
    HNSW's parallel inserts vary from run to run), adds nothing per vector beyond the vector itself (HNSW adds its
    graph links) and keeps a stored vector reconstructible, which scoring a product whose text is unchanged needs.
    Its recall@10 against exact search is what ``kgattr bench-scale`` reports.

    Args:
        index: a FAISS index (as :meth:`load` reads it).
        exact_limit: most vectors searched exactly (the choice is made by the first :meth:`add`; None:
            :data:`EXACT_LIMIT`).
    """

    def __init__(self, index=None, *, exact_limit: int | None = None):
        self.index_ = index
        self.exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit

    @property
    def approximate(self) -> bool:
        return self.index_ is not None and self.index_.__class__.__name__ != "IndexFlatIP"

    def add(self, vectors: np.ndarray) -> "NeighbourIndex":
        import faiss

        if vectors.ndim != 2:
            raise ValueError(f"'vectors' needs to be two-dimensional (got {vectors.ndim} dimensions)")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index_ is None:
            self.index_ = faiss.IndexFlatIP(vectors.shape[1]) if len(vectors) <= self.exact_limit else \
                inverted_file(vectors[training_rows(len(vectors))], len(vectors))
        self.index_.add(vectors)
        return self

    def fill(self, n: int, vectors_of, chunk: int = CHUNK) -> "NeighbourIndex":
        """Add ``n`` vectors made ``chunk`` at a time by ``vectors_of(rows)`` (rows: int64 array), so that they are
        never all in memory beside the index; the inverted file is trained on the rows :func:`training_rows` draws.
        The index is the one :meth:`add` builds from them all at once."""
        if self.index_ is None and n > self.exact_limit:
            self.index_ = inverted_file(vectors_of(training_rows(n)), n)
        for start in range(0, n, chunk):
            self.add(vectors_of(np.arange(start, min(start + chunk, n))))
        return self

    def search_stored(self, k: int, chunk: int = CHUNK, dense: int | None = None) -> Hits:
        """The ``k`` nearest other stored vectors of every stored vector: exactly, ``chunk`` queries at a time; or,
        in an inverted file, by :func:`joined_search` (``dense``: see there)."""
        if self.approximate:
            return joined_search(self.index_, k, dense=dense)
        n = self.index_.ntotal
        parts = [self.search(self.reconstruct(rows), k, exclude=rows)
                 for rows in (np.arange(s, min(s + chunk, n)) for s in range(0, n, chunk))]
        if not parts:
            return Hits(np.zeros((0, k), np.float32), np.zeros((0, k), np.int64))
        return Hits(np.concatenate([h.score for h in parts]), np.concatenate([h.index for h in parts]))

    def search(self, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> Hits:
        """The ``k`` nearest stored vectors of each query; ``exclude[i]`` (a stored id) is skipped for query i."""
        if self.index_ is None:
            raise RuntimeError("NeighbourIndex is empty, call add(...) first")
        if queries.ndim != 2:
            raise ValueError(f"'queries' needs to be two-dimensional (got {queries.ndim} dimensions)")
        extra = 0 if exclude is None else 1
        score, index = self.index_.search(np.ascontiguousarray(queries, dtype=np.float32), k + extra)
        if exclude is not None:
            drop = index == exclude[:, None]
            # keep the first k that are not excluded, in order
            order = np.argsort(drop, axis=1, kind="stable")[:, :k]
            score = np.take_along_axis(score, order, 1)
            index = np.take_along_axis(index, order, 1)
        return Hits(score.astype(np.float32), index.astype(np.int64))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), d) float32: the stored vectors ``ids``."""
        return self.index_.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def to_disk(self) -> "NeighbourIndex":
        """Move the stored vectors to a temporary file (in ``TMPDIR``), mapped from there: they leave memory (a
        million products' are 2.4 GB) and are read back a page at a time as searches touch them; :meth:`save`
        copies the file. The file is removed with this object."""
        import tempfile

        import faiss

        self.scratch_ = tempfile.TemporaryDirectory(prefix="kgattr-index-")
        file = Path(self.scratch_.name) / "neighbours.faiss"
        faiss.write_index(self.index_, str(file))
        self.index_ = faiss.read_index(str(file), faiss.IO_FLAG_MMAP)
        return self

    def save(self, path) -> None:
        import faiss

        from ..io.outputs import atomic_write

        scratch = getattr(self, "scratch_", None)
        atomic_write(path, lambda tmp: shutil.copyfile(Path(scratch.name) / "neighbours.faiss", tmp) if scratch
                     else faiss.write_index(self.index_, str(tmp)))

    @classmethod
    def load(cls, path) -> "NeighbourIndex":
        """The index saved at ``path``, its stored vectors mapped from the file (read as searches touch them);
        one that FAISS cannot read is a :class:`~kgattr.exceptions.ModelError`."""
        import faiss

        from .modelfiles import reading

        with reading(path, "not a readable FAISS index"):
            return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP))


def stored_neighbours(n: int, vectors_of, k: int, dense: int | None = None) -> tuple[NeighbourIndex, Hits]:
    """An index of ``n`` vectors made by ``vectors_of(rows)`` (:meth:`NeighbourIndex.fill`) and each one's ``k``
    nearest others (:meth:`NeighbourIndex.search_stored`); the index is then moved to disk
    (:meth:`NeighbourIndex.to_disk`), where only new products' searches and the model's saving read it."""
    index = NeighbourIndex().fill(n, vectors_of)
    hits = index.search_stored(k, dense=dense)
    return index.to_disk(), hits


def clusters(n: int) -> int:
    """Clusters of the inverted file of ``n`` vectors: sqrt(n)."""
    return max(1, int(np.sqrt(n)))


def training_rows(n: int, seed: int = 0) -> np.ndarray:
    """(m,) sorted rows of ``n`` vectors that train the inverted file's k-means: all of them, or
    :data:`POINTS_PER_CLUSTER` per cluster drawn with ``seed``."""
    m = min(n, clusters(n) * POINTS_PER_CLUSTER)
    return np.arange(n) if m == n else np.sort(np.random.default_rng(seed).choice(n, m, replace=False))


def inverted_file(sample: np.ndarray, n: int, seed: int = 0):
    """An empty ``faiss.IndexIVFFlat`` (inner product) for ``n`` vectors, trained on the vectors ``sample`` (m, d)
    (:func:`training_rows`): :func:`clusters` of them by k-means, 2 * n**0.25 searched per query (at least 16);
    stored vectors stay reconstructible (a direct map)."""
    import faiss

    nlist = clusters(n)
    quantizer = faiss.IndexFlatIP(sample.shape[1])
    index = faiss.IndexIVFFlat(quantizer, sample.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.max_points_per_centroid = seed, POINTS_PER_CLUSTER
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = min(nlist, max(16, int(2 * n ** 0.25)))
    index.make_direct_map()
    return index


JOIN_PROBES = 16          # lists each list's vectors are compared with by joined_search, their own included


def joined_search(index, k: int, probes: int = JOIN_PROBES, block: int = 1024, dense: int | None = None) -> Hits:
    """Each vector of the inverted file ``index``'s k nearest other vectors, a list at a time: the vectors of a
    list (``block`` at a time) are compared, in one matrix product, with every vector of the ``probes`` lists whose
    centres are nearest its centre (itself first).

    A search a query at a time reads the thousands of stored vectors of its lists from memory, and is bound by
    memory's speed; here a list's vectors share what they read, and the product runs at the processor's speed.
    On 200,000 drawn Myntra products (447 lists): recall@10 0.987-0.991 against exact search in 24 s, where
    faiss's own search of 16 lists a query took 373 s for 0.999. The cost grows as n * probes * n / nlist, that is
    n**1.5 * probes.

    With ``dense``, the vectors' dimensions past the first ``dense`` hold at most one non-zero each (the scaled
    one-hot of :func:`product_vectors`): a list's comparisons keep only those of them its candidates use, so of
    Myntra's 227 category columns beside 384 of text only the few categories near a list are multiplied.
    """
    import faiss

    n, d = index.ntotal, index.d
    dense = d if dense is None else dense
    invlists = index.invlists
    lists = {}

    def members(l: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """List ``l``'s ids (m,) and vectors' first ``dense`` dimensions (m, dense) (views, no copy), with each
        vector's non-zero past them: its dimension (m,) (-1: none) and value (m,)."""
        if l not in lists:
            size = invlists.list_size(l)
            ids = faiss.rev_swig_ptr(invlists.get_ids(l), size) if size else np.zeros(0, np.int64)
            codes = faiss.rev_swig_ptr(invlists.get_codes(l), size * invlists.code_size) if size else \
                np.zeros(0, np.uint8)
            vectors = codes.view(np.float32).reshape(size, d)
            tail = vectors[:, dense:]
            at = np.argmax(tail != 0, axis=1) if d > dense else np.zeros(size, np.int64)
            value = tail[np.arange(size), at] if d > dense else np.zeros(size, np.float32)
            lists[l] = (ids, vectors[:, :dense], np.where(value != 0, dense + at, -1), value)
        return lists[l]

    centres = index.quantizer.reconstruct_n(0, index.nlist)
    _, near = index.quantizer.search(centres, min(probes, index.nlist))          # (nlist, probes)
    score = np.full((n, k), -np.finfo(np.float32).max, dtype=np.float32)      # as faiss pads
    found = np.full((n, k), -1, dtype=np.int64)
    for l in range(index.nlist):
        ids = members(l)[0]
        if not len(ids):
            continue
        parts = [members(p) for p in [l] + [p for p in near[l].tolist() if p not in (l, -1)]]
        candidates, dense_part, at, value = (np.concatenate(column) for column in zip(*parts))
        # (candidates, dense + categories used): past dense, only the columns of the candidates' own non-zeros;
        # list l's vectors come first, so its rows are also the queries
        used = np.unique(at[at >= 0])
        stored = np.zeros((len(candidates), dense + len(used)), dtype=np.float32)
        stored[:, :dense] = dense_part
        some = np.flatnonzero(at >= 0)
        stored[some, dense + np.searchsorted(used, at[some])] = value[some]
        take = min(k, len(candidates) - 1)
        if take <= 0:                                                                 # no other vector to find
            continue
        for start in range(0, len(ids), block):
            sims = stored[start:min(start + block, len(ids))] @ stored.T             # (m, candidates)
            m = len(sims)
            sims[np.arange(m), start + np.arange(m)] = -np.inf                         # itself: list l comes first
            top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable"), 1)
            rows = ids[start:start + block]
            score[rows, :take] = np.take_along_axis(sims, top, 1)
            found[rows, :take] = candidates[top]
    return Hits(score, found)


class SequenceIndex:
    """Products next to each other in SKU order, optionally within groups (e.g. leaf categories).

    Shops number products as they list them, so neighbours in that order were often listed together: the
    same collection, season and year, often the same brand. On the Myntra catalog the nearest listed
    neighbours' year is right 90% of the time (92% among those of the same category). Where SKUs carry no
    such order the signal is noise, and the weights learned per attribute leave it out.

    Args:
        skus: of the stored products.
        groups: (n,) int group of each stored product (e.g. its leaf category); searches then stay within the
            query's group (None: one group).
        order: the stored products' indices in :func:`~kgattr.engine.graph.sku_key` order, as the graph keeps
            them (None: sorted here, a pass over every SKU).
    """

    def __init__(self, skus, groups=None, order: np.ndarray | None = None):
        n = len(skus)
        self.skus_ = skus if isinstance(skus, SkuTable) else SkuTable.of(skus)
        if order is None:
            order = listing_order(skus)
        self.groups_ = None if groups is None else np.asarray(groups, dtype=np.int64)
        self.rank_ = np.zeros(n, dtype=np.int64)          # per stored product: its place in its group's order
        if self.groups_ is None:
            self.order_ = {None: order} if n else {}
            self.rank_[order] = np.arange(n)
        else:
            # grouped, SKU order kept within each group: (n,) and the group's first place in it
            grouped = order[np.argsort(self.groups_[order], kind="stable")]
            first = np.r_[0, np.flatnonzero(np.diff(self.groups_[grouped])) + 1] if n else np.zeros(0, np.int64)
            self.order_ = {int(self.groups_[part[0]]): part for part in np.split(grouped, first[1:])} if n else {}
            self.rank_[grouped] = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
        # the sort keys, which only a SKU not stored needs (and which weigh most), made for a group when one is searched
        self.keys_: dict = {}

    def _place(self, sku: str, i: int, group) -> tuple[int, int]:
        """(left, right): the group's ranks either side of ``sku``, stored at index ``i`` (-1: not stored): its own
        rank and the next when stored in ``group``."""
        if i >= 0 and (self.groups_ is None or self.groups_[i] == group):
            return int(self.rank_[i]), int(self.rank_[i]) + 1
        if group not in self.keys_:
            self.keys_[group] = [sku_key(self.skus_[i]) for i in self.order_[group]]
        at = bisect.bisect_left(self.keys_[group], sku_key(sku))
        return at, at

    def search(self, skus: list[str], window: int, groups: list | None = None) -> np.ndarray:
        """(n, 2 * window) int64: the stored products of the same group up to ``window`` places before each SKU
        (nearest first), then up to ``window`` after it (nearest first); itself excluded when stored; -1 pads
        the group's ends and fills the rows of groups not stored."""
        index = np.full((len(skus), 2 * window), -1, dtype=np.int64)
        steps = np.arange(1, window + 1)
        stored = self.skus_.rows(skus).tolist()
        for i, sku in enumerate(skus):
            group = None if groups is None else groups[i]
            order = self.order_.get(group)
            if order is None:
                continue
            left, right = self._place(sku, stored[i], group)
            ranks = np.concatenate([left - steps, right + steps - 1])
            ok = (ranks >= 0) & (ranks < len(order))
            index[i, ok] = order[ranks[ok]]
        return index


class Listings:
    """Where a pool's products are listed, by SKU: among all of them, and among those of each leaf category
    (:class:`SequenceIndex` each, built on first use).

    Args:
        graph: the pool's :class:`~kgattr.engine.graph.CatalogGraph`.
    """

    def __init__(self, graph):
        self.graph = graph
        self.everywhere_ = self.by_category_ = self.category_index_ = None

    def leaf(self, products) -> np.ndarray:
        """(n,) int64 category node of each product's full category path (-1: a path the graph lacks)."""
        if self.category_index_ is None:
            self.category_index_ = {c: i for i, c in enumerate(self.graph.categories)}
        return np.array([self.category_index_.get(tuple(p.category), -1) for p in products], dtype=np.int64)

    def near(self, products, window: int, by_category: bool = True) -> np.ndarray:
        """(n, L, 2 * window) pool rows listed next to each product: among all products, then (with
        ``by_category``, L = 2) among those of its leaf category; see :meth:`SequenceIndex.search`."""
        skus = [p.sku for p in products]
        if self.everywhere_ is None:
            self.everywhere_ = SequenceIndex(self.graph.skus, order=self.graph.listing)
        listings = [self.everywhere_.search(skus, window)]
        if by_category:
            if self.by_category_ is None:
                leaf = np.full(len(self.graph.skus), -1, dtype=np.int64)
                leaf[self.graph.in_category[0]] = self.graph.in_category[1]
                self.by_category_ = SequenceIndex(self.graph.skus, leaf, self.graph.listing)
            listings.append(self.by_category_.search(skus, window, self.leaf(products).tolist()))
        return np.stack(listings, 1)
