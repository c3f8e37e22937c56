"""An ontology induced from a catalog (:func:`induce_ontology`), and rules mined from one for experts to adopt
(:func:`suggest`): implications between values, attributes that must differ, allowed sets, attributes that do not
apply to a category; each with its support, confidence and the one command that adopts it."""
from __future__ import annotations

import datetime as _dt
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from ..exceptions import OntologyError
from .ontology import Ontology, Property, Shape, category_label, slug
from .rules import RuleSet


@dataclass(frozen=True)
class Suggestion:
    kind: str                           # implies | differs | allowed | not-applicable
    category: tuple[str, ...]
    attribute: str
    detail: str
    support: int                        # products the rule speaks about
    confidence: float                   # share of them that already follow it
    args: tuple[str, ...]               # the `kgattr rules add` arguments that adopt it

    @property
    def exceptions(self) -> int:
        """Existing values that would break it."""
        return round(self.support * (1 - self.confidence))

    def command(self, ontology: str = "ONTOLOGY.ttl") -> str:
        return " ".join(["kgattr", "rules", "add", *map(shlex.quote, self.args), "--ontology", shlex.quote(ontology)])

    def __str__(self) -> str:
        return (f"{self.kind}  {category_label(self.category)} / {self.attribute}: {self.detail}  "
                f"(support {self.support}, confidence {self.confidence:.3f}, {self.exceptions} exceptions)")


def _scope_args(path: tuple[str, ...]) -> tuple[str, ...]:
    return ("--category", " > ".join(path)) if path else ()


