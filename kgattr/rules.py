"""Rule checks: SHACL shapes of the ontology compiled into fast lookups, and pySHACL as the reference.

Semantics (the same in both): a product is checked against the shapes of its category and of every
ancestor category. A closed shape makes attributes it does not list inapplicable; an ``sh:in`` list
restricts values; ``sh:maxCount 1`` makes the attribute single-valued. A category without shapes is
unconstrained.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ontology import ATTRIBUTE, CATEGORY, KG, PRODUCT, RULE, Ontology, attribute_iri, category_iri


@dataclass(frozen=True)
class Violation:
    sku: str
    attribute: str
    value: str
    rule: str
    kind: str  # "not-applicable" | "not-allowed"

    def __str__(self) -> str:
        return f"{self.sku}: {self.attribute}={self.value!r} breaks {self.rule} ({self.kind})"


class RuleSet:
    """Compiled rules: ``check(category, attribute, value)`` in O(depth) dictionary lookups."""

    def __init__(self, ontology: Ontology):
        self.ontology = ontology
        self._cache: dict[tuple[str, ...], tuple[list, dict]] = {}

    def _constraints(self, category: tuple[str, ...]):
        # (closed shapes along the path, {attribute: [(rule id, allowed values), ...]})
        if category not in self._cache:
            closed, allowed = [], {}
            for depth in range(1, len(category) + 1):
                shape = self.ontology.shapes.get(category[:depth])
                if shape is None:
                    continue
                if shape.closed:
                    closed.append(shape)
                for name, (rid, values) in shape.properties.items():
                    if values is not None:
                        allowed.setdefault(name, []).append((rid, values))
            self._cache[category] = (closed, allowed)
        return self._cache[category]

    def applicable(self, category: tuple[str, ...], attribute: str) -> str | None:
        """The id of the rule that makes ``attribute`` inapplicable to ``category``, or None."""
        for shape in self._constraints(tuple(category))[0]:
            if attribute not in shape.properties:
                return shape.id
        return None

    def check(self, category: tuple[str, ...], attribute: str, value: str) -> Violation | None:
        """The first rule that ``attribute = value`` breaks for a product of ``category``, or None."""
        rid = self.applicable(category, attribute)
        if rid is not None:
            return Violation("", attribute, value, rid, "not-applicable")
        for rid, values in self._constraints(tuple(category))[1].get(attribute, ()):
            if value not in values:
                return Violation("", attribute, value, rid, "not-allowed")
        return None

    def allowed_values(self, category: tuple[str, ...], attribute: str) -> frozenset[str] | None:
        """Values ``attribute`` may take in ``category`` (None: any value); empty when inapplicable."""
        if self.applicable(category, attribute) is not None:
            return frozenset()
        result = None
        for _, values in self._constraints(tuple(category))[1].get(attribute, ()):
            result = values if result is None else result & values
        return result

    def violations(self, catalog) -> list[Violation]:
        """Every existing value of ``catalog`` that breaks a rule (compiled, for bulk use)."""
        out = []
        for p in catalog:
            for name, value in p.attributes.items():
                v = self.check(p.category, name, value)
                if v is not None:
                    out.append(Violation(p.sku, name, value, v.rule, v.kind))
        return out


@dataclass(frozen=True)
class RuleInfo:
    """One rule as an expert reads it."""
    id: str
    kind: str                   # "applicable" | "not-applicable" | "allowed" | "single-valued"
    category: tuple[str, ...]
    attribute: str | None
    detail: str
    origin: str
    added: str

    def __str__(self) -> str:
        where = " > ".join(self.category) + (f" / {self.attribute}" if self.attribute else "")
        made = ", ".join(x for x in (self.origin, self.added) if x)
        return f"{self.id}  {self.kind}  {where}: {self.detail}" + (f"  ({made})" if made else "")


def list_rules(ontology: Ontology, *, category: str | None = None, attribute: str | None = None) -> list[RuleInfo]:
    """The rules of ``ontology``, one per property shape, plus one per closed category shape.

    Args:
        category: only this category, named by its path (``Apparel > Topwear``) or its own name (``Topwear``).
        attribute: only rules on this attribute; a closed shape that leaves it out is listed as
            ``not-applicable``.
    """
    out = []
    for path, shape in sorted(ontology.shapes.items()):
        if category is not None and category not in (" > ".join(path), path[-1]):
            continue
        made = (shape.origin, shape.added)
        if shape.closed and attribute is None:
            out.append(RuleInfo(shape.id, "applicable", path, None,
                                "only " + ", ".join(sorted(shape.properties)), *made))
        elif shape.closed and attribute not in shape.properties:
            out.append(RuleInfo(shape.id, "not-applicable", path, attribute, "the category's shape is closed "
                                "and does not list it", *made))
        for name, (rid, values) in sorted(shape.properties.items()):
            if attribute is not None and name != attribute:
                continue
            if values is None:
                out.append(RuleInfo(rid, "single-valued", path, name, "any value, at most one", *made))
            else:
                out.append(RuleInfo(rid, "allowed", path, name, "one of " + ", ".join(sorted(values)), *made))
    return out


def to_rdf(catalog, ontology: Ontology):
    """The catalog as an RDF data graph: one node per product typed with its category class."""
    from rdflib import RDF, RDFS, Graph, Literal, URIRef
    from urllib.parse import quote

    g = Graph()
    sku_prop = URIRef(KG + "sku")
    for path in ontology.categories:
        if len(path) > 1:
            g.add((URIRef(category_iri(path)), RDFS.subClassOf, URIRef(category_iri(path[:-1]))))
    for p in catalog:
        node = URIRef(PRODUCT + quote(p.sku, safe=""))
        g.add((node, sku_prop, Literal(p.sku)))
        if p.category:
            g.add((node, RDF.type, URIRef(category_iri(tuple(p.category)))))
        for name, value in p.attributes.items():
            g.add((node, URIRef(attribute_iri(name)), Literal(value)))
    return g


def shacl_violations(catalog, ontology: Ontology, shapes_graph=None) -> list[Violation]:
    """Reference check with pySHACL (slow: for tests, audits and small catalogs)."""
    import pyshacl
    from rdflib import Graph, URIRef
    from rdflib.namespace import SH
    from urllib.parse import unquote

    if shapes_graph is None:
        shapes_graph = Graph().parse(data=ontology.to_turtle(), format="turtle")
    data = to_rdf(catalog, ontology)
    _, report, _ = pyshacl.validate(data, shacl_graph=shapes_graph, inference="none", allow_warnings=True)
    out = []
    for result in report.subjects(URIRef(str(SH) + "resultPath"), None):
        focus = str(report.value(result, SH.focusNode))
        attr = str(report.value(result, SH.resultPath))
        value = report.value(result, SH.value)
        shape = str(report.value(result, SH.sourceShape))
        component = str(report.value(result, SH.sourceConstraintComponent))
        kind = "not-applicable" if component.endswith("ClosedConstraintComponent") else "not-allowed"
        out.append(Violation(unquote(focus[len(PRODUCT):]), unquote(attr[len(ATTRIBUTE):]),
                             str(value) if value is not None else "",
                             shape[len(RULE):] if shape.startswith(RULE) else shape, kind))
    return out
