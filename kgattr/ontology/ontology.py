"""The product ontology: category taxonomy, attributes, and SHACL shapes for the rules.

One Turtle file holds all three, written as readable blocks so experts can review it as a diff:
categories are ``rdfs:Class`` nodes linked by ``rdfs:subClassOf``. Rules are SHACL shapes of a few forms,
each read back into a :class:`Shape` or a :class:`Conditional`:

- a category block (``sh:NodeShape``, usually ``sh:closed``): the attributes that apply to the category, each a
  property shape with its allowed values (``sh:in``) and ``sh:maxCount 1``; ``kgattr ontology induce`` writes these;
- a one-attribute rule (``sh:PropertyShape`` with its own target): allowed values, required (``sh:minCount 1``),
  not applicable (``sh:maxCount 0``), a pattern (``sh:pattern``), a numeric range (``sh:minInclusive`` /
  ``sh:maxInclusive``), or a value that must differ from another attribute's (``sh:disjoint``);
- an implication (``sh:or`` of "not the condition" and "the consequence") or an exclusion (``sh:not`` of both).

A rule targets a category class (and so its subcategories) or, with ``sh:targetSubjectsOf kg:sku``, every product.
Numbers are written bare (``2012``, not ``"2012"``) so that range rules compare them as numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

KG = "https://kgattr.org/ontology#"
CATEGORY = "https://kgattr.org/category/"
ATTRIBUTE = "https://kgattr.org/attribute/"
PRODUCT = "https://kgattr.org/product/"
RULE = "https://kgattr.org/rule/"

PREFIXES = f"""@prefix kg: <{KG}> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""

def category_iri(path: tuple[str, ...]) -> str:
    return CATEGORY + "/".join(quote(level, safe="") for level in path)


def attribute_iri(name: str) -> str:
    return ATTRIBUTE + quote(name, safe="")


def number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


def category_label(path: tuple[str, ...]) -> str:
    return " > ".join(path) if path else "every product"


@dataclass(frozen=True)
class Property:
    """The constraints of one property shape on one attribute."""
    id: str
    values: frozenset[str] | None = None       # sh:in; None: any value
    min_count: int = 0                         # sh:minCount 1: required
    max_count: int | None = None               # sh:maxCount 0: not applicable, 1: single-valued
    pattern: str | None = None                 # sh:pattern, a regular expression searched in the value
    low: float | None = None                   # sh:minInclusive
    high: float | None = None                  # sh:maxInclusive
    disjoint: frozenset[str] = frozenset()     # sh:disjoint: attributes whose value this one must differ from

    def describe(self, limit: int | None = None) -> str:
        """In words; ``limit``: name at most this many allowed values."""
        parts = []
        if self.max_count == 0:
            parts.append("does not apply")
        if self.min_count:
            parts.append("required")
        if self.values is not None:
            shown = sorted(self.values)[:limit]
            more = f", … ({len(self.values)} in all)" if len(shown) < len(self.values) else ""
            parts.append("one of " + ", ".join(shown) + more)
        if self.pattern is not None:
            parts.append(f"matches /{self.pattern}/")
        if self.low is not None or self.high is not None:
            parts.append(f"a number in [{'' if self.low is None else number_text(self.low)}, "
                         f"{'' if self.high is None else number_text(self.high)}]")
        if self.disjoint:
            parts.append("differs from " + ", ".join(sorted(self.disjoint)))
        if self.max_count == 1:
            parts.append("at most one value")
        return ", ".join(parts) or "any value"


@dataclass
class Shape:
    """Rules on attributes of products of ``category`` (and its subcategories; ``()``: every product)."""
    id: str
    category: tuple[str, ...]
    closed: bool = False                       # attributes not in ``properties`` do not apply
    properties: dict[str, Property] = field(default_factory=dict)
    origin: str = ""                           # who or what wrote it ("induced", "expert: Ana", ...)
    added: str = ""                            # ISO date

    @property
    def standalone(self) -> bool:
        """A one-attribute rule written as a single property shape with its own target."""
        return not self.closed and len(self.properties) == 1 and next(iter(self.properties.values())).id == self.id


