"""Mixing the members' scores (GNN, linear text scorer, similar-product vote, extractor) per attribute.

The mix is softmax(sum_j w_j * scores_j) over an attribute's allowed values: stacking and temperature scaling
in one. It is fitted on held-out cells, and chosen by cross-validation over those same cells: per attribute,
the full mix or one member alone (temperature-scaled), whichever made fewer held-out errors (then lower NLL),
so that the mix never ends worse than its best member on them.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

PRIOR_STRENGTHS = (1.0, 5.0, 25.0)


def fit_mixture(scores: list[np.ndarray], truth: np.ndarray, allowed: np.ndarray, value_attribute: np.ndarray,
                num_attributes: int, prior_strength: float | None = None, *, groups: np.ndarray | None = None,
                folds: int = 3, own_cells: int = 30) -> np.ndarray:
    """(num_attributes, len(scores)) weights w minimising the held-out NLL of softmax(sum_j w_j * scores_j).

    Weights shared by all cells are fitted first; each attribute's own weights then minimise its summed NLL
    plus ``prior_strength`` times their squared distance to the shared ones, so that an attribute with a few
    dozen cells stays near the shared weights and one with thousands goes its own way. Then, by
    ``folds``-fold cross-validation over the cells: the prior strength (when not given) from
    :data:`PRIOR_STRENGTHS`, by summed held-out NLL; and per attribute the candidate (the mix, or member j
    alone: only w_j free) with the fewest held-out errors, ties to the lower NLL. Attributes with fewer than
    ``own_cells`` cells take the choice made on all cells pooled.

    Args:
        scores: each (c, num_values), raw scores of the held-out cells.
        truth: (c,) true value index of each cell.
        allowed: (c, num_values) bool, the candidates the rules leave (the true value always among them).
        groups: (c,) the cells' products: folds never split a product (None: each cell its own).
        folds: of the cross-validation (1: no choice, the mix with the first prior strength).

    Returns:
        The weights; a member left out of an attribute's choice weighs 0 there.
    """
    num_scores = len(scores)
    weights = np.ones((num_attributes, num_scores), dtype=np.float32)
    if len(truth) == 0:
        return weights
    segments = _segments(scores, truth, allowed, value_attribute)
    for _, _, ok, y in segments.values():
        ok[torch.arange(len(y)), y] = True
    strengths = PRIOR_STRENGTHS if prior_strength is None else (prior_strength,)
    candidates = [("mix", s) for s in strengths] + [("alone", j) for j in range(num_scores)]
    groups = np.arange(len(truth)) if groups is None else np.asarray(groups)
    fold = _fold_of(groups, folds)
    # held-out (errors, NLL) of every candidate on every attribute, summed over folds
    errors = {a: np.zeros(len(candidates)) for a in segments}
    nll = {a: np.zeros(len(candidates)) for a in segments}
    if folds > 1 and len(np.unique(fold)) > 1:
        for f in np.unique(fold):
            train = {a: _take(seg, fold[seg[0]] != f) for a, seg in segments.items()}
            test = {a: _take(seg, fold[seg[0]] == f) for a, seg in segments.items()}
            fitted = _fit_candidates({a: s for a, s in train.items() if len(s[3])}, num_scores, candidates)
            for a, seg in test.items():
                if len(seg[3]) == 0:
                    continue
                for k in range(len(candidates)):
                    w = fitted.get(a, fitted["shared"])[k]
                    e, l = _outcome(seg, w)
                    errors[a][k] += e
                    nll[a][k] += l
    mixes = [k for k, (kind, _) in enumerate(candidates) if kind == "mix"]
    best_mix = mixes[int(np.argmin(sum(nll[a][mixes] for a in segments)))]
    choice = [best_mix] + [k for k, (kind, _) in enumerate(candidates) if kind == "alone"]
    small = [a for a, seg in segments.items() if len(seg[3]) < own_cells]
    pooled = _choose(sum(errors.values()), sum(nll.values()), choice)
    fitted = _fit_candidates(segments, num_scores, [candidates[k] for k in choice])
    weights[:] = fitted["shared"][0]
    for a in segments:
        k = pooled if a in small else _choose(errors[a], nll[a], choice)
        weights[a] = fitted[a][choice.index(k)]
    return weights


def _choose(errors: np.ndarray, nll: np.ndarray, among: list[int]) -> int:
    """The candidate of ``among`` with the fewest errors, then the lowest NLL; the mix (first) on a tie."""
    return min(among, key=lambda k: (round(errors[k], 6), round(nll[k], 6), among.index(k)))


def _fold_of(groups: np.ndarray, folds: int) -> np.ndarray:
    """(c,) fold of each cell: its group's, groups dealt round-robin in a fixed shuffled order."""
    unique, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(0).permutation(len(unique))
    return (order % max(folds, 1))[inverse]


