"""Values copied from a product's own text: the open-vocabulary member of the mix.

Technical catalogs state many values in the title or description, often in another form than the attribute
holds them (text ``450mΩ`` for ``450mR``, ``200mA`` for ``200 mA``) and often values never seen in training.
A :class:`TextCopier` learns per attribute *copy rules* from the products whose value it knows: a span of one
to three words whose numbers equal the value's numbers (or, without numbers, whose words equal the value) gives
the rule "span shape -> value shape", keyed by the span's shape (numbers replaced by ``#``), its word count and
its place among the product's spans of that shape (the second ``#A`` of a description is often another
current than the first). Applied to a new product, a rule writes the span's numbers into the value shape, so a
value never seen in training is filled when the text states it, and the span is its evidence.

Where a value and a span state one quantity in different units (``0.1uF`` for ``100nF``, ``2 Terabytes`` for
``2TB``), the rule converts the span's quantity into the value's unit (units read by ``pint``); and a value
equal as a quantity to a known value of its attribute is written as that known value, so that ``2TB``,
``2 TB`` and ``2 terabytes`` are one value.

Each rule's precision is counted on the training products (how often the value it writes is the true one),
smoothed towards the precision of all rules, and mapped to a calibrated confidence by a logistic fit on
out-of-fold estimates (folds of products), so that a rule's confidence is never measured on the products it
was learned from. A rule is counted apart where the value it writes is a known one of its quantity and where it
is not (each count smoothed towards the rule's whole), and a product's own value is never what makes it known:
a rule converting ``410uA`` into ``0.41mA`` is right where the catalog knows that quantity as ``0.41mA``, and
wrong for a quantity it has not seen, whose value the catalog writes as the text does (on 1,500 drawn JLCPCB
parts such copies were 0.97 confident and 0.89 right while the product's own value counted as known).
"""
from __future__ import annotations

import re
from array import array
from functools import lru_cache
from itertools import islice
from collections import Counter, defaultdict
from typing import NamedTuple

import numpy as np

from .extraction import FIELDS
from .platt import apply, logit, platt

SPAN_WORD = re.compile(r"[^\s,;]+")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(\s?)([^\d\s]+)")
CONVERT = "\x00"          # marks a value shape that converts the span's quantity into the value's unit
CODE = "\x01"             # marks a span key by character classes (``STHK498`` -> ``A9``), and the shape "copy it"
LETTER = re.compile(r"[^\W\d_]")
CHAR_CLASS = re.compile(r"[^\W\d_]+|\d+|.", re.UNICODE)
MAX_WORDS = 3
MAX_PLACE = 3            # places beyond the third share one key
FOLDS = 5


class Copy(NamedTuple):
    """A value written from a span of a product's text, with its calibrated confidence and where it was read."""
    value: str
    confidence: float
    field: str
    start: int
    end: int


@lru_cache(maxsize=1 << 16)          # words recur from product to product
def shape(text: str) -> tuple[str, tuple[str, ...]]:
    """(shape, numbers): ``text`` with each number replaced by ``#``, and the numbers as written."""
    return NUMBER.sub("#", text), tuple(NUMBER.findall(text))


def span_kinds(keys) -> tuple[set, set]:
    """What :func:`spans` needs to read only the spans of ``keys`` (span keys): their (shape, words), and the
    first words of those shapes of more than one word."""
    kinds = {key[:2] for key in keys}
    return kinds, {SPAN_WORD.match(form)[0] for form, words in kinds if words > 1}


