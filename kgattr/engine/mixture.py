"""Mixing the members' scores (GNN, linear text scorer, similar-product vote, extractor) per attribute.

The mix is softmax(sum_j w_j * scores_j) over an attribute's allowed values: stacking and temperature scaling
in one. It is fitted on held-out cells, and chosen by cross-validation over those same cells: per attribute,
the full mix or one member alone (temperature-scaled), whichever made fewer held-out errors (then lower NLL),
so that the mix never ends worse than its best member on them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from .blocks import Blocks

PRIOR_STRENGTHS = (1.0, 5.0, 25.0)


def fit_mixture(scores: list[list[np.ndarray]], truth: np.ndarray, allowed: list[np.ndarray], blocks: Blocks,
                num_attributes: int, prior_strength: float | None = None, *, groups: np.ndarray | None = None,
                folds: int = 3, own_cells: int = 30) -> "Mixture":
    """Weights w minimising the held-out NLL of softmax(sum_j w_j * scores_j), and the cells' out-of-fold outcomes.

    Weights shared by all cells are fitted first; each attribute's own weights then minimise its summed NLL
    plus ``prior_strength`` times their squared distance to the shared ones, so that an attribute with a few
    dozen cells stays near the shared weights and one with thousands goes its own way. Then, by
    ``folds``-fold cross-validation over the cells: the prior strength (when not given) from
    :data:`PRIOR_STRENGTHS`, by summed held-out NLL; and per attribute the candidate (the mix, or member j
    alone: only w_j free) with the fewest held-out errors, ties to the lower NLL. Attributes with fewer than
    ``own_cells`` cells take the choice made on all cells pooled. The softmax of a cell runs over its
    :data:`TOP` best values by each member and the true one (the others hold next to no probability).

    Args:
        scores: per member, raw scores of the held-out cells over their own attributes' values: one
            (cells of a, values of a) array per attribute a of ``blocks``.
        truth: (c,) true value index of each cell.
        allowed: one (cells of a, values of a) bool array per attribute a of ``blocks``, the candidates the rules
            leave (the true value always among them).
        blocks: the cells grouped by attribute.
        groups: (c,) the cells' products: folds never split a product (None: each cell its own).
        folds: of the cross-validation (1: no choice, the mix with the first prior strength).

    Returns:
        A :class:`Mixture`: the (num_attributes, len(scores)) weights, a member left out of an attribute's choice
        weighing 0 there; and each cell's confidence and outcome under its attribute's chosen candidate as fitted
        without the cell's fold (in-sample with ``folds`` = 1), which is what calibration is fitted on.
    """
    # one thread: torch's threaded reductions sum in an order that can differ from one process to the next, and
    # L-BFGS carries the last bits on (mix weights of two trainings 0.013 apart on 3,000 products); held-out cells
    # are few, so this costs little and every process fits the same weights
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_mixture(scores, truth, allowed, blocks, num_attributes, prior_strength, groups, folds, own_cells)
    finally:
        torch.set_num_threads(threads)


def _fit_mixture(scores, truth, allowed, blocks, num_attributes, prior_strength, groups, folds, own_cells):
    num_scores = len(scores)
    weights = np.ones((num_attributes, num_scores), dtype=np.float32)
    if len(truth) == 0:
        return Mixture(weights, np.zeros(0, np.float32), np.zeros(0, bool))
    cells = _cells(scores, truth, allowed, blocks)
    attributes = cells.attributes
    strengths = PRIOR_STRENGTHS if prior_strength is None else (prior_strength,)
    candidates = [("mix", s) for s in strengths] + [("alone", j) for j in range(num_scores)]
    groups = np.arange(len(truth)) if groups is None else np.asarray(groups)
    fold = torch.from_numpy(_fold_of(groups, folds))
    # held-out (errors, NLL) of every candidate on every attribute (A, K), summed over folds
    errors = np.zeros((len(attributes), len(candidates)))
    nll = np.zeros((len(attributes), len(candidates)))
    fold_fits = {}
    if folds > 1 and len(np.unique(fold)) > 1:
        for f in torch.unique(fold).tolist():
            fold_fits[f] = own = _fit_candidates(cells.take(fold != f), num_scores, candidates)
            e, l = cells.take(fold == f).outcome(own)
            errors += e
            nll += l
    mixes = [k for k, (kind, _) in enumerate(candidates) if kind == "mix"]
    best_mix = mixes[int(np.argmin(nll[:, mixes].sum(0)))]
    choice = [best_mix] + [k for k, (kind, _) in enumerate(candidates) if kind == "alone"]
    counts = np.bincount(cells.attribute.numpy(), minlength=len(attributes))
    pooled = _choose(errors.sum(0), nll.sum(0), choice)
    own = _fit_candidates(cells, num_scores, [candidates[k] for k in choice])
    chosen = np.array([pooled if counts[i] < own_cells else _choose(errors[i], nll[i], choice)
                       for i in range(len(attributes))])
    weights[attributes] = own[np.arange(len(attributes)), [choice.index(k) for k in chosen]]
    if not fold_fits:                    # no folds: the outcomes are in-sample
        return Mixture(weights, *cells.top(weights[attributes]))
    confidence, correct = np.zeros(len(truth), np.float32), np.zeros(len(truth), bool)
    for f, fit in fold_fits.items():
        take = (fold == f).numpy()
        confidence[take], correct[take] = cells.take(fold == f).top(fit[np.arange(len(attributes)), chosen])
    return Mixture(weights, confidence, correct)


class Mixture(NamedTuple):
    """What :func:`fit_mixture` returns: weights (num_attributes, S); confidence and correct (c,), out of fold."""
    weights: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray


def _choose(errors: np.ndarray, nll: np.ndarray, among: list[int]) -> int:
    """The candidate of ``among`` with the fewest errors, then the lowest NLL; the mix (first) on a tie."""
    return min(among, key=lambda k: (round(errors[k], 6), round(nll[k], 6), among.index(k)))


def _fold_of(groups: np.ndarray, folds: int) -> np.ndarray:
    """(c,) fold of each cell: its group's, groups dealt round-robin in a fixed shuffled order."""
    unique, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(0).permutation(len(unique))
    return (order % max(folds, 1))[inverse]


