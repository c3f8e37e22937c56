"""Reference methods the benchmark runs beside kgattr, on exactly the same visible cells.

Each takes the training catalog and ``wanted`` (attribute -> SKUs to predict) and returns
{(sku, attribute): (value, confidence)}. ``text`` is (n, d) BERT embeddings row-aligned with the catalog.
"""
from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import numpy as np

from ..io.catalog import Catalog

Predictions = dict[tuple[str, str], tuple[str, float]]


def _known(train: Catalog, attribute: str) -> tuple[list[int], list[str]]:
    rows = [i for i, p in enumerate(train) if attribute in p.attributes]
    return rows, [train.products[i].attributes[attribute] for i in rows]


def majority(train: Catalog, wanted: dict[str, list[str]], text=None) -> Predictions:
    """The most common value of the product's category, backing off to broader categories; confidence: its share."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for p in train:
        for depth in range(len(p.category) + 1):
            for a, v in p.attributes.items():
                counts[(tuple(p.category[:depth]), a)][v] += 1
    out = {}
    for a, skus in wanted.items():
        for s in skus:
            category = tuple(train[s].category)
            for depth in range(len(category), -1, -1):
                c = counts.get((category[:depth], a))
                if c:
                    value, k = c.most_common(1)[0]
                    out[(s, a)] = (value, k / sum(c.values()))
                    break
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def tfidf(train: Catalog, wanted: dict[str, list[str]], text=None) -> Predictions:
    """DataWig-style: one LinearSVC per attribute on tf-idf word 1-2-grams of title + description.

    Confidence: the softmax of the SVM's decision values, uncalibrated as such a baseline is used.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    docs = [f"{p.title} {p.description}" for p in train]
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True).fit_transform(docs)
    row = {p.sku: i for i, p in enumerate(train)}
    out = {}
    for a, skus in wanted.items():
        rows, labels = _known(train, a)
        if len(set(labels)) < 2:
            out.update({(s, a): (labels[0], 1.0) for s in skus} if labels else {})
            continue
        with warnings.catch_warnings():
            # many distinct values among few rows look like a regression target to scikit-learn's heuristics
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            clf = LinearSVC(C=0.5).fit(x[rows], labels)
        d = clf.decision_function(x[[row[s] for s in skus]])
        prob = _softmax(np.stack([-d, d], 1) if d.ndim == 1 else d)
        for s, k, p in zip(skus, prob.argmax(1), prob.max(1)):
            out[(s, a)] = (clf.classes_[k], float(p))
    return out


def knn(train: Catalog, wanted: dict[str, list[str]], text: np.ndarray, k: int = 10) -> Predictions:
    """Similarity-weighted vote of the ``k`` most similar products (cosine of BERT embeddings, FAISS) that
    hold the attribute; confidence: the winner's share of the vote."""
    import faiss

    x = np.ascontiguousarray(text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12), dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    row = {p.sku: i for i, p in enumerate(train)}
    asked = defaultdict(list)
    for a, skus in wanted.items():
        for s in skus:
            asked[s].append(a)
    queries = sorted(asked, key=row.get)
    depth = min(len(train), 8 * k)            # deep enough that k neighbours hold even sparse attributes
    score, hits = index.search(x[[row[s] for s in queries]], depth)
    out = {}
    for s, sims, ids in zip(queries, score, hits):
        for a in asked[s]:
            votes, n = Counter(), 0
            for sim, j in zip(sims, ids):
                p = train.products[j]
                if j < 0 or p.sku == s or a not in p.attributes:
                    continue
                votes[p.attributes[a]] += max(float(sim), 0.0) + 1e-6
                n += 1
                if n == k:
                    break
            if votes:
                value, w = votes.most_common(1)[0]
                out[(s, a)] = (value, w / sum(votes.values()))
    return out


def text_only(train: Catalog, wanted: dict[str, list[str]], text: np.ndarray, epochs: int = 30,
              seed: int = 0) -> Predictions:
    """A softmax layer per attribute over the BERT embedding, all trained together (Adam, cross-entropy)."""
    import torch
    from torch.nn import functional as F

    attributes = sorted(wanted)
    values = [sorted(set(_known(train, a)[1])) for a in attributes]
    starts = np.cumsum([0] + [len(v) for v in values])
    vindex = {(a, v): starts[i] + j for i, a in enumerate(attributes) for j, v in enumerate(values[i])}
    cells = [(r, i, vindex[(a, p.attributes[a])]) for r, p in enumerate(train)
             for i, a in enumerate(attributes) if a in p.attributes]
    if not cells:
        return {}
    rows, attr, target = (torch.tensor(c) for c in zip(*cells))                   # cells in product order
    first = torch.searchsorted(rows, torch.arange(len(train) + 1))                 # product -> its cells
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))
    head = torch.nn.Linear(x.shape[1], int(starts[-1]))
    mask = torch.zeros(len(attributes), int(starts[-1]), dtype=torch.bool)           # values of each attribute
    for i in range(len(attributes)):
        mask[i, starts[i]:starts[i + 1]] = True
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(epochs):
        # batches of products: one (B, values) product of the head per batch serves all their cells
        for batch in torch.randperm(len(train)).split(512):
            cells = torch.cat([torch.arange(first[r], first[r + 1]) for r in batch.tolist()])
            if not len(cells):
                continue
            local = torch.full((len(train),), -1, dtype=torch.long)
            local[batch] = torch.arange(len(batch))
            z = head(x[batch])[local[rows[cells]]].masked_fill(~mask[attr[cells]], float("-inf"))
            loss = F.cross_entropy(z, target[cells])
            opt.zero_grad()
            loss.backward()
            opt.step()
    row = {p.sku: i for i, p in enumerate(train)}
    out = {}
    with torch.no_grad():
        for i, a in enumerate(attributes):
            skus = wanted[a]
            prob = torch.softmax(head(x[[row[s] for s in skus]])[:, starts[i]:starts[i + 1]], 1)
            conf, k = prob.max(1)
            out.update({(s, a): (values[i][j], float(c)) for s, j, c in zip(skus, k.tolist(), conf.tolist())})
    return out


METHODS = {"majority": majority, "tfidf": tfidf, "knn": knn, "text": text_only}
NEEDS_TEXT = {"knn", "text"}