def spans(product, description_words: int, only: tuple[set, set] | None = None) \
        -> list[tuple[tuple, str, int, int, tuple[str, ...]]]:
    """Spans of 1..MAX_WORDS words of the title and the first ``description_words`` words of the description:
    [(key, field, start, end, numbers)], key = (shape, words, place); a span without numbers is keyed by its
    case-folded words. ``only``: from :func:`span_kinds`, the spans of those kinds alone (None: every span); a
    span's place counts the spans of its own kind, so it is the same either way."""
    kinds, heads = only or (None, None)
    out, places = [], Counter()
    for field, limit in (("title", None), ("description", description_words)):
        text = getattr(product, field) or ""
        words = [w.span() for w in islice(SPAN_WORD.finditer(text), limit)]
        # a span's shape and numbers are its words' joined by the text between them (no digits there)
        read = [shape(text[start:end]) for start, end in words]
        for i, (start, end) in enumerate(words):
            form, numbers = read[i]
            folded = form.casefold()
            if numbers and LETTER.search(text[start:end]):            # a code: copied as it stands
                code = CODE + CHAR_CLASS.sub(_char_class, text[start:end])
                code = code if kinds is None or (code, 1) in kinds else None
            else:
                code = None
            last = i + MAX_WORDS if heads is None or form in heads or folded in heads else i + 1
            for j in range(i, min(last, len(words))):
                if j > i:
                    form, numbers = form + text[words[j - 1][1]:words[j][0]] + read[j][0], numbers + read[j][1]
                kind = (form, j - i + 1) if numbers else (folded if j == i else form.casefold(), j - i + 1)
                if kinds is None or kind in kinds:
                    place = places[kind] = places[kind] + 1
                    out.append(((*kind, min(place, MAX_PLACE)), field, start, words[j][1], numbers))
                if i == j and code is not None:
                    place = places[code] = places[code] + 1
                    out.append(((code, 1, min(place, MAX_PLACE)), field, start, end, ()))
    return out


def _char_class(m: re.Match) -> str:
    """A run of upper-case letters ``A``, lower-case ``a``, digits ``9``; any other character as it is."""
    ch = m[0][0]
    return "A" if ch.isupper() else "a" if ch.islower() else "9" if ch.isdigit() else m[0]


def fill(value_shape: str, numbers: tuple[str, ...], span: str = "") -> str | None:
    """``value_shape`` with its ``#`` replaced by ``numbers`` in order; a :data:`CONVERT` shape writes the
    quantity ``span`` states in its unit (None: ``span`` states none)."""
    if value_shape == CODE:
        return span
    if value_shape.startswith(CONVERT):
        sep, unit = value_shape[1], value_shape[2:]
        q, target = quantity(span), _unit(unit)
        if q is None or target is None or q[1] != target[1]:
            return None
        return f"{q[0] / target[0]:.6g}{' ' if sep == ' ' else ''}{unit}"
    parts = value_shape.split("#")
    return "".join(p + n for p, n in zip(parts, numbers + ("",)))


@lru_cache(maxsize=8192)
def _unit(text: str) -> tuple[float, str] | None:
    """(factor to base units, dimensionality) of a unit as written (None: not a unit pint knows)."""
    registry = _registry()
    for form in dict.fromkeys((text, text.casefold())):
        try:
            base = registry.Quantity(1.0, registry.parse_units(form)).to_base_units()
        except Exception:                     # pint raises many kinds for what is not a unit
            continue
        return float(base.magnitude), str(base.units)
    return None


@lru_cache(maxsize=1)
def _registry():
    import logging

    import pint

    # pint logs every unit name it can read two ways (``mcd``: milli-candela or micro-day); the first reading is
    # the one used and the list is no news to the user
    logging.getLogger("pint.util").setLevel(logging.ERROR)
    return pint.UnitRegistry()


def quantity(text: str) -> tuple[float, str] | None:
    """(magnitude in base units, dimensionality) of a number followed by a unit, e.g. ``5.6uH`` (None: not one)."""
    m = QUANTITY.fullmatch(text)
    if m is None or m[3][0] in "%-+~±@#":
        return None
    unit = _unit(m[3])
    return None if unit is None else (float(m[1]) * unit[0], unit[1])


def _same(a: tuple[float, str] | None, b: tuple[float, str] | None) -> bool:
    return a is not None and b is not None and a[1] == b[1] and abs(a[0] - b[0]) <= 1e-9 * max(abs(a[0]), abs(b[0]))