TOP = 10          # values per member that a cell's softmax runs over in the fit (with the true one)


class _Cells(NamedTuple):
    """Held-out cells, each over its own few candidate values: members' scores z (n, T, S), allowed ok (n, T),
    the true value's place y (n,), the attribute's position in ``attributes`` (n,)."""
    z: torch.Tensor
    ok: torch.Tensor
    y: torch.Tensor
    attribute: torch.Tensor
    attributes: list[int]

    def take(self, keep: torch.Tensor) -> "_Cells":
        return _Cells(self.z[keep], self.ok[keep], self.y[keep], self.attribute[keep], self.attributes)

    def nll(self, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, K) NLL of each cell under each candidate's weights ((A, K, S), or (K, S) shared by all)."""
        w = weights * mask
        w = w[self.attribute] if w.dim() == 3 else w.expand(len(self.y), *w.shape)
        logits = torch.einsum("nts,nks->nkt", self.z, w).masked_fill(~self.ok[:, None, :], -1e9)
        return torch.logsumexp(logits, -1) - logits.gather(2, self.y[:, None, None].expand(-1, w.shape[1], 1))[..., 0]

    def per_attribute(self, values: torch.Tensor) -> torch.Tensor:
        """(A, K) sums over each attribute's cells of ``values`` (n, K)."""
        out = torch.zeros(len(self.attributes), values.shape[1], dtype=values.dtype)
        return out.index_add_(0, self.attribute, values)

    def top(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, correct), each (n,), of each cell's best allowed value under its attribute's ``weights``
        (A, S)."""
        with torch.no_grad():
            z = torch.einsum("nts,ns->nt", self.z, torch.from_numpy(weights)[self.attribute])
            conf, best = torch.softmax(z.masked_fill(~self.ok, -1e9), 1).max(1)
        return conf.numpy().astype(np.float32), (best == self.y).numpy()

    def outcome(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(errors, summed NLL), each (A, K), of the candidates' own ``weights`` (A, K, S)."""
        w = torch.from_numpy(weights)
        with torch.no_grad():
            logits = torch.einsum("nts,nks->nkt", self.z, w[self.attribute]).masked_fill(~self.ok[:, None, :], -1e9)
            wrong = (logits.argmax(-1) != self.y[:, None]).double()
            nll = self.nll(w, torch.ones(w.shape[1:])).double()
        return self.per_attribute(wrong).numpy(), self.per_attribute(nll).numpy()


