"""Fitting the FusionGNN: recover attribute values hidden from it; and scoring held-out cells for the mix.

Every epoch hides a random share of the known product-value edges from the whole graph; the hidden
edges of a batch's products are its targets, so the model never sees the answer it is asked for.
A fixed set of calibration edges is never a target (nor a training cell of the linear text scorer);
their held-out scores are what the mix of :mod:`kgattr.engine.mixture` is fitted on (see :mod:`kgattr.engine.crossfit`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from .memory import release
from .model import FusionGNN

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Row-aligned inputs of n products."""
    text: np.ndarray            # (n, text_dim) float32
    lexical: sp.csr_matrix      # (n, lexical_size) tf-idf
    categories: sp.csr_matrix   # (n, num_categories), 1 at every level of the path
    values: sp.csr_matrix       # (n, num_values), 1 per known value
    mentions: sp.csr_matrix     # (n, 2 * num_values): value stated in the title | in the description


def seed_torch(seed: int) -> None:
    """Seed the network's initial weights (numpy and scikit-learn take the seed where they draw): results are then
    byte-identical at one ``torch.get_num_threads()``; torch's CPU sums split by thread, so another count differs."""
    torch.manual_seed(seed)


def build_inputs(catalog, graph, text: np.ndarray, lexical, matcher, read_text: bool = True) -> Inputs:
    """The network's inputs for ``catalog`` against a fitted ``graph`` (its categories and value nodes),
    ``lexical`` features and value ``matcher``; without ``read_text``, tf-idf and mentions stay empty."""
    cindex = {c: i for i, c in enumerate(graph.categories)}
    vindex = graph.value_index()
    crow, ccol, vrow, vcol = [], [], [], []
    for i, p in enumerate(catalog):
        for depth in range(1, len(p.category) + 1):
            if p.category[:depth] in cindex:
                crow.append(i)
                ccol.append(cindex[p.category[:depth]])
        for item in p.attributes.items():
            if item in vindex:
                vrow.append(i)
                vcol.append(vindex[item])
    n = len(catalog)
    ones = lambda k: np.ones(k, dtype=np.float32)
    if read_text:
        mentions = sp.hstack([matcher.transform([p.title for p in catalog]),
                              matcher.transform([p.description for p in catalog])]).tocsr()
        terms = lexical.transform(catalog)
    else:
        mentions = sp.csr_matrix((n, 2 * len(vindex)), dtype=np.float32)
        terms = sp.csr_matrix((n, lexical.size), dtype=np.float32)
    return Inputs(text, terms, sp.csr_matrix((ones(len(crow)), (crow, ccol)), shape=(n, len(cindex))),
                  sp.csr_matrix((ones(len(vrow)), (vrow, vcol)), shape=(n, len(vindex))), mentions)


@dataclass
class Pool:
    """The products neighbours are drawn from, with what inference needs of them."""
    h1: torch.Tensor            # (m, hidden) layer-1 states, all known values visible
    values: sp.csr_matrix       # (m, num_values)
    value_attribute: np.ndarray # (num_values,)

    @cached_property
    def has_attr(self) -> sp.csr_matrix:
        """(m, num_attributes): the attributes each product holds; made once a pool (a pass over all its values,
        which every batch's votes read)."""
        onehot = attribute_onehot(self.value_attribute, int(self.value_attribute.max()) + 1
                                  if len(self.value_attribute) else 1)
        return self.values @ onehot


def attribute_onehot(value_attribute: np.ndarray, num_attributes: int) -> sp.csr_matrix:
    n = len(value_attribute)
    return sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), value_attribute)), shape=(n, num_attributes))


class Neighbours(NamedTuple):
    """Each product's neighbours, as rows of the pool: similar products (FAISS) and products listed next to it."""
    index: np.ndarray       # (n, k) int64, most similar first, -1 padded
    score: np.ndarray       # (n, k) float32 inner products
    sequence: np.ndarray    # (n, L, 2w) int64, per listing (all products, same leaf category) from
                            # SequenceIndex.search: w before (nearest first), w after

    def take(self, rows) -> "Neighbours":
        return Neighbours(self.index[rows], self.score[rows], self.sequence[rows])


