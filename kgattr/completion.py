"""From ranked candidates to a completion: rule checks, calibrated confidence, evidence."""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Completion:
    """One gap of one product and what kgattr proposes for it (``value`` None: abstained)."""
    sku: str
    attribute: str
    value: str | None
    confidence: float
    alternatives: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("sku")
        return d


@dataclass
class ProductCompletion:
    sku: str
    known: dict[str, str]
    completions: list[Completion]

    def to_json(self) -> dict:
        return {"sku": self.sku, "known": self.known, "completions": [c.to_json() for c in self.completions]}


def decide(rules, category: tuple[str, ...], attribute: str, values: list[str], logits: np.ndarray,
           allowed: np.ndarray | None = None, alternatives: int = 3):
    """Walk candidates best first; rule-breaking ones are rejected and the next consistent one wins.

    Args:
        allowed: (len(values),) bool, the rules' verdict if already known (compiled masks), else checked here.

    Returns (value or None, confidence, alternatives [{value, confidence}], rejected [{value, rule}]).
    Confidence is the softmax of the (calibrated) logits over the consistent candidates.
    """
    if allowed is None:
        allowed = np.array([rules.check(category, attribute, v) is None for v in values], dtype=bool)
    keep = np.flatnonzero(allowed).tolist()
    first = keep[0] if keep else len(values)
    rejected = [{"value": v, "rule": rules.check(category, attribute, v).rule} for v in values[:first]]
    if not keep:
        return None, 0.0, [], rejected
    z = logits[keep]
    p = np.exp(z - z.max())
    p /= p.sum()
    alts = [{"value": values[i], "confidence": round(float(q), 4)} for i, q in zip(keep[1:alternatives + 1], p[1:])]
    return values[keep[0]], float(p[0]), alts, rejected


@lru_cache(maxsize=4096)
def _verbatim(value: str) -> re.Pattern:
    return re.compile(r"(?<![\w])" + re.escape(value) + r"(?![\w])", re.IGNORECASE)


def text_evidence(value: str, title: str, description: str, width: int = 40) -> str | None:
    """The passage of the product's own text that states ``value`` verbatim, if any."""
    pattern = _verbatim(value)
    for text in (title, description):
        m = pattern.search(text)
        if m:
            start, end = max(0, m.start() - width), min(len(text), m.end() + width)
            return ("…" if start else "") + text[start:end].replace("\n", " ") + ("…" if end < len(text) else "")
    return None
