"""Rule checks: the ontology's SHACL shapes compiled into fast lookups, and pySHACL as the reference.

Semantics (the same in both): a product is checked against the rules of its category, of every ancestor
category and of every product. A closed shape makes attributes it does not list inapplicable, as does
``sh:maxCount 0``; ``sh:in`` restricts values, ``sh:pattern`` and ``sh:minInclusive``/``sh:maxInclusive`` check
them; ``sh:minCount 1`` makes an attribute required (a gap, reported by :meth:`RuleSet.missing`, not a broken
value); implications and exclusions relate two values of one product, and ``sh:disjoint`` makes two attributes of
one product differ (either may be the one that breaks it). A category without rules is unconstrained.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from ..exceptions import OntologyError
from .ontology import ATTRIBUTE, KG, PRODUCT, RULE, Conditional, Ontology, attribute_iri, category_iri, category_label
from .files import to_turtle
from .shacl import NUMBER


@dataclass(frozen=True)
class Violation:
    sku: str
    attribute: str
    value: str
    rule: str
    kind: str  # not-applicable | not-allowed | pattern | out-of-range | implies | excludes | differs | missing

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.sku}: {self.attribute} is missing, required by {self.rule}"
        return f"{self.sku}: {self.attribute}={self.value!r} breaks {self.rule} ({self.kind})"


# seconds one pattern match may take: a pattern that backtracks catastrophically ((a|aa)+$) fails instead of hanging
PATTERN_TIMEOUT = 1.0


@lru_cache(maxsize=1024)
def _regex(pattern: str):
    import regex

    return regex.compile(pattern)


def _matches(p, value: str) -> bool:
    """Whether the pattern of property shape ``p`` is found in ``value`` (with the `regex` module, whose patterns
    are Python's, and a time limit).

    Raises:
        OntologyError: naming the rule, when its pattern is malformed or a match takes over PATTERN_TIMEOUT.
    """
    import regex

    try:
        return _regex(p.pattern).search(value, timeout=PATTERN_TIMEOUT) is not None
    except TimeoutError:
        raise OntologyError(f"rule {p.id}: pattern {p.pattern!r} took over {PATTERN_TIMEOUT:g} s on the value "
                            f"{value[:60]!r}; write it without nested repetition such as (a+)+") from None
    except (regex.error, ValueError, OverflowError, RecursionError) as e:
        raise OntologyError(f"rule {p.id}: malformed pattern {p.pattern!r}: {str(e).splitlines()[0]}") from None


class _Compiled:
    """The rules that bear on one category: closed shapes, per-attribute property constraints, conditionals."""

    def __init__(self, category: tuple[str, ...], scopes: dict):
        shapes, conditionals = [], []
        for depth in range(len(category) + 1):
            found = scopes.get(category[:depth], ([], []))
            shapes += found[0]
            conditionals += found[1]
        self.closed = [s for s in shapes if s.closed]
        self.props: dict[str, list] = defaultdict(list)          # attribute -> [Property, ...]
        for s in shapes:
            for name, p in s.properties.items():
                self.props[name].append(p)
        self.conditionals: dict[str, list[Conditional]] = defaultdict(list)
        for c in conditionals:
            self.conditionals[c.condition[0]].append(c)
            if c.consequence[0] != c.condition[0]:
                self.conditionals[c.consequence[0]].append(c)
        self.all_conditionals = conditionals
        # every (attribute, rule id) that requires a value, as SHACL reports each shape; by attribute, the nearest
        self.requirements = [(name, p.id) for name, ps in self.props.items() for p in ps if p.min_count >= 1]
        self.required = dict(self.requirements)
        # sh:disjoint, from both sides: attribute -> [(rule id, the attribute it must differ from)]
        self.disjoint = [(p.id, name, other) for name, ps in self.props.items() for p in ps for other in p.disjoint]
        self.differs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for rid, a, b in self.disjoint:
            self.differs[a].append((rid, b))
            self.differs[b].append((rid, a))


class RuleSet:
    """Compiled rules: ``check(category, attribute, value)`` in O(depth) dictionary lookups."""

    def __init__(self, ontology: Ontology):
        self.ontology = ontology
        self._scopes: dict[tuple[str, ...], tuple[list, list]] = defaultdict(lambda: ([], []))
        for s in ontology.shapes:
            self._scopes[s.category][0].append(s)
        for c in ontology.conditionals:
            self._scopes[c.category][1].append(c)
        self._cache: dict[tuple[str, ...], _Compiled] = {}

    def _compiled(self, category) -> _Compiled:
        category = tuple(category)
        if category not in self._cache:
            self._cache[category] = _Compiled(category, self._scopes)
        return self._cache[category]

    def _breaks(self, category, attribute: str, value: str, known: dict | None = None):
        """Every (rule id, kind) that ``attribute = value`` breaks; with ``known`` (the product's other values)
        implications and exclusions too."""
        c = self._compiled(category)
        for shape in c.closed:
            if attribute not in shape.properties:
                yield shape.id, "not-applicable"
        for p in c.props.get(attribute, ()):
            if p.max_count == 0:
                yield p.id, "not-applicable"
            if p.values is not None and value not in p.values:
                yield p.id, "not-allowed"
            if p.pattern is not None and not _matches(p, value):
                yield p.id, "pattern"
            if p.low is not None or p.high is not None:
                x = float(value) if NUMBER.fullmatch(value) else None
                if x is None or (p.low is not None and x < p.low) or (p.high is not None and x > p.high):
                    yield p.id, "out-of-range"
        if known is not None:
            yield from self._conflicts(c, attribute, value, {**known, attribute: value})

    def _conflicts(self, c: _Compiled, attribute: str, value: str, values: dict):
        """Every (rule id, kind) of the implications, exclusions and sh:disjoint that ``attribute = value`` breaks
        in a product holding ``values`` (``value`` among them)."""
        for rule in c.conditionals.get(attribute, ()):
            if rule.broken_by(values):
                yield rule.id, rule.kind
        for rid, other in c.differs.get(attribute, ()):
            if other != attribute and values.get(other) == value:
                yield rid, "differs"

    def check(self, category, attribute: str, value: str, known: dict | None = None) -> Violation | None:
        """The first rule that ``attribute = value`` breaks for a product of ``category`` (holding ``known``
        besides), or None."""
        for rule, kind in self._breaks(category, attribute, value, known):
            return Violation("", attribute, value, rule, kind)
        return None

    def conflict_free(self, category, attribute: str, values: list[str], known: dict) -> list[bool]:
        """Per value of ``values`` for ``attribute``: whether it breaks no implication, exclusion or sh:disjoint
        beside ``known`` (the product's other values). :meth:`check` less the checks of the value alone, for values
        that passed them."""
        c, held, out = self._compiled(category), dict(known), []
        for value in values:
            held[attribute] = value
            out.append(next(self._conflicts(c, attribute, value, held), None) is None)
        return out

    def conditional(self, category, attribute: str) -> bool:
        """Whether a value of ``attribute`` in ``category`` can depend on the product's other values."""
        c = self._compiled(category)
        return bool(c.conditionals.get(attribute) or c.differs.get(attribute))

    def explain(self, category, attribute: str, value: str, known: dict | None = None) -> list[dict]:
        """Every rule checked for ``attribute = value``: [{rule, kind, passed}]."""
        c = self._compiled(category)
        broken = {rule for rule, _ in self._breaks(category, attribute, value, known)}
        checked = [(s.id, "applicable") for s in c.closed]
        checked += [(p.id, p.describe(limit=8)) for p in c.props.get(attribute, ())]
        if known is not None:
            checked += [(r.id, r.describe()) for r in c.conditionals.get(attribute, ())]
            checked += [(rid, f"differs from {other}") for rid, other in c.differs.get(attribute, ())]
        return [{"rule": rid, "says": says, "passed": rid not in broken} for rid, says in checked]

    def applicable(self, category, attribute: str) -> str | None:
        """The id of the rule that makes ``attribute`` inapplicable to ``category``, or None."""
        c = self._compiled(category)
        for shape in c.closed:
            if attribute not in shape.properties:
                return shape.id
        for p in c.props.get(attribute, ()):
            if p.max_count == 0:
                return p.id
        return None

    def allowed_values(self, category, attribute: str) -> frozenset[str] | None:
        """Values ``attribute`` may take in ``category`` by its ``sh:in`` lists (None: any value); empty when
        inapplicable."""
        if self.applicable(category, attribute) is not None:
            return frozenset()
        result = None
        for p in self._compiled(category).props.get(attribute, ()):
            if p.values is not None:
                result = p.values if result is None else result & p.values
        return result

    def required(self, category) -> dict[str, str]:
        """{attribute: rule id} of the attributes required in ``category``."""
        return self._compiled(category).required

    def violations(self, catalog) -> list[Violation]:
        """Every existing value of ``catalog`` that breaks a rule (compiled, for bulk use)."""
        out = []
        for p in catalog:
            for name, value in p.attributes.items():
                out += [Violation(p.sku, name, value, rule, kind) for rule, kind in self._breaks(p.category, name, value)]
            c = self._compiled(p.category)
            for rule in c.all_conditionals:
                if rule.broken_by(p.attributes):
                    name = rule.consequence[0]
                    out.append(Violation(p.sku, name, p.attributes[name], rule.id, rule.kind))
            out += [Violation(p.sku, a, p.attributes[a], rid, "differs") for rid, a, b in c.disjoint
                    if a in p.attributes and p.attributes.get(b) == p.attributes[a]]
        return out

    def missing(self, catalog) -> list[Violation]:
        """Every required attribute that a product of ``catalog`` lacks, once per rule requiring it."""
        return [Violation(p.sku, name, "", rule, "missing") for p in catalog
                for name, rule in self._compiled(p.category).requirements if name not in p.attributes]


@dataclass(frozen=True)
class RuleInfo:
    """One rule as an expert reads it."""
    id: str
    kind: str       # applicable | not-applicable | required | allowed | pattern | range | differs | single-valued
                    # | implies | excludes
    category: tuple[str, ...]
    attribute: str | None
    detail: str
    origin: str
    added: str

    def __str__(self) -> str:
        where = category_label(self.category) + (f" / {self.attribute}" if self.attribute else "")
        made = ", ".join(x for x in (self.origin, self.added) if x)
        return f"{self.id}  {self.kind}  {where}: {self.detail}" + (f"  ({made})" if made else "")


def _kind(p) -> str:
    if p.max_count == 0:
        return "not-applicable"
    if p.min_count:
        return "required"
    if p.values is not None:
        return "allowed"
    if p.pattern is not None:
        return "pattern"
    if p.low is not None or p.high is not None:
        return "range"
    if p.disjoint:
        return "differs"
    return "single-valued"


def list_rules(ontology: Ontology, *, category: str | None = None, attribute: str | None = None) -> list[RuleInfo]:
    """The rules of ``ontology``: one per property shape and conditional, one per closed category shape.

    Args:
        category: only this category, named by its path (``Apparel > Topwear``) or its own name (``Topwear``).
        attribute: only rules on this attribute; a closed shape that leaves it out is listed as
            ``not-applicable``.
    """
    def wanted(path) -> bool:
        return category is None or category in (" > ".join(path), path[-1] if path else "")

    out = []
    for shape in sorted(ontology.shapes, key=lambda s: (s.category, s.id)):
        if not wanted(shape.category):
            continue
        made = (shape.origin, shape.added)
        if shape.closed and attribute is None:
            out.append(RuleInfo(shape.id, "applicable", shape.category, None,
                                "only " + ", ".join(sorted(shape.properties)), *made))
        elif shape.closed and attribute not in shape.properties:
            out.append(RuleInfo(shape.id, "not-applicable", shape.category, attribute,
                                "the category's shape is closed and does not list it", *made))
        for name, p in sorted(shape.properties.items()):
            if attribute is None or name == attribute:
                out.append(RuleInfo(p.id, _kind(p), shape.category, name, p.describe(), *made))
    for rule in sorted(ontology.conditionals, key=lambda c: (c.category, c.id)):
        if wanted(rule.category) and attribute in (None, rule.condition[0], rule.consequence[0]):
            out.append(RuleInfo(rule.id, rule.kind, rule.category, rule.consequence[0], rule.describe(),
                                rule.origin, rule.added))
    return out


def to_rdf(catalog, ontology: Ontology):
    """The catalog as an RDF data graph: one node per product typed with its category class."""
    from urllib.parse import quote

    from rdflib import RDF, RDFS, Graph, Literal, URIRef

    from .shacl import value_term

    g = Graph()
    sku_prop = URIRef(KG + "sku")
    paths = set(ontology.categories) | {tuple(p.category) for p in catalog}
    for path in {path[:d] for path in paths for d in range(2, len(path) + 1)}:
        g.add((URIRef(category_iri(path)), RDFS.subClassOf, URIRef(category_iri(path[:-1]))))
    for p in catalog:
        node = URIRef(PRODUCT + quote(p.sku, safe=""))
        g.add((node, sku_prop, Literal(p.sku)))
        if p.category:
            g.add((node, RDF.type, URIRef(category_iri(tuple(p.category)))))
        for name, value in p.attributes.items():
            g.add((node, URIRef(attribute_iri(name)), value_term(value)))
    return g


_COMPONENT_KIND = {"Closed": "not-applicable", "MaxCount": "not-applicable", "In": "not-allowed",
                   "Pattern": "pattern", "MinInclusive": "out-of-range", "MaxInclusive": "out-of-range",
                   "Or": "implies", "Not": "excludes", "Disjoint": "differs", "MinCount": "missing"}


def shacl_violations(catalog, ontology: Ontology, shapes_graph=None) -> list[Violation]:
    """Reference check with pySHACL (slow: for tests, audits and small catalogs); missing required values
    come out with kind ``missing``."""
    from urllib.parse import unquote

    import pyshacl
    from rdflib import RDF, Graph
    from rdflib.namespace import SH

    if shapes_graph is None:
        shapes_graph = Graph().parse(data=to_turtle(ontology), format="turtle")
    products = {p.sku: p for p in catalog}
    consequence = {c.id: c.consequence[0] for c in ontology.conditionals}
    _, report, _ = pyshacl.validate(to_rdf(catalog, ontology), shacl_graph=shapes_graph, inference="none",
                                    allow_warnings=True)
    out = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        sku = unquote(str(report.value(result, SH.focusNode))[len(PRODUCT):])
        shape = str(report.value(result, SH.sourceShape))
        rule = shape[len(RULE):] if shape.startswith(RULE) else shape
        component = str(report.value(result, SH.sourceConstraintComponent))
        kind = _COMPONENT_KIND[component[len(str(SH)):-len("ConstraintComponent")]]
        path = report.value(result, SH.resultPath)
        attr = unquote(str(path)[len(ATTRIBUTE):]) if path is not None else consequence[rule]
        value = "" if kind == "missing" else products[sku].attributes.get(attr, "")
        out.append(Violation(sku, attr, value, rule, kind))
    return out