def vote_shares(index: np.ndarray, weights: list[np.ndarray], values: sp.csr_matrix, has_attr: sp.csr_matrix,
                value_attribute: np.ndarray) -> list[np.ndarray]:
    """Per weight, (n, num_values) float32: the weighted share of neighbours holding each value, among those that
    have its attribute. ``index`` is (n, k) into the rows of ``values``, -1 padding; each weight is (n, k), positive;
    ``has_attr`` is (m, num_attributes), the attributes each row of ``values`` holds."""
    n, k = index.shape
    valid = index >= 0
    rows = np.repeat(np.arange(n), k)[valid.ravel()]
    cols = index[valid]
    out = []
    for w in weights:
        a = sp.csr_matrix((w[valid].astype(np.float32), (rows, cols)), shape=(n, values.shape[0]))
        den = (a @ has_attr).toarray()                                     # (n, num_attributes)
        # with positive weights, a value's sum is zero wherever its attribute's is: only den > 0 is divided by
        num = (a @ values).toarray()                                       # (n, num_values)
        num *= np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)[:, value_attribute]
        out.append(num.astype(np.float32, copy=False))
    return out


def neighbour_votes(near: Neighbours, pool: Pool, sharpness: float) -> torch.Tensor:
    """(n, num_values, 2 + 2L) vote shares of the ``pool`` products ``near`` names: similar products weighed by
    ``exp((score - 1) / sharpness)`` (near-duplicates dominate) and equally; then, per listing, products listed
    nearby weighed by 1/distance and 1/distance²."""
    values, has_attr, value_attribute = pool.values, pool.has_attr, pool.value_attribute
    n, levels, width = near.sequence.shape
    distance = np.broadcast_to(np.tile(np.arange(1, width // 2 + 1, dtype=np.float32), 2), (n, width))
    listed = [1 / distance, 1 / distance ** 2]                             # the same for every listing
    votes = vote_shares(near.index, [np.exp((near.score - 1.0) / sharpness), np.ones_like(near.score)],
                        values, has_attr, value_attribute)
    for level in range(levels):
        votes += vote_shares(near.sequence[:, level], listed, values, has_attr, value_attribute)
    return torch.from_numpy(np.stack(votes, -1))


def num_features(near: Neighbours) -> int:
    """Candidate features per value that :func:`batch_logits` builds for ``near``: the similar products' votes (2),
    each listing's (2 per listing, see :func:`neighbour_votes`), stated in the title, in the description."""
    return 2 + 2 * near.sequence.shape[1] + 2


def similar_edges(index: np.ndarray, score: np.ndarray, position: np.ndarray, sharpness: float):
    """Edges neighbour -> target for layer 2: (2, S) long with rows of the h1 matrix, and (S,) weights."""
    n, k = index.shape
    valid = index >= 0
    dst = np.repeat(np.arange(n), k)[valid.ravel()]
    src = position[index[valid]]
    w = np.exp((score[valid] - 1.0) / sharpness)
    total = np.bincount(dst, weights=w, minlength=n)
    w = w / total[dst]
    return torch.from_numpy(np.stack([src, dst])).long(), torch.from_numpy(w.astype(np.float32))


def encode_rows(model: FusionGNN, x_value: torch.Tensor, inputs: Inputs, visible: sp.csr_matrix,
                rows: np.ndarray) -> torch.Tensor:
    """(len(rows), hidden) layer-1 states of ``rows``, seeing the values in ``visible``."""
    lex = inputs.lexical[rows]
    lexical = (torch.from_numpy(lex.indices.astype(np.int64)), torch.from_numpy(lex.indptr[:-1].astype(np.int64)),
               torch.from_numpy(lex.data.astype(np.float32)))
    vv = visible[rows].tocoo()
    cc = inputs.categories[rows].tocoo()
    return model.encode(x_value, torch.from_numpy(inputs.text[rows]), lexical,
                        torch.from_numpy(np.stack([vv.col, vv.row]).astype(np.int64)),
                        torch.from_numpy(np.stack([cc.col, cc.row]).astype(np.int64)))


def _graph_tensors(cooccurs: np.ndarray, pmi: np.ndarray):
    return torch.from_numpy(cooccurs).long(), torch.from_numpy(pmi).float()


def batch_logits(model: FusionGNN, x_value: torch.Tensor, inputs: Inputs, visible: sp.csr_matrix, rows: np.ndarray,
                 near: Neighbours, pool: Pool, sharpness: float) -> torch.Tensor:
    """(len(rows), num_values) logits of ``rows``; their neighbours ``near`` (rows of ``pool``) send pool states
    and votes.

    Training, calibration and inference all go through here; only the pool differs (states refreshed
    each epoch under that epoch's hidden edges, or the stored states of the trained catalog).
    """
    used = np.unique(near.index[near.index >= 0])
    position = np.full(pool.h1.shape[0], -1, dtype=np.int64)
    position[used] = len(rows) + np.arange(len(used))
    h1 = torch.cat([encode_rows(model, x_value, inputs, visible, rows), pool.h1[torch.from_numpy(used)]])
    similar, weight = similar_edges(near.index, near.score, position, sharpness)
    votes = neighbour_votes(near, pool, sharpness)
    mentions = torch.from_numpy(inputs.mentions[rows].toarray()).view(len(rows), 2, -1).transpose(1, 2)
    features = torch.cat([votes, mentions], -1)                             # (len(rows), num_values, F)
    return model(x_value, h1, similar, weight, len(rows), features)


def known_edges(values: sp.csr_matrix) -> np.ndarray:
    """(2, E) product rows and value indices of the known cells, in COO order (the COO matrix itself let go)."""
    coo = values.tocoo()
    return np.stack([coo.row, coo.col])


def _visible(edges: np.ndarray, keep: np.ndarray, shape) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (edges[0][keep], edges[1][keep])), shape=shape)


def fit_model(model: FusionGNN, inputs: Inputs, neighbours: Neighbours, graph_edges,
              targetable: np.ndarray, calibration: np.ndarray, *, epochs: int, batch_size: int, lr: float,
              mask_rate: float, sharpness: float, seed: int, lexical_lr: float | None = None,
              patience: int | None = None, epoch_products: int | None = None,
              progress: bool = False) -> tuple[list[float], list[float]]:
    """Train ``model`` in place; returns the mean loss of each epoch, and the calibration edges' held-out loss
    after each epoch (with ``patience``; else empty).

    Args:
        neighbours: of each product (self excluded).
        graph_edges: (cooccurs (2, P), pmi (P,)) of the value graph.
        targetable: (E,) bool over the known edges (``inputs.values`` in COO order) that may be targets.
        calibration: (E,) bool, edges kept out of training targets for calibration.
        patience: stop once the held-out loss has not fallen for this many epochs, and keep the weights of its
            lowest (None: train every epoch, without measuring it).
        epoch_products: an epoch's batches cover this many products drawn at random (None: every product).
    """
    import copy

    from ..io.progress import bar as progress_bar
    from ..io.schedule import Patience

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    edges = known_edges(inputs.values)
    value_attribute = model.value_attribute.numpy()
    attr_mask = _attribute_mask(value_attribute)
    cooccurs, pmi = _graph_tensors(*graph_edges)
    dense = [p for p in model.parameters() if p is not model.lexical.weight]
    optimizers = [torch.optim.AdamW(dense, lr=lr, weight_decay=1e-5, fused=True),        # fused: ~7x faster on CPU
                  torch.optim.SparseAdam([model.lexical.weight], lr=lexical_lr or lr)]
    n = inputs.text.shape[0]
    drawn = n if epoch_products is None else min(n, epoch_products)
    steps = epochs * ((drawn + batch_size - 1) // batch_size)
    # OneCycleLR divides by (warm-up steps - 1): warm up for two steps at least, or (in 1-2 steps) not at all
    warmup = 0.1 if steps < 3 else max(0.1, 2 / steps)
    schedulers = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=o.defaults["lr"], total_steps=max(steps, 1),
                                                      pct_start=warmup) for o in optimizers]
    history, watch = [], Patience(patience) if patience is not None else None
    bar = progress_bar(total=steps, desc="training", unit="batch", enabled=progress)
    for epoch in range(epochs):
        hidden = rng.random(edges.shape[1]) < mask_rate
        visible = _visible(edges, ~hidden, inputs.values.shape)
        target_by_product = _visible(edges, hidden & targetable & ~calibration, inputs.values.shape)
        pool = Pool(pool_states(model, inputs, visible, graph_edges), visible, value_attribute)
        model.train()
        losses = []
        order = rng.permutation(n)[:drawn]
        for start in range(0, drawn, batch_size):
            batch = order[start:start + batch_size]
            t = target_by_product[batch].tocoo()
            if t.nnz == 0:
                bar.update()
                continue
            x_value = model.value_states(cooccurs, pmi)
            logits = batch_logits(model, x_value, inputs, visible, batch, neighbours.take(batch), pool, sharpness)
            row, val = torch.from_numpy(t.row.astype(np.int64)), torch.from_numpy(t.col.astype(np.int64))
            z = logits[row].masked_fill(~attr_mask[model.value_attribute[val]], float("-inf"))
            loss = F.cross_entropy(z, val)
            for o in optimizers:
                o.zero_grad()
            loss.backward()
            for o, sch in zip(optimizers, schedulers):
                o.step()
                sch.step()
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses):.3f}")
        del pool                                            # (n, hidden): not held beside the next one
        release()
        history.append(float(np.mean(losses)) if losses else float("nan"))
        log.info("epoch %d loss %.4f (%d batches)", epoch + 1, history[-1], len(losses))
        if watch is not None and calibration.any():
            loss = heldout_loss(model, inputs, neighbours, graph_edges, calibration, mask_rate=mask_rate,
                                sharpness=sharpness, seed=seed)
            log.info("epoch %d held-out loss %.4f", epoch + 1, loss)
            if watch.update(loss, lambda: copy.deepcopy(model.state_dict())):
                break
    bar.close()
    if watch is not None and watch.losses:
        model.load_state_dict(watch.best)
    return history, watch.losses if watch is not None else []