def _key(q: tuple[float, str]) -> str:
    return f"{q[0]:.9g} {q[1]}"


def _both(rule: tuple) -> tuple[tuple, tuple]:
    """A rule's two counts' keys, (span key, attribute, value shape, writes a known value): False, then True."""
    return (*rule[:3], False), (*rule[:3], True)


def _most_common(forms: Counter) -> str | None:
    """The form written most often (the first seen of a tie; None: none)."""
    top = forms.most_common(1)
    return top[0][0] if top else None


class TextCopier:
    """Copy rules per attribute, their precision and a calibration (see the module docstring).

    Args:
        description_words: words of the description read (the title is read whole).
        smoothing: pseudo-firings of the prior precision added to each rule's counts.
        seed: for the folds.
    """

    def __init__(self, description_words: int = 64, smoothing: float = 2.0, seed: int = 0):
        self.description_words = description_words
        self.smoothing = smoothing
        self.seed = seed

    def fit(self, products, attributes: list[str], heldout=None) -> "TextCopier":
        """Learn the rules of ``attributes`` from ``products``; ``heldout_`` holds out-of-fold copies of their
        known values: {(product row, attribute): (Copy, correct)}, of the cells ``heldout`` (None: every cell)."""
        self.attributes_ = list(attributes)
        wanted = set(attributes)
        # each product's spans are read twice, once for the rules and once for their firings, never held for the
        # whole catalog (hundreds of tuples a product: 8 GB at 200,000 products)
        rules = defaultdict(set)                               # span key -> {(attribute, value shape)}
        units = defaultdict(lambda: defaultdict(Counter))      # attribute -> quantity -> {value as written: n}
        for p in products:
            found = spans(p, self.description_words)
            by_numbers, codes = defaultdict(list), defaultdict(list)
            for key, field, start, end, numbers in found:
                if key[0].startswith(CODE):
                    codes[getattr(p, field)[start:end]].append(key)
                else:
                    by_numbers[numbers or key[0]].append(key)
            stated = None
            for a, v in p.attributes.items():
                if a in wanted:
                    form, numbers = shape(v)
                    for key in by_numbers.get(numbers or v.casefold(), ()):
                        rules[key].add((a, form if numbers else v))
                    for key in codes.get(v, ()):
                        rules[key].add((a, CODE))
                    q = quantity(v)
                    if q is not None:
                        units[a][_key(q)][v] += 1
                        if stated is None:
                            stated = [(key, quantity(getattr(p, field)[start:end]))
                                      for key, field, start, end, _ in found if key[1] <= 2]
                        m = QUANTITY.fullmatch(v)
                        rules.update({key: rules[key] | {(a, CONVERT + (m[2] or "_") + m[3])}
                                      for key, sq in stated if _same(q, sq) and key not in by_numbers.get(numbers, ())})
        self.rules_ = {k: sorted(v) for k, v in rules.items()}
        self.kinds_ = span_kinds(self.rules_)        # what copies reads: the spans rules key on
        self.known_ = {a: {q: _most_common(forms) for q, forms in by_q.items()} for a, by_q in units.items()}
        # (attribute, quantity, value) -> the quantity's known form without that one value (None: no other)
        without = {(a, q, v): _most_common(forms - Counter({v: 1}))
                   for a, by_q in units.items() for q, forms in by_q.items() for v in forms}
        fold = np.random.default_rng(self.seed).permutation(len(products)) % FOLDS
        fired, right = Counter(), Counter()                   # (rule, fold) -> firings, right ones
        # the firings that write a value, as columns (a million products fire tens of millions of times)
        rule_ids, value_ids = {}, {}                          # rule -> id, value -> id
        rows, rule_of, value_of, good, place = array("q"), array("q"), array("q"), array("b"), array("q")
        for row, p in enumerate(products):
            for key, field, start, end, numbers in spans(p, self.description_words, self.kinds_):
                for a, form in self.rules_.get(key, ()):
                    if a in p.attributes:
                        # written as a new product would see it: the catalog's forms less this product's value
                        value, known = self._fill(a, form, numbers, getattr(p, field)[start:end],
                                                  without=(p.attributes[a], without))
                        ok = value == p.attributes[a]
                        rule = (key, a, form, known)
                        fired[rule, fold[row]] += 1
                        right[rule, fold[row]] += ok
                        if value is not None:
                            rows.append(row)
                            rule_of.append(rule_ids.setdefault(rule, len(rule_ids)))
                            value_of.append(value_ids.setdefault(value, len(value_ids)))
                            good.append(ok)
                            place.extend((FIELDS.index(field), start, end))
        total_fired, total_right = Counter(), Counter()
        for (rule, _), n in fired.items():
            total_fired[rule] += n
            total_right[rule] += right[rule, _]
        self.prior_ = sum(total_right.values()) / max(sum(total_fired.values()), 1)
        self.stats_ = {r: (total_fired[r], total_right[r]) for r in total_fired}
        # out-of-fold precision of each (rule, fold), NaN for a rule learned in that fold only
        precision = np.full((len(rule_ids), FOLDS), np.nan)
        for rule, r in rule_ids.items():
            for f in range(FOLDS):
                counts = [(total_fired[x] - fired[x, f], total_right[x] - right[x, f]) for x in _both(rule)]
                if counts[0][1] + counts[1][1]:
                    precision[r, f] = self._precision(counts, rule[3])
        rows, rule_of = np.frombuffer(rows, np.int64), np.frombuffer(rule_of, np.int64)
        quality = precision[rule_of, fold[rows]]                                      # (firings,)
        attribute = np.array([self.attributes_.index(rule[1]) for rule in rule_ids], np.int64)[rule_of]
        # the best copy per known cell: the most precise firing, the first of equals; cells in the order first fired
        fires = np.flatnonzero(~np.isnan(quality))
        cell = rows[fires] * len(self.attributes_) + attribute[fires]
        order = np.lexsort((fires, -quality[fires], cell))
        fires, cell = fires[order], cell[order]
        first = np.diff(cell, prepend=-1) != 0                                       # each cell's best firing
        best = fires[first]
        if len(best):
            best = best[np.argsort(np.minimum.reduceat(fires, np.flatnonzero(first)), kind="stable")]
        correct = np.frombuffer(good, np.int8)[best].astype(bool)
        self.calibration_ = platt(logit(quality[best]), correct)
        conf = self._calibrate(quality[best])
        values, place = list(value_ids), np.frombuffer(place, np.int64).reshape(-1, 3)
        wanted = None if heldout is None else set(heldout)
        self.heldout_ = {}
        for i, q, ok in zip(best.tolist(), conf.tolist(), correct.tolist()):
            at = (int(rows[i]), self.attributes_[attribute[i]])
            if wanted is None or at in wanted:
                field, start, end = place[i].tolist()
                self.heldout_[at] = (Copy(values[value_of[i]], q, FIELDS[field], start, end), ok)
        return self

    def _fill(self, attribute: str, form: str, numbers: tuple[str, ...], span: str,
              without: tuple[str, dict] | None = None) -> tuple[str | None, bool]:
        """(value, known): the value a rule writes (None: none), as the attribute's known value of that quantity
        where there is one, and whether there is. ``without``: (a product's own value, the fit's forms without
        one value), to leave that value out of what is known."""
        value = fill(form, numbers, span)
        forms = self.known_.get(attribute)
        q = quantity(value) if forms and value else None
        if q is None:
            return value, False
        key = _key(q)
        if without is not None and (attribute, key, without[0]) in without[1]:
            written = without[1][attribute, key, without[0]]
        else:
            written = forms.get(key)
        return (value, False) if written is None else (written, True)

    def _precision(self, counts: list[tuple[int, int]], known: bool) -> float:
        """A rule's precision where it writes a known value (``known``), or a new one, from its (firings, right ones)
        ``counts`` [writing a new value, a known one] (see :func:`_both`): those of its kind smoothed towards its
        precision over both, itself smoothed towards the prior of all rules."""
        fired, right = (sum(x) for x in zip(*counts))
        overall = (right + self.smoothing * self.prior_) / (fired + self.smoothing)
        return (counts[known][1] + self.smoothing * overall) / (counts[known][0] + self.smoothing)

    def _calibrate(self, precision: np.ndarray) -> np.ndarray:
        return apply(self.calibration_, precision)

    def copies(self, product, attributes) -> dict[str, Copy]:
        """The best copy of each of ``attributes`` that ``product``'s text gives (attributes without one are left
        out)."""
        wanted = set(attributes)
        best = {}
        for key, field, start, end, numbers in spans(product, self.description_words, self.kinds_):
            for a, form in self.rules_.get(key, ()):
                if a in wanted:
                    value, known = self._fill(a, form, numbers, getattr(product, field)[start:end])
                    if value is not None:
                        precision = self._precision([self.stats_.get(r, (0, 0)) for r in _both((key, a, form, known))],
                                                    known)
                        if precision > best.get(a, (None, -1.0))[1]:
                            best[a] = ((value, field, start, end), precision)
        if not best:
            return {}
        conf = self._calibrate(np.array([p for _, p in best.values()]))
        return {a: Copy(c[0], float(q), *c[1:]) for (a, (c, _)), q in zip(best.items(), conf)}

    # ---- persistence: plain JSON-able state ---------------------------------------------------------
    def get_state(self) -> dict:
        return {"description_words": self.description_words, "smoothing": self.smoothing, "prior": self.prior_,
                "attributes": self.attributes_, "known": self.known_,
                "calibration": list(self.calibration_),
                "rules": [[list(key), a, form, known, *self.stats_[key, a, form, known]]
                          for key, found in self.rules_.items() for a, form in found for known in (False, True)
                          if (key, a, form, known) in self.stats_]}

    @classmethod
    def from_state(cls, state: dict) -> "TextCopier":
        self = cls(state["description_words"], state["smoothing"])
        self.prior_, self.calibration_ = state["prior"], tuple(state["calibration"])
        self.attributes_, self.known_ = state["attributes"], state["known"]
        self.rules_, self.stats_ = defaultdict(list), {}
        for key, a, form, known, fired, right in state["rules"]:
            key = tuple(key)
            if (a, form) not in self.rules_[key]:
                self.rules_[key].append((a, form))
            self.stats_[key, a, form, known] = (fired, right)
        self.rules_ = dict(self.rules_)
        self.kinds_ = span_kinds(self.rules_)
        return self