def induce_ontology(catalog, *, min_support: int = 1, max_unseen: float = 0.005,
                    max_equal: float = 0.02) -> Ontology:
    """Bootstrap from data: every observed category, the attributes seen in it, the values seen with it,
    the pairs of attributes whose values differ (see :func:`differing_attributes`) and the
    names that differ only in form, as ``skos:altLabel``s of the most used one (see
    :func:`name_variants`).

    Args:
        catalog: the :class:`~kgattr.io.catalog.Catalog` to read.
        min_support: a value enters a category's allowed set when seen at least this often there.
        max_unseen: an allowed set is written only where the data say it is closed: when the Good-Turing
            estimate of the chance that the next value is an unseen one (values seen once / cells), counting
            one value seen once more than the data show, is at most this. Otherwise the attribute applies with
            any value. The extra one keeps a few cells from passing for a closed set: two cells of one value
            have no value seen once, yet the next cell is often a new one (on 1,500 drawn JLCPCB parts, such
            sets rejected the true value of hidden cells and left one candidate, certain and wrong).
        max_equal: two attributes must differ when they are equal in at most this share of the products
            holding both.
    """
    categories: set[tuple[str, ...]] = set()
    seen: dict[tuple[str, ...], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for p in catalog:
        for depth in range(1, len(p.category) + 1):
            categories.add(p.category[:depth])
        for name, value in p.attributes.items():
            seen[p.category][name][value] += 1
    onto = Ontology(categories, {a for by_attr in seen.values() for a in by_attr})
    today = _dt.date.today().isoformat()
    for path, by_attr in sorted(seen.items()):
        if not path:
            continue
        shape = Shape(f"category/{slug('.'.join(path))}", path, closed=True, origin="induced", added=today)
        for name, counts in sorted(by_attr.items()):
            singletons = sum(1 for c in counts.values() if c == 1)
            closed = singletons + 1 <= max_unseen * (sum(counts.values()) + 1)
            values = frozenset(v for v, c in counts.items() if c >= min_support) if closed else None
            shape.properties[name] = Property(f"allowed/{slug('.'.join(path))}/{slug(name)}", values, max_count=1)
        onto.shapes.append(shape)
    onto.alt_labels = name_variants(Counter(a for p in catalog for a in p.attributes))
    for found in differing_attributes(catalog, max_equal=max_equal):
        rid = f"differs/all/{slug(found.attribute)}/{slug(found.other)}"
        onto.shapes.append(Shape(rid, (), properties={found.attribute: Property(rid, disjoint=frozenset({found.other}))},
                                 origin="induced", added=today))
    return onto


def suggest(catalog, ontology: Ontology | None = None, *, min_support: int = 50, min_confidence: float = 0.999,
            max_base_rate: float = 0.9) -> list[Suggestion]:
    """Rules the data of ``catalog`` support (implications, attributes that differ, allowed sets, attributes that
    do not apply; best supported first), less those ``ontology`` already has.

    Args:
        min_support: products a rule must speak about (for an implication: holding the condition and a value of
            the consequence's attribute); at least 1.
        min_confidence: share of those that must follow it already.
        max_base_rate: an implication into a value more common than this among all products of its scope is
            not worth a rule.
    """
    if not (isinstance(min_support, int) and min_support >= 1):
        raise OntologyError(f"--min-support: expected a whole number of products, at least 1, got {min_support!r}")
    for option, share in (("--min-confidence", min_confidence), ("max_base_rate", max_base_rate)):
        if not (isinstance(share, (int, float)) and 0 <= share <= 1):
            raise OntologyError(f"{option}: expected a share between 0 and 1, got {share!r}")
    ontology = ontology or induce_ontology(catalog)
    rules = RuleSet(ontology)
    out = _implications(catalog, ontology, min_support, min_confidence, max_base_rate)
    present = {(a, b) for s in ontology.shapes if not s.category for a, p in s.properties.items() for b in p.disjoint}
    out += [Suggestion("differs", (), d.attribute, f"{d.attribute} differs from {d.other} (equal by chance: "
                       f"{d.chance:.1%})", d.support, 1 - d.equal, ("differs", "--attribute", d.attribute, "--from", d.other))
            for d in differing_attributes(catalog, min_support=min_support)
            if (d.attribute, d.other) not in present and (d.other, d.attribute) not in present]
    out += _category_rules(catalog, rules, min_support, min_confidence)
    order = {"implies": 0, "differs": 1, "allowed": 2, "not-applicable": 3}
    return sorted(out, key=lambda s: (order[s.kind], -s.support, s.category, s.attribute, s.detail))


@dataclass(frozen=True)
class Differing:
    """Two attributes whose values (drawn from one vocabulary) a product almost never shares."""
    attribute: str                      # the one filled less often
    other: str
    support: int                        # products holding both
    equal: float                        # share of them where the two are equal
    chance: float                       # share expected if the two were independent


def differing_attributes(catalog, *, min_support: int = 100, max_equal: float = 0.02, max_ratio: float = 1 / 3,
                         min_chance: float = 0.02) -> list[Differing]:
    """Pairs of attributes that take the same values but differ within a product: a secondary colour is not the
    base colour. A pair qualifies when at least ``min_support`` products hold both, at most ``max_equal`` of them
    hold the same value in both, and that share is at most ``max_ratio`` of the share expected by chance
    (from each attribute's value frequencies), which is at least ``min_chance`` (else the rule would say little)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for p in catalog:
        for a, v in p.attributes.items():
            counts[a][v] += 1
    names = sorted(counts)
    shared = {(a, b) for i, a in enumerate(names) for b in names[i + 1:] if counts[a].keys() & counts[b].keys()}
    both, equal = Counter(), Counter()
    for p in catalog:
        held = sorted(p.attributes)
        for i, a in enumerate(held):
            for b in held[i + 1:]:
                if (a, b) in shared:
                    both[a, b] += 1
                    equal[a, b] += p.attributes[a] == p.attributes[b]
    out = []
    for (a, b), n in sorted(both.items()):
        na, nb = sum(counts[a].values()), sum(counts[b].values())
        chance = sum(counts[a][v] * counts[b][v] for v in counts[a].keys() & counts[b].keys()) / (na * nb)
        share = equal[a, b] / n
        if n >= min_support and share <= max_equal and chance >= min_chance and share <= max_ratio * chance:
            first, second = (a, b) if (na, a) <= (nb, b) else (b, a)
            out.append(Differing(first, second, n, share, chance))
    return out


def _implications(catalog, ontology, min_support, min_confidence, max_base_rate) -> list[Suggestion]:
    import scipy.sparse as sp

    index: dict[tuple[str, str], int] = {}
    rows, cols = [], []
    for i, p in enumerate(catalog):
        for item in p.attributes.items():
            rows.append(i)
            cols.append(index.setdefault(item, len(index)))
    pairs = list(index)
    names = sorted({a for a, _ in pairs})
    attr_of = np.array([names.index(a) for a, _ in pairs], dtype=np.int64)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(catalog), len(pairs)))
    has = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, attr_of[cols])), shape=(len(catalog), len(names)))
    present = {(c.category, c.condition, c.consequence) for c in ontology.conditionals if not c.excludes}
    by_scope = defaultdict(list)
    for i, p in enumerate(catalog):
        for depth in range(min(len(p.category), 2) + 1):
            by_scope[tuple(p.category[:depth])].append(i)
    found, out = set(), []
    for scope in sorted(by_scope, key=len):
        members = np.array(by_scope[scope])
        if len(members) < min_support:
            continue
        xs, hs = x[members], has[members]
        both = (xs.T @ xs).tocoo()                              # (values, values) products holding both
        with_attr = np.asarray((xs.T @ hs).todense())           # (values, attributes) holding v1 and some a2 value
        count, filled = np.asarray(xs.sum(0)).ravel(), np.asarray(hs.sum(0)).ravel()
        v1, v2, n = both.row, both.col, both.data
        support = with_attr[v1, attr_of[v2]]
        keep = (attr_of[v1] != attr_of[v2]) & (support >= min_support) & (n >= min_confidence * support) & \
            (count[v2] <= max_base_rate * np.maximum(filled[attr_of[v2]], 1))
        for a, b, s, k in zip(v1[keep], v2[keep], support[keep], n[keep]):
            cond, cons = pairs[a], pairs[b]
            if (cond, cons) in found or any((scope[:d], cond, cons) in present for d in range(len(scope) + 1)):
                continue
            found.add((cond, cons))
            out.append(Suggestion("implies", scope, cons[0], f"if {cond[0]} = {cond[1]} then {cons[0]} is {cons[1]}",
                                  int(s), float(k / s), ("implies", "--if", f"{cond[0]}={cond[1]}",
                                                         "--then", f"{cons[0]}={cons[1]}", *_scope_args(scope))))
    return out


def _category_rules(catalog, rules, min_support, min_confidence) -> list[Suggestion]:
    """Per leaf category: tighter allowed sets (rare values out), and attributes almost never filled there."""
    products: Counter = Counter()
    values: dict = defaultdict(lambda: defaultdict(Counter))
    everywhere: Counter = Counter()
    for p in catalog:
        products[p.category] += 1
        for a, v in p.attributes.items():
            values[p.category][a][v] += 1
            everywhere[a] += 1
    out = []
    for path, n in sorted(products.items()):
        if n < min_support or not path:
            continue
        for a in sorted(everywhere):
            if rules.applicable(path, a) is not None:
                continue
            counts = values[path].get(a, Counter())
            cells = sum(counts.values())
            if cells <= (1 - min_confidence) * n and everywhere[a] >= min_support:
                out.append(Suggestion("not-applicable", path, a, f"{a} does not apply", n, 1 - cells / n,
                                      ("not-applicable", "--attribute", a, *_scope_args(path))))
                continue
            if cells < min_support:
                continue
            common = sorted(v for v, c in counts.items() if c >= max(2, (1 - min_confidence) * cells / 10))
            covered = sum(counts[v] for v in common)
            current = rules.allowed_values(path, a)
            if covered >= min_confidence * cells and len(common) <= 50 and \
                    (current is None or len(current) > len(common)):
                out.append(Suggestion("allowed", path, a, "one of " + ", ".join(common), cells, covered / cells,
                                      ("allowed", "--attribute", a, "--values", ",".join(common), *_scope_args(path))))
    return out


def name_variants(counts: Counter, *, min_length: int = 4, max_inserted: int = 2) -> dict[str, frozenset[str]]:
    """Attribute names that differ only in form (``Color``, ``color``, ``Color(s)``, ``colour``): {the most used
    name: the others}.

    Two names are variants when their letters and digits, case-folded and without a plural ``s``, are equal,
    or one of them is the other with at most ``max_inserted`` letters inserted inside it (``color`` ->
    ``colour``); keys shorter than ``min_length`` must be equal. A substituted letter, and letters or digits
    added at either end, never match: ``Voltage - AC`` and ``Voltage - DC``, ``Power`` and ``Power (W)``,
    ``Fabric`` and ``Fabric 2`` stay apart.

    Args:
        counts: cells per attribute name.
    """
    import difflib
    import unicodedata

    def key(name: str) -> str:
        k = "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
        return k[:-1] if len(k) > min_length and k.endswith("s") else k

    def inserted(a: str, b: str) -> bool:            # b is a with a few letters inserted
        if not 0 < len(b) - len(a) <= max_inserted or len(a) < min_length:
            return False
        ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
        return all(op == "equal" or (op == "insert" and 0 < i < len(a) and b[j:k].isalpha())
                   for op, i, _, j, k in ops)

    groups: dict[str, list[str]] = defaultdict(list)
    for name in counts:
        groups[key(name)].append(name)
    keys = sorted(groups, key=len)
    parent = {k: k for k in keys}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if len(b) - len(a) > max_inserted:
                break
            if parent[b] == b and inserted(a, b):
                parent[b] = parent[a]
    merged: dict[str, list[str]] = defaultdict(list)
    for k, names in groups.items():
        merged[parent[k]] += names
    out = {}
    for names in merged.values():
        if len(names) > 1:
            main = max(names, key=lambda n: (counts[n], n))
            out[main] = frozenset(n for n in names if n != main)
    return out