@torch.no_grad()
def heldout_loss(model: FusionGNN, inputs: Inputs, neighbours: Neighbours, graph_edges, calibration: np.ndarray, *,
                 mask_rate: float, sharpness: float, seed: int) -> float:
    """Mean cross-entropy of the ``calibration`` edges over their attributes' values (see
    :func:`calibration_batches`, warm products only)."""
    (_, truth, batches), _ = calibration_batches(model, inputs, neighbours, graph_edges, calibration,
                                                 mask_rate=mask_rate, sharpness=sharpness, seed=seed, cold_products=0)
    if len(truth) == 0:
        return float("nan")
    attr_mask = _attribute_mask(model.value_attribute.numpy())
    # each cell's log-probability of its true value, batch by batch: the rows F.cross_entropy would take whole
    picked = []
    for cells, logits, _ in batches:
        y = torch.from_numpy(truth[cells])
        z = logits.masked_fill(~attr_mask[model.value_attribute[y]], float("-inf"))
        picked.append(F.log_softmax(z, 1).gather(1, y[:, None]))
    return float(F.nll_loss(torch.cat(picked), torch.zeros(len(truth), dtype=torch.long)))


def _attribute_mask(value_attribute: np.ndarray) -> torch.Tensor:
    """(num_attributes, num_values) bool: which values belong to each attribute."""
    a = torch.from_numpy(value_attribute).long()
    return torch.nn.functional.one_hot(a, int(a.max()) + 1 if len(a) else 1).T.bool()