def copy_gate(copier: TextCopier, rows: np.ndarray, attributes: list[str], confidence: np.ndarray,
              correct: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Where copies beat the mix, judged on the mix's held-out cells.

    A copy replaces the mix's value when it is more confident; an attribute takes copies when doing so leaves at
    least as many of its held-out cells right as the mix alone.

    Args:
        rows: (c,) product row of each held-out cell; attributes: (c,) its attribute.
        confidence, correct: (c,) the mix's confidence and outcome on it.

    Returns:
        (attributes that take copies, (c,) bool where a copy is taken, and (c,) confidence and outcome with
        copies where they are taken).
    """
    taken = np.zeros(len(rows), bool)
    copy_conf, copy_right = confidence.copy(), correct.copy()
    for i, cell in enumerate(zip(rows.tolist(), attributes)):
        found = copier.heldout_.get(cell)
        if found is not None and found[0].confidence > confidence[i]:
            taken[i], copy_conf[i], copy_right[i] = True, found[0].confidence, found[1]
    names = np.array(attributes, dtype=object)
    enabled = [a for a in sorted(set(copier.attributes_)) if
               copy_right[names == a].sum() >= correct[names == a].sum()]
    use = taken & np.isin(names, enabled)
    return enabled, use, np.where(use, copy_conf, confidence), np.where(use, copy_right, correct)
