"""The extractor as a team: an exact dictionary, the fine-tuned tagger and copy rules, chosen per attribute.

Each member reads a value of an attribute in its own way: the dictionary looks up the catalog's known values
verbatim (:class:`~kgattr.extract.extraction.DictionaryExtractor`), the tagger reads which attribute a word is for
(:class:`~kgattr.extract.tagger.Extractor`), and copy rules write values never seen in training from spans shaped
like those of the known values, converting units (:class:`~kgattr.extract.copying.TextCopier`). Which member to
trust differs by attribute: brand names are a dictionary's job, a secondary colour the tagger's, a voltage the
copy rules'. So a share of the training titles is held out, the members are fitted on the rest and read the
held-out products, and each attribute takes the order of members (the first that gives a value wins) that
gains most there, or abstains where every order's wrong values cost more than its right ones bring. The gain
is that of micro F1 (a value helps when its chance of being right exceeds half the F1 reached, F/2) plus that
of macro F1. Each attribute's gains are smoothed toward the gain per cell of all attributes, so one with few
held-out cells takes about the shared choice. The dictionary is one of the orders, so on the held-out titles
the team's micro F1 is never below it.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from ..text.lexical import fold
from .copying import TextCopier
from .extraction import (COMBINED_KIND, FIELDS, DictionaryExtractor, Lexicon, Span, best_values, check_target,
                         held_out, saved_kind)

FORMAT = 2            # 2: copy rules counted apart where they write a known value
MEMBERS = ("dictionary", "tagger", "copier")
# least confidences a member's value may need, per attribute (the dictionary's values all have 1)
THRESHOLDS = np.array([0.0, 0.3, 0.5, 0.7, 0.9])


def orders(members) -> list[tuple[str, ...]]:
    """Every order of every non-empty subset of ``members``, and () (abstain)."""
    return [()] + [o for n in range(1, len(members) + 1) for o in itertools.permutations(members, n)]


class CombinedExtractor:
    """Dictionary, tagger and copy rules, their order chosen per attribute on held-out titles.

    Args:
        tagger: an unfitted :class:`~kgattr.extract.tagger.Extractor` (None: dictionary and copy rules only).
        check_share: share of the training titles held out to choose the orders (and end the tagger's epochs).
        prior_cells: each attribute's gains on the held-out cells (known values, or values some member read) are
            smoothed by this many pseudo-cells of the gain per cell of all attributes together, so an attribute
            with few cells takes about the choice shared by all.
        macro_weight: weight of macro F1 beside micro F1 in the choice (0: micro alone, which abstains on
            attributes whose values are mostly wrong, even where they are that attribute's only right ones).
        seed: for the split and the copy rules' folds.
    """

    def __init__(self, *, tagger=None, check_share: float = 0.2, prior_cells: float = 10.0, macro_weight: float = 1.0,
                 seed: int = 0):
        self.tagger = tagger
        self.check_share = check_share
        self.prior_cells = prior_cells
        self.macro_weight = macro_weight
        self.seed = seed

    PARAMS = ("check_share", "prior_cells", "macro_weight", "seed")

    def __repr__(self) -> str:
        return f"CombinedExtractor(tagger={self.tagger!r}, check_share={self.check_share})"

    def fit(self, products, ontology=None) -> "CombinedExtractor":
        """Fit the members on the products outside held-out titles, choose each attribute's order on the held-out
        ones, then refit the dictionary and the copy rules on all ``products``."""
        products = list(products)
        train, check = held_out(products, self.check_share, self.seed)
        if not train:                                  # one title only: nothing to choose on
            train, check = products, []
        self._fit_members(train, ontology, check)
        self.shared_order_, self.orders_, self.choice_ = self._choose(check)
        self._fit_members(products, ontology, None)
        return self

    def _fit_members(self, products, ontology, check) -> None:
        """Dictionary and copy rules on ``products``; the tagger too when ``check`` is given (its held-out set)."""
        self.lexicon_ = Lexicon.from_catalog(products, ontology)
        names = sorted(self.lexicon_.values)
        self.dictionary_ = DictionaryExtractor().fit([], names, self.lexicon_)
        self.copier_ = TextCopier(seed=self.seed).fit(products, names)
        if check is not None:
            self.tagger_ = None
            if self.tagger is not None:
                try:
                    self.tagger_ = self.tagger.fit(products, ontology, heldout=check)
                except ValueError:                     # no value stated in the text: no tagger member
                    pass
        elif self.tagger_ is not None:
            self.tagger_.lexicon_ = self.lexicon_      # new forms of the held-out titles normalise too

    @property
    def members_(self) -> tuple[str, ...]:
        return tuple(m for m in MEMBERS if m != "tagger" or self.tagger_ is not None)

    def readings(self, products) -> dict[str, list[dict[str, Span]]]:
        """Each member's reading of each product: {member: [{attribute: Span}]}, one value per attribute."""
        products = list(products)
        out = {"dictionary": [best_values(s) for s in self.dictionary_.extract(products)]}
        if self.tagger_ is not None:
            out["tagger"] = [best_values(s) for s in self.tagger_.extract(products)]
        names = self.copier_.attributes_
        out["copier"] = [{a: self._copy_span(p, a, c) for a, c in self.copier_.copies(p, names).items()}
                         for p in products]
        return out

    def _copy_span(self, product, attribute: str, copy) -> Span:
        known = self.lexicon_.lookup(attribute, copy.value)
        return Span(attribute, known or copy.value, known is not None, copy.field, copy.start, copy.end,
                    getattr(product, copy.field)[copy.start:copy.end], round(copy.confidence, 4))

    def combine(self, readings: dict[str, list[dict[str, Span]]]) -> list[list[Span]]:
        """Per product, each attribute's value from the first member of its order that read one."""
        out = []
        for n in range(len(next(iter(readings.values())))):
            spans = []
            for a in sorted({a for r in readings.values() for a in r[n]}):
                found = [readings[m][n][a] for m, least in self.orders_.get(a, self.shared_order_)
                         if m in readings and a in readings[m][n] and readings[m][n][a].confidence >= least]
                spans += found[:1]
            out.append(sorted(spans, key=lambda s: (FIELDS.index(s.field), s.start, s.attribute)))
        return out

    def extract(self, products) -> list[list[Span]]:
        """The values stated in each product's text (a list per product, in text order; one per attribute)."""
        self._check_fitted()
        return self.combine(self.readings(products))

    def _choose(self, check) -> tuple[tuple, dict[str, tuple], dict]:
        """(shared order, {attribute: order}, what was measured) from the members' readings of ``check``; an
        order is ((member, least confidence), ...)."""
        members = self.members_
        candidates = orders(range(len(members)))
        if not check:
            return (("dictionary", 0.0),), {}, {}
        readings = self.readings(check)
        names = sorted({a for p in check for a in p.attributes} | {a for r in readings.values() for x in r for a in x})
        column = {a: i for i, a in enumerate(names)}
        # (members, attributes, products): confidence of the value read (-1: none), and whether it is right
        conf = np.full((len(members), len(names), len(check)), -1.0)
        hit = np.zeros(conf.shape, bool)
        for i, m in enumerate(members):
            for n, (p, found) in enumerate(zip(check, readings[m])):
                for a, span in found.items():
                    conf[i, column[a], n] = span.confidence
                    hit[i, column[a], n] = a in p.attributes and fold(p.attributes[a]) == fold(span.value)
        known = np.array([sum(a in p.attributes for p in check) for a in names], dtype=float)
        cells = known + (conf >= 0).any(0).sum(-1)
        rows = np.arange(len(names))

        def shared_or_own(gain: np.ndarray) -> np.ndarray:
            """(..., attributes) index of the best option (axis 0) for each attribute, its own gain smoothed by
            :attr:`prior_cells` pseudo-cells of the gain per cell of all attributes together."""
            return (gain + self.prior_cells * gain.sum(-1, keepdims=True) / max(1.0, cells.sum())).argmax(0)

        def gain(right: np.ndarray, wrong: np.ndarray) -> np.ndarray:
            """What values (right, wrong, per attribute) add to micro F1 (to first order, at the F1 reached)
            plus macro F1 (the attribute's own F1 over the number of attributes)."""
            micro = 2 / max(1.0, reached) * (right * (1 - f1 / 2) - wrong * f1 / 2)
            macro = 2 * right / np.maximum(1.0, right + wrong + known) / max(1, int((known > 0).sum()))
            return micro + self.macro_weight * macro

        dictionary = (hit[0].sum(-1), (~hit[0] & (conf[0] >= 0)).sum(-1))       # (A,) right, wrong
        f1 = dictionary_f1 = _f1(dictionary[0].sum(), dictionary[1].sum(), known.sum())
        reached = dictionary[0].sum() + dictionary[1].sum() + known.sum()      # tp + fp + known, F1's denominator
        for _ in range(3):                             # the gain depends on the F1 reached: settle it
            fires = conf[None] >= THRESHOLDS[:, None, None, None]                  # (thresholds, M, A, N)
            least = THRESHOLDS[shared_or_own(gain((fires & hit).sum(-1), (fires & ~hit).sum(-1)))]   # (M, A)
            on = conf >= least[..., None]
            right, wrong = np.zeros((len(candidates), len(names))), np.zeros((len(candidates), len(names)))
            for j, order in enumerate(candidates):
                taken = np.zeros(conf.shape[1:], bool)
                for i in order:
                    new = on[i] & ~taken
                    right[j] += (new & hit[i]).sum(-1)
                    wrong[j] += (new & ~hit[i]).sum(-1)
                    taken |= on[i]
            value = gain(right, wrong)                                            # (orders, A)
            pick = shared_or_own(value)
            f1 = _f1(right[pick, rows].sum(), wrong[pick, rows].sum(), known.sum())
            reached = right[pick, rows].sum() + wrong[pick, rows].sum() + known.sum()
        chosen = [tuple((members[i], float(least[i, k])) for i in candidates[j]) for k, j in enumerate(pick)]
        shared = tuple((members[i], 0.0) for i in candidates[int(value.sum(-1).argmax())])
        choice = {"f1": round(float(f1), 4), "dictionary_f1": round(float(dictionary_f1), 4),
                  "products": len(check)}
        return shared, dict(zip(names, chosen)), choice

    def _check_fitted(self) -> None:
        if not hasattr(self, "orders_"):
            from ..exceptions import NotFittedError

            raise NotFittedError("this CombinedExtractor is not fitted: call fit(...) or load(...) first")

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write ``config.json`` (orders), ``lexicon.json``, ``copier.json`` and the tagger in ``tagger/``, as one
        folder that replaces ``path`` whole (an extractor there, or nothing: see
        :func:`~kgattr.extract.extraction.check_target`)."""
        from ..io.outputs import staged_folder

        self._check_fitted()
        path = Path(path)
        check_target(path)
        with staged_folder(path) as tmp:
            if self.tagger_ is not None:
                self.tagger_.save(tmp / "tagger")
            (tmp / "lexicon.json").write_text(json.dumps(self.lexicon_.values))
            (tmp / "copier.json").write_text(json.dumps(self.copier_.get_state()))
            config = {"format": FORMAT, "kind": COMBINED_KIND, "params": {k: getattr(self, k) for k in self.PARAMS},
                      "tagger": self.tagger_ is not None, "shared_order": self.shared_order_,
                      "orders": self.orders_, "choice": self.choice_}
            (tmp / "config.json").write_text(json.dumps(config, indent=1))

    @classmethod
    def load(cls, path, *, device: str | None = None) -> "CombinedExtractor":
        from ..exceptions import KgattrError
        from .tagger import Extractor

        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise KgattrError(f"{path}: not an extractor directory ({exc})") from exc
        if config.get("kind") != COMBINED_KIND or config.get("format") != FORMAT:
            raise KgattrError(f"{path / 'config.json'}: not a kgattr combined extractor of format {FORMAT}")
        self = cls(**config["params"])
        self.lexicon_ = Lexicon(json.loads((path / "lexicon.json").read_text()))
        self.dictionary_ = DictionaryExtractor().fit([], sorted(self.lexicon_.values), self.lexicon_)
        self.copier_ = TextCopier.from_state(json.loads((path / "copier.json").read_text()))
        self.tagger_ = Extractor.load(path / "tagger", device=device) if config["tagger"] else None
        self.shared_order_ = tuple(map(tuple, config["shared_order"]))
        self.orders_ = {a: tuple(map(tuple, o)) for a, o in config["orders"].items()}
        self.choice_ = config["choice"]
        return self


def _f1(right: float, wrong: float, known: float) -> float:
    return 2 * right / max(1.0, right + wrong + known)


def load_extractor(path, *, progress: bool = False):
    """The extractor in directory ``path``: a :class:`CombinedExtractor`, or a tagger alone
    (:class:`~kgattr.extract.tagger.Extractor`, as written before the combined one)."""
    from .tagger import Extractor

    kind = saved_kind(path)                            # None: the loader says what is wrong
    extractor = CombinedExtractor.load(path) if kind == COMBINED_KIND else Extractor.load(path)
    tagger = extractor.tagger_ if kind == COMBINED_KIND else extractor
    if tagger is not None:
        tagger.progress = progress
    return extractor