@torch.no_grad()
def pool_states(model: FusionGNN, inputs: Inputs, visible: sp.csr_matrix, graph_edges,
                batch_size: int = 4096) -> torch.Tensor:
    """(n, hidden) layer-1 states of every product, seeing the values in ``visible``."""
    model.eval()
    x_value = model.value_states(*_graph_tensors(*graph_edges))
    n = inputs.text.shape[0]
    out = torch.empty(n, model.config["hidden_channels"])       # filled in place: never the batches beside it
    for s in range(0, n, batch_size):
        out[s:s + batch_size] = encode_rows(model, x_value, inputs, visible, np.arange(s, min(s + batch_size, n)))
    return out


@torch.no_grad()
def predict_logits(model: FusionGNN, inputs: Inputs, neighbours: Neighbours, pool: Pool,
                   graph_edges, *, sharpness: float, batch_size: int = 2048, progress: bool = False):
    """Yield (rows, logits (len(rows), num_values) float32) for products of ``inputs``, batch by batch.

    Neighbours index ``pool``; their layer-1 states come from ``pool.h1``.
    """
    from ..io.progress import bar as progress_bar

    model.eval()
    x_value = model.value_states(*_graph_tensors(*graph_edges))
    n = inputs.text.shape[0]
    for start in progress_bar(range(0, n, batch_size), desc="scoring", unit="batch", enabled=progress):
        rows = np.arange(start, min(start + batch_size, n))
        logits = batch_logits(model, x_value, inputs, inputs.values, rows, neighbours.take(rows), pool, sharpness)
        yield rows, logits.numpy()