def _segments(scores: list[list[np.ndarray]], truth: np.ndarray, allowed: list[np.ndarray], blocks: Blocks):
    """Per block, in attribute order: (attribute, cell indices (m,), the members' scores (m, values, len(scores)),
    a copy of its ``allowed`` (m, values), the true value's column (m,))."""
    for b, (a, cells, columns) in enumerate(blocks):
        z = np.stack([s[b] for s in scores], -1).astype(np.float32)
        yield (a, cells, torch.from_numpy(z), torch.from_numpy(allowed[b].copy()),
               torch.from_numpy((truth[cells] - columns.start).astype(np.int64)))


def _cells(scores: list[list[np.ndarray]], truth: np.ndarray, allowed: list[np.ndarray], blocks: Blocks) -> _Cells:
    """Each cell's :data:`TOP` best allowed values by each member, and its true value, padded to one width."""
    width = TOP * len(scores) + 1
    attributes, parts = [], []
    for i, (a, cells, z, ok, y) in enumerate(_segments(scores, truth, allowed, blocks)):
        attributes.append(a)
        ok[torch.arange(len(y)), y] = True
        chosen = torch.zeros_like(ok)
        for j in range(len(scores)):
            top = z[..., j].masked_fill(~ok, -np.inf).topk(min(TOP, ok.shape[1]), 1).indices
            chosen.scatter_(1, top, True)
        chosen[torch.arange(len(y)), y] = True
        chosen &= ok
        place = chosen.float().topk(min(width, ok.shape[1]), 1).indices                 # chosen columns first
        z, ok = z.gather(1, place[..., None].expand(-1, -1, z.shape[2])), chosen.gather(1, place)
        y = (place == y[:, None]).float().argmax(1)
        pad = width - place.shape[1]
        parts.append((cells, F.pad(z, (0, 0, 0, pad)), F.pad(ok, (0, pad)), y, torch.full((len(y),), i)))
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")    # back to the cells' order
    return _Cells(*(torch.cat([p[k] for p in parts])[order] for k in range(1, 5)), attributes)


def _fit_candidates(cells: _Cells, num_scores: int, candidates: list) -> np.ndarray:
    """(A, K, S) own weights of every attribute and candidate, pulled toward the candidates' shared weights."""
    mask = torch.stack([torch.ones(num_scores) if kind == "mix" else torch.eye(num_scores)[arg]
                        for kind, arg in candidates])                                  # (K, S)
    weakest = min(arg for kind, arg in candidates if kind == "mix")
    strength = torch.tensor([arg if kind == "mix" else weakest for kind, arg in candidates])
    shared = _fit_weights(cells, mask)                                                 # (K, S)
    return _fit_weights(cells, mask, prior=torch.from_numpy(shared), strength=strength)


def _fit_weights(cells: _Cells, mask: torch.Tensor, *, prior: torch.Tensor | None = None,
                 strength: torch.Tensor | None = None) -> np.ndarray:
    """Weights of K candidates at once (``mask`` (K, S), 0 pins a weight to 0), by one L-BFGS run: the
    candidates' losses (and the attributes', with a ``prior``) are separate, so their sum has the same minima.

    Returns (K, S) weights minimising the NLL of all cells over their count (without ``prior``); else (A, K, S),
    each attribute's own: its summed NLL plus ``strength`` (K,) times the squared distance to ``prior`` (K, S),
    over its cell count.
    """
    k, num_scores = mask.shape
    shared = prior is None
    start = torch.ones(k, num_scores) if shared else prior.expand(len(cells.attributes), k, num_scores)
    w = start.clone().requires_grad_(True)
    if len(cells.y) == 0:
        return (w.detach() * mask).numpy()
    counts = cells.per_attribute(torch.ones(len(cells.y), 1)).clamp(min=1)             # (A, 1)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = cells.nll(w, mask)
        if shared:
            loss = nll.sum() / len(cells.y)
        else:
            loss = ((cells.per_attribute(nll) + strength * (((w - prior) * mask) ** 2).sum(-1)) / counts).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return (w.detach() * mask).clamp(0.0, 50.0).numpy()