@dataclass(frozen=True)
class Conditional:
    """``if condition then consequence`` (an implication) or ``if condition then not consequence`` (an
    exclusion) between two attribute values of one product. An implication holds when the consequence's
    attribute is absent: it constrains the value, it does not require one."""
    id: str
    category: tuple[str, ...]
    condition: tuple[str, str]                 # (attribute, value)
    consequence: tuple[str, str]
    excludes: bool = False
    origin: str = ""
    added: str = ""

    @property
    def kind(self) -> str:
        return "excludes" if self.excludes else "implies"

    def describe(self) -> str:
        (a1, v1), (a2, v2) = self.condition, self.consequence
        return f"if {a1} = {v1} then {a2} {'is not' if self.excludes else 'is'} {v2}"

    def broken_by(self, values: dict[str, str]) -> bool:
        """Whether a product holding ``values`` breaks the rule."""
        (a1, v1), (a2, v2) = self.condition, self.consequence
        if values.get(a1) != v1 or a2 not in values:
            return False
        return (values[a2] == v2) if self.excludes else (values[a2] != v2)


@dataclass
class Ontology:
    categories: set[tuple[str, ...]] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    shapes: list[Shape] = field(default_factory=list)
    conditionals: list[Conditional] = field(default_factory=list)
    # (rule id, why) of shapes that pySHACL checks but kgattr's compiled checks do not understand
    uncompiled: list[tuple[str, str]] = field(default_factory=list)
    # the files it was read from, so that a model reads its rules afresh at each use
    sources: tuple[str, ...] = field(default=(), compare=False)
    # skos:altLabel: other names of an attribute (proposed by induce where names differ only in form)
    alt_labels: dict[str, frozenset[str]] = field(default_factory=dict)

    def rule_ids(self) -> set[str]:
        """Every id a rule or a part of one goes by."""
        ids = {s.id for s in self.shapes} | {p.id for s in self.shapes for p in s.properties.values()}
        return ids | {c.id for c in self.conditionals} | {rid for rid, _ in self.uncompiled}

    def merge(self, other: "Ontology") -> "Ontology":
        """The union of two ontologies' taxonomies, attributes and rules (``other``'s rules win on equal ids)."""
        ids = other.rule_ids()
        return Ontology(self.categories | other.categories, self.attributes | other.attributes,
                        [s for s in self.shapes if s.id not in ids] + other.shapes,
                        [c for c in self.conditionals if c.id not in ids] + other.conditionals,
                        [u for u in self.uncompiled if u[0] not in ids] + other.uncompiled,
                        alt_labels={a: self.alt_labels.get(a, frozenset()) | other.alt_labels.get(a, frozenset())
                                    for a in self.alt_labels.keys() | other.alt_labels.keys()})

    def to_json(self) -> dict:
        def prop(p: Property) -> dict:
            return {**p.__dict__, "values": None if p.values is None else sorted(p.values),
                    "disjoint": sorted(p.disjoint)}

        return {"categories": sorted(map(list, self.categories)), "attributes": sorted(self.attributes),
                "shapes": [{**s.__dict__, "properties": {a: prop(p) for a, p in s.properties.items()}}
                           for s in self.shapes],
                "conditionals": [c.__dict__ for c in self.conditionals], "uncompiled": self.uncompiled,
                "alt_labels": {a: sorted(v) for a, v in sorted(self.alt_labels.items())}}

    @classmethod
    def from_json(cls, d: dict) -> "Ontology":
        def prop(p: dict) -> Property:
            return Property(**{**p, "values": None if p["values"] is None else frozenset(p["values"]),
                               "disjoint": frozenset(p["disjoint"])})

        shapes = [Shape(**{**s, "category": tuple(s["category"]),
                           "properties": {a: prop(p) for a, p in s["properties"].items()}}) for s in d["shapes"]]
        conditionals = [Conditional(**{**c, "category": tuple(c["category"]), "condition": tuple(c["condition"]),
                                       "consequence": tuple(c["consequence"])}) for c in d["conditionals"]]
        return cls({tuple(c) for c in d["categories"]}, set(d["attributes"]), shapes, conditionals,
                   [tuple(u) for u in d["uncompiled"]],
                   alt_labels={a: frozenset(v) for a, v in d["alt_labels"].items()})