def _take(segment, keep: np.ndarray):
    cells, z, ok, y = segment
    t = torch.from_numpy(keep)
    return cells[keep], z[t], ok[t], y[t]


def _fit_candidates(segments: dict, num_scores: int, candidates: list) -> dict:
    """Weights of every candidate: {"shared": [(S,) per candidate], attribute: [(S,) per candidate]}."""
    mask = torch.stack([torch.ones(num_scores) if kind == "mix" else torch.eye(num_scores)[arg]
                        for kind, arg in candidates])                                  # (K, S)
    weakest = min(arg for kind, arg in candidates if kind == "mix")
    strength = torch.tensor([arg if kind == "mix" else weakest for kind, arg in candidates])
    keys = list(segments)
    shared = _fit_weights([segments[a] for a in keys], mask, shared=True)              # (K, S)
    own = _fit_weights([segments[a] for a in keys], mask, prior=torch.from_numpy(shared), strength=strength)
    return {"shared": list(shared), **{a: list(own[i]) for i, a in enumerate(keys)}}


def _outcome(segment, w: np.ndarray) -> tuple[float, float]:
    """(errors, summed NLL) of the weights ``w`` on the cells of ``segment``."""
    _, z, ok, y = segment
    logits = (z @ torch.from_numpy(w)).masked_fill(~ok, -1e9)
    return float((logits.argmax(1) != y).sum()), float(F.cross_entropy(logits, y, reduction="sum"))


def _fit_weights(segments: list, mask: torch.Tensor, *, shared: bool = False, prior: torch.Tensor | None = None,
                 strength: torch.Tensor | None = None) -> np.ndarray:
    """Weights of K candidates at once (``mask`` (K, S), 0 pins a weight to 0), by one L-BFGS run: the
    candidates' losses (and the attributes', unless ``shared``) are separate, so their sum has the same minima
    and one run costs a few hundred small steps where a run per attribute and candidate cost thousands.

    Returns (K, S) weights minimising the NLL of all ``segments``' cells over their count (``shared``); else
    (len(segments), K, S), each segment's own: its summed NLL plus ``strength`` (K,) times the squared distance
    to ``prior`` (K, S), over its cell count.
    """
    k, num_scores = mask.shape
    start = torch.ones(k, num_scores) if prior is None else prior
    w = (start if shared else start.expand(len(segments), k, num_scores)).clone().requires_grad_(True)
    total = sum(len(y) for _, _, _, y in segments)
    if total == 0:
        return (w.detach() * mask).numpy()
    opt = torch.optim.LBFGS([w], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def nll(segment, weights):                                 # weights (K, S) -> (K,) summed NLL
        _, z, ok, y = segment
        logits = (z @ (weights * mask).T).permute(2, 0, 1).masked_fill(~ok, -1e9)    # (K, m, values)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(k), reduction="none") \
            .view(k, -1).sum(1)

    def closure():
        opt.zero_grad()
        if shared:
            loss = sum(nll(seg, w).sum() for seg in segments) / total
        else:
            loss = sum((nll(seg, w[i]) + strength * (((w[i] - prior) * mask) ** 2).sum(1)).sum() / max(len(seg[3]), 1)
                       for i, seg in enumerate(segments))
        loss.backward()
        return loss
    opt.step(closure)
    return (w.detach() * mask).clamp(0.0, 50.0).numpy()


def _segments(scores: list[np.ndarray], truth: np.ndarray, allowed: np.ndarray, value_attribute: np.ndarray) -> dict:
    """Per attribute of the cells: (cell indices (m,), its own columns of the scores (m, values, len(scores)),
    of ``allowed`` (m, values), the true value's column (m,))."""
    attr = value_attribute[truth]
    out = {}
    for a in np.unique(attr):
        cells = np.flatnonzero(attr == a)
        cols = np.flatnonzero(value_attribute == a)
        z = np.stack([s[cells][:, cols] for s in scores], -1).astype(np.float32)
        out[int(a)] = (cells, torch.from_numpy(z), torch.from_numpy(allowed[cells][:, cols]),
                       torch.from_numpy((truth[cells] - cols[0]).astype(np.int64)))
    return out


def calibration_outcomes(scores: list[np.ndarray], weights: np.ndarray, truth: np.ndarray, allowed: np.ndarray,
                         value_attribute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence (c,), correct (c,)) of the top allowed value of each calibration cell under the mix
    ``weights`` (num_attributes, len(scores)): what per-attribute precision thresholds are chosen on."""
    confidence, correct = np.zeros(len(truth), np.float32), np.zeros(len(truth), bool)
    for a, (cells, z, ok, y) in _segments(scores, truth, allowed, value_attribute).items():
        conf, top = torch.softmax((z @ torch.from_numpy(weights[a])).masked_fill(~ok, -1e9), 1).max(1)
        confidence[cells], correct[cells] = conf.numpy(), (top == y).numpy()
    return confidence, correct
