"""The linear text scorer: one linear SVM per attribute over the tf-idf of the product's text.

It is the DataWig-style half of kgattr's stacking. The GNN reads the graph and similar products; this
scorer reads title and description terms, fitted to convergence by liblinear (a jointly trained linear
layer in the network stayed well short of it). The two are mixed per attribute on held-out cells.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from .blocks import rank_within


class LinearTextScorer:
    """Scores every value of every attribute from tf-idf features, one-vs-rest linear SVMs per attribute.

    Args:
        C: inverse regularisation strength of each SVM.
        description_weights: attributes whose (terms x values) weights number at most this many read title and
            description terms; larger ones (brands) read title terms only, which is where they are stated and
            keeps the weights small. The cut-off scales with the vocabulary: on the real catalog (100,000
            terms) it falls at 150 values, where the article type (121 values) reads the description too: 311
            errors instead of 398 of 1,989 held-out cells, SVM alone; a small catalog's few thousand terms let
            attributes with thousands of values read it.
        unseen_score: score of a value that no training cell holds.
        min_weight: weights smaller in magnitude are dropped. Half of liblinear's weights are below 1e-3
            here; dropping those under 0.01 kept held-out accuracy on the real catalog (0.9328) and left
            3.5x fewer weights, which makes scoring and the saved model that much lighter.
        max_rows: an attribute with more training cells learns from this many (see :func:`capped_rows`), which
            bounds the SVMs' time as the catalog grows: one-vs-rest liblinear costs rows x values x passes, and
            its pass over 200,000 drawn Myntra products took 9 minutes uncapped, 2 min 15 s capped. No attribute
            of the benchmark's catalogs has as many.
    """

    def __init__(self, *, C: float = 0.5, description_weights: int = 15_000_000, unseen_score: float = -5.0,
                 min_weight: float = 0.01, max_rows: int = 50_000):
        self.C = C
        self.description_weights = description_weights
        self.unseen_score = unseen_score
        self.min_weight = min_weight
        self.max_rows = max_rows

    def fit(self, lexical: sp.csr_matrix, rows: np.ndarray, values: np.ndarray, value_attribute: np.ndarray,
            title_size: int, *, map=map, keep: "LinearTextScorer | None" = None) -> "LinearTextScorer":
        """Fit on training cells: product ``rows`` (c,) of ``lexical`` (n, terms) hold value indices ``values`` (c,).

        ``value_attribute`` (num_values,) maps value indices to attributes; columns [0, title_size) of
        ``lexical`` are title terms. ``map(fit_svm, jobs)`` runs the attributes' fits, in order: the builtin one
        here, or one spreading them over workers (``RayCluster.map``); each fit is the same wherever it runs.
        ``keep``: a scorer fitted on part of these cells; the attributes it learnt from ``max_rows`` drawn cells
        (``capped_``) keep its weights, since a fit on more cells would learn from as many.
        """
        num_values = len(value_attribute)
        size = np.bincount(value_attribute, minlength=int(value_attribute.max()) + 1 if num_values else 0)
        bias = np.full(num_values, self.unseen_score, dtype=np.float32)
        attribute = value_attribute[values]
        fitted = []                                                  # the classes (k,) of each attribute fitted
        self.capped_, kept = [], []                                  # attribute indices

        def jobs():                                                  # made as they are taken: one x at a time here
            for a in np.unique(attribute):
                sel = np.flatnonzero(attribute == a)
                labels = values[sel]
                if len(sel) > self.max_rows:
                    if keep is not None and a in keep.capped_:
                        kept.append(int(a))
                        continue
                    self.capped_.append(int(a))
                    drawn = capped_rows(labels, self.max_rows, seed=int(a))
                    sel, labels = sel[drawn], labels[drawn]
                classes = np.unique(labels)
                if len(classes) == 1:
                    bias[classes[0]] = 0.0
                    continue
                width = lexical.shape[1] if size[a] * lexical.shape[1] <= self.description_weights else title_size
                fitted.append(classes)
                yield lexical[rows[sel]][:, :width], labels, self.C, self.min_weight

        parts = []                                                   # COO blocks (term, value, weight)
        for i, (intercept, term, k, weight) in enumerate(map(fit_svm, jobs())):
            classes = fitted[i]                                      # appended as its job was taken
            bias[classes] = intercept
            parts.append((term, classes[k], weight))
        for a in kept:
            self.capped_.append(a)
            columns = np.flatnonzero(value_attribute == a)
            bias[columns] = keep.bias_[columns]
            block = keep.weight_[:, columns].tocoo()
            parts.append((block.row, columns[block.col], block.data))
        if parts:
            term, value, weight = (np.concatenate(x) for x in zip(*parts))
        else:
            term, value, weight = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        self.weight_ = sp.csr_matrix((weight.astype(np.float32), (term, value)), shape=(lexical.shape[1], num_values))
        self.bias_ = bias
        return self

    def decision(self, lexical: sp.csr_matrix, columns: slice | None = None) -> np.ndarray:
        """(n, values) float32 scores of the products' tf-idf rows (n, terms): of every value, or of the values
        ``columns`` (one attribute's, say). A value's score is the same either way, summed over the same terms."""
        weight, bias = (self.weight_, self.bias_) if columns is None else (self.weight_[:, columns],
                                                                          self.bias_[columns])
        return (lexical @ weight).toarray() + bias

    def get_state(self) -> dict[str, np.ndarray]:
        w = self.weight_
        return {"linear_indptr": w.indptr.astype(np.int64), "linear_indices": w.indices.astype(np.int32),
                "linear_data": w.data, "linear_shape": np.array(w.shape, dtype=np.int64), "linear_bias": self.bias_}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], **params) -> "LinearTextScorer":
        self = cls(**params)
        self.weight_ = sp.csr_matrix((state["linear_data"], state["linear_indices"], state["linear_indptr"]),
                                     shape=tuple(state["linear_shape"]))
        self.bias_ = state["linear_bias"]
        return self


def process_map(n_jobs: int | None):
    """A ``map`` for :meth:`LinearTextScorer.fit` over ``n_jobs`` processes of this machine (-1: one per core;
    None or 1: the builtin map, in this process). joblib's processes take the jobs as they free up (the tf-idf
    rows of large ones are memory-mapped to them, not copied) and give the results in order. Processes rather
    than threads: liblinear releases the GIL, but scikit-learn's liblinear draws from one random generator per
    process, so fits on threads of one process race for it and the weights depend on timing; each process's fit
    seeds its own and gives the weights of a fit in this process."""
    if n_jobs in (None, 1):
        return map
    from joblib import Parallel, delayed

    def run(fn, jobs):
        return Parallel(n_jobs=n_jobs, pre_dispatch="2*n_jobs", return_as="generator")(delayed(fn)(j) for j in jobs)
    return run


def capped_rows(labels: np.ndarray, max_rows: int, *, seed: int) -> np.ndarray:
    """Sorted positions of at most ``max_rows`` of the cells ``labels`` (n,), drawn class by class: every cell of a
    class with at most q cells, q drawn at random from each larger class, q the largest that keeps the total within
    ``max_rows`` (at least 1), so that rare values lose none of their few examples."""
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    room, quota = max_rows, 1
    for i, c in enumerate(np.sort(counts)):             # smallest classes first: whole while they fit
        left = len(classes) - i
        if c * left > room:
            quota = max(room // left, 1)
            break
        room -= c
    return np.flatnonzero(rank_within(inverse, np.random.default_rng(seed).random(len(labels))) < quota)


def fit_svm(job: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One attribute's one-vs-rest linear SVM.

    Args:
        job: (x (c, terms) tf-idf rows, labels (c,) value indices of at least two classes, C, min_weight).

    Returns:
        (intercepts (k,), and of the weights at least ``min_weight`` in magnitude: terms, class positions among
        the k sorted classes, weights), k the number of classes.
    """
    from sklearn.svm import LinearSVC

    x, labels, C, min_weight = job
    with warnings.catch_warnings():
        # value indices as labels look like a regression target to scikit-learn's heuristics
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        svm = LinearSVC(C=C, random_state=0).fit(x, labels)
    coef, intercept = svm.coef_, svm.intercept_
    if len(svm.classes_) == 2:                         # one decision d: the pair's scores are +-d/2
        coef = np.vstack([-coef, coef]) / 2
        intercept = np.array([-intercept[0], intercept[0]]) / 2
    term, k = np.nonzero(np.abs(coef.T) >= min_weight)
    return intercept, term, k, coef.T[term, k]
