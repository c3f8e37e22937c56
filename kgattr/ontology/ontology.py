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

import dataclasses
import datetime as _dt
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..exceptions import OntologyError

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

    @classmethod
    def induce(cls, catalog, *, min_support: int = 1, max_unseen: float = 0.005,
               max_equal: float = 0.02) -> "Ontology":
        """Bootstrap from data: every observed category, the attributes seen in it, the values seen with it,
        the pairs of attributes whose values differ (see :func:`~kgattr.ontology.mining.differing_attributes`) and the
        names that differ only in form, as ``skos:altLabel``s of the most used one (see
        :func:`~kgattr.ontology.mining.name_variants`).

        Args:
            catalog: the :class:`~kgattr.io.catalog.Catalog` to read.
            min_support: a value enters a category's allowed set when seen at least this often there.
            max_unseen: an allowed set is written only where the data say it is closed: when the Good-Turing
                estimate of the chance that the next value is an unseen one (values seen once / cells) is at
                most this. Otherwise the attribute applies with any value.
            max_equal: two attributes must differ when they are equal in at most this share of the products
                holding both.
        """
        from .mining import differing_attributes, name_variants

        categories: set[tuple[str, ...]] = set()
        seen: dict[tuple[str, ...], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        for p in catalog:
            for depth in range(1, len(p.category) + 1):
                categories.add(p.category[:depth])
            for name, value in p.attributes.items():
                seen[p.category][name][value] += 1
        onto = cls(categories, {a for by_attr in seen.values() for a in by_attr})
        today = _dt.date.today().isoformat()
        for path, by_attr in sorted(seen.items()):
            if not path:
                continue
            shape = Shape(f"category/{slug('.'.join(path))}", path, closed=True, origin="induced", added=today)
            for name, counts in sorted(by_attr.items()):
                singletons = sum(1 for c in counts.values() if c == 1)
                closed = singletons <= max_unseen * sum(counts.values())
                values = frozenset(v for v, c in counts.items() if c >= min_support) if closed else None
                shape.properties[name] = Property(f"allowed/{slug('.'.join(path))}/{slug(name)}", values, max_count=1)
            onto.shapes.append(shape)
        onto.alt_labels = name_variants(Counter(a for p in catalog for a in p.attributes))
        for found in differing_attributes(catalog, max_equal=max_equal):
            rid = f"differs/all/{slug(found.attribute)}/{slug(found.other)}"
            onto.shapes.append(Shape(rid, (), properties={found.attribute: Property(rid, disjoint=frozenset({found.other}))},
                                     origin="induced", added=today))
        return onto

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

    def to_turtle(self, *, source: str = "", origin: str = "induced") -> str:
        """Readable Turtle: taxonomy first, then one commented block per rule (or category block)."""
        from rdflib import Literal

        from .shacl import conditional_block, shape_block

        today = _dt.date.today().isoformat()
        out = [PREFIXES, f"# kgattr ontology{f' induced from {source}' if source else ''}.",
               "# Edit freely: each block below is one category's rules or one rule; `kgattr rules` keeps hand edits.",
               "", "# --- categories ---"]
        for path in sorted(self.categories):
            parent = f" ;\n    rdfs:subClassOf <{category_iri(path[:-1])}>" if len(path) > 1 else ""
            out.append(f"<{category_iri(path)}> a rdfs:Class, kg:Category ;\n    rdfs:label {Literal(path[-1]).n3()}{parent} .")
        out += ["", "# --- attributes ---"]
        for name in sorted(self.attributes):
            alt = "".join(f" ;\n    skos:altLabel {Literal(a).n3()}" for a in sorted(self.alt_labels.get(name, ())))
            out.append(f"<{attribute_iri(name)}> a rdf:Property, kg:Attribute ; rdfs:label {Literal(name).n3()}{alt} .")
        for shape in sorted(self.shapes, key=lambda s: (s.category, not s.closed, s.id)):
            out += ["", shape_block(shape, origin=shape.origin or origin, added=shape.added or today).rstrip("\n")]
        for rule in sorted(self.conditionals, key=lambda c: (c.category, c.id)):
            out += ["", conditional_block(rule).rstrip("\n")]
        return "\n".join(out) + "\n"

    def save(self, path, **kwargs) -> None:
        from ..io.outputs import atomic_write

        text = self.to_turtle(**kwargs)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, *paths) -> "Ontology":
        """Read one or more Turtle files as one ontology; an error names the file and, for syntax, the line.

        The parsed form is cached by the files' content hash, so unchanged files load in milliseconds; a damaged
        cache file is set aside (``*.damaged``) and rebuilt.
        """
        import hashlib

        from ..io.inputs import file_label, read_input
        from ..io.outputs import atomic_write
        from ..text.encoder import default_cache_dir
        from .shacl import parse_turtle

        digest = hashlib.sha1()
        for path in paths:
            digest.update(read_input(path, OntologyError) + b"\0")
        sources = tuple(str(Path(p).resolve()) for p in paths)
        cached = default_cache_dir() / f"ontology-v5-{digest.hexdigest()}.json"
        onto = _from_cache(cached)
        if onto is None:
            onto = cls.from_graph(parse_turtle(*paths), ", ".join(map(file_label, paths)))
            body = json.dumps(onto.to_json())
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(cached, lambda tmp: tmp.write_text(_checksum(body) + "\n" + body, encoding="utf-8"))
            except OSError:
                pass                                 # a read-only cache only costs speed
        return dataclasses.replace(onto, sources=sources)

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

    @classmethod
    def from_graph(cls, graph, where: str = "<graph>") -> "Ontology":
        from .shacl import GraphReader

        return GraphReader(graph, where).ontology()


def _checksum(body: str) -> str:
    import hashlib

    return hashlib.sha1(body.encode("utf-8")).hexdigest()


def _from_cache(path: Path) -> Ontology | None:
    """The ontology a cache file holds (its first line the checksum of the rest); None when there is none or it is
    damaged, which is then moved aside to ``*.damaged`` for the caller to rebuild."""
    try:
        checksum, _, body = path.read_text(encoding="utf-8").partition("\n")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):                    # unreadable, or not UTF-8: damaged
        checksum, body = "", ""
    try:
        if checksum == _checksum(body):
            return Ontology.from_json(json.loads(body))
    except Exception:  # a body of another shape fails in many ways; all only cost a rebuild
        pass
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except OSError:
        pass
    return None