@torch.no_grad()
def calibration_batches(model: FusionGNN, inputs: Inputs, neighbours, graph_edges, calibration: np.ndarray, *,
                        mask_rate: float, sharpness: float, seed: int, batch_size: int = 1024,
                        cold_products: int = 4096) -> list[tuple]:
    """Logits of the calibration edges, hidden together with a random share of the others, batch by batch.

    Returns two (product rows (c,), true value indices (c,), batches): warm, the products seeing their other
    values; cold, up to ``cold_products`` of the same products seeing none of their values, as a new product
    arrives (its neighbours keep theirs). ``batches`` yields the part's cells in order, a batch of products at a
    time: (their positions among the c (k,), logits (k, num_values) tensor, similar-product votes (k, num_values),
    see :func:`similar_vote`); what is kept of them is the caller's.
    """
    rng = np.random.default_rng(seed + 1)
    edges = known_edges(inputs.values)
    hidden = (rng.random(edges.shape[1]) < mask_rate) | calibration
    visible = _visible(edges, ~hidden, inputs.values.shape)
    x_value = model.value_states(*_graph_tensors(*graph_edges))
    pool = Pool(pool_states(model, inputs, visible, graph_edges), visible, model.value_attribute.numpy())
    wanted = sp.csr_matrix((np.ones(int(calibration.sum()), np.float32),
                            (edges[0][calibration], edges[1][calibration])), shape=inputs.values.shape)
    products = np.unique(edges[0][calibration])
    cold = np.sort(rng.choice(products, min(cold_products, len(products)), replace=False))

    @torch.no_grad()
    def batches(chosen: np.ndarray, seen: sp.csr_matrix):
        at = 0
        for start in range(0, len(chosen), batch_size):
            batch = chosen[start:start + batch_size]
            near = neighbours.take(batch)
            z = batch_logits(model, x_value, inputs, seen, batch, near, pool, sharpness)
            t = wanted[batch].tocoo()
            yield (np.arange(at, at + t.nnz), z[torch.from_numpy(t.row.astype(np.int64))],
                   similar_vote(near, pool, sharpness)[t.row])
            at += t.nnz

    out = []
    for chosen, seen in ((products, visible), (cold, sp.csr_matrix(inputs.values.shape, dtype=np.float32))):
        cells = wanted[chosen].tocoo()
        out.append((chosen[cells.row].astype(np.int64), cells.col.astype(np.int64), batches(chosen, seen)))
    return out


def similar_vote(near: Neighbours, pool: Pool, sharpness: float, floor: float = 0.01) -> np.ndarray:
    """(n, num_values) float32 log(share + ``floor``) of the similarity-weighted vote of the similar products
    (as :func:`neighbour_votes`' first feature): the kNN member of the mix."""
    share, = vote_shares(near.index, [np.exp((near.score - 1.0) / sharpness)], pool.values, pool.has_attr,
                         pool.value_attribute)
    return np.log(share + floor)
