"""SHACL in Turtle: the blocks kgattr writes for each rule form, and the reader that turns a graph back into
an :class:`~kgattr.ontology.Ontology` (the forms are listed in the ontology module's docstring)."""
from __future__ import annotations

import datetime as _dt
import re
from urllib.parse import unquote

from .exceptions import OntologyError
from .ontology import (ATTRIBUTE, CATEGORY, KG, RULE, Conditional, Ontology, Property, Shape, attribute_iri,
                       category_iri, category_label, number_text)

# canonical integers and decimals only: other spellings ("007", "1.50") would not read back unchanged
NUMBER = re.compile(r"-?(0|[1-9]\d{0,17})(\.\d*[1-9])?")


def value_term(value: str):
    """The RDF literal of an attribute value: numbers typed (range rules compare them), the rest plain strings."""
    from rdflib import XSD, Literal

    if NUMBER.fullmatch(value):
        return Literal(value, datatype=XSD.decimal if "." in value else XSD.integer)
    return Literal(value)


def value_n3(value: str) -> str:
    from rdflib import Literal

    return value if NUMBER.fullmatch(value) else Literal(value).n3()


def parse_turtle(*paths, graph=None):
    """One rdflib graph of the Turtle files ``paths`` (added to ``graph`` when given); a syntax error is an
    OntologyError naming file and line."""
    from rdflib import Graph

    graph = Graph() if graph is None else graph
    for path in paths:
        try:
            graph.parse(str(path), format="turtle")
        except FileNotFoundError:
            raise OntologyError(f"{path}: no such file") from None
        except Exception as e:  # rdflib raises several parser types; all mean a broken file
            raise OntologyError(syntax_error(path, e)) from None
    return graph


def syntax_error(path, error: Exception) -> str:
    """``FILE:LINE: what is wrong`` from an rdflib parser error."""
    text = str(error)
    line = re.search(r"at line (\d+)", text)
    why = re.search(r"Bad syntax \(([^)]*)\)", text)
    detail = f"bad Turtle syntax ({why.group(1)})" if why else text.splitlines()[0][:300] if text else type(error).__name__
    return f"{path}:{line.group(1)}: {detail}" if line else f"{path}: {detail}"


def _target(category: tuple[str, ...]) -> str:
    return f"sh:targetClass <{category_iri(category)}>" if category else "sh:targetSubjectsOf kg:sku"


def _constraints(name: str, p: Property) -> list[str]:
    from rdflib import Literal

    out = [f"sh:path <{attribute_iri(name)}>"]
    if p.min_count:
        out.append(f"sh:minCount {p.min_count}")
    if p.max_count is not None:
        out.append(f"sh:maxCount {p.max_count}")
    if p.values is not None:
        out.append("sh:in ( " + " ".join(value_n3(v) for v in sorted(p.values)) + " )")
    if p.pattern is not None:
        out.append(f"sh:pattern {Literal(p.pattern).n3()}")
    if p.low is not None:
        out.append(f"sh:minInclusive {number_text(p.low)}")
    if p.high is not None:
        out.append(f"sh:maxInclusive {number_text(p.high)}")
    out += [f"sh:disjoint <{attribute_iri(other)}>" for other in sorted(p.disjoint)]
    return out


def shape_block(shape: Shape, *, origin: str = "", added: str = "") -> str:
    """The Turtle block of a category's rules, or of a one-attribute rule."""
    from rdflib import Literal

    made = (f"    kg:origin {Literal(shape.origin or origin).n3()} ; "
            f"kg:added {Literal(shape.added or added or _dt.date.today().isoformat()).n3()} ;")
    where = category_label(shape.category)
    if shape.standalone:
        (name, p), = shape.properties.items()
        body = " ;\n    ".join(_constraints(name, p))
        return (f"# {shape.id}: {name} of {where}: {p.describe()}\n"
                f"<{RULE}{shape.id}> a sh:PropertyShape ;\n{made}\n    {_target(shape.category)} ;\n    {body} .\n")
    out = [f"# rules of {where}: the attributes that apply, their allowed values, one value each",
           f"<{RULE}{shape.id}> a sh:NodeShape ;", made, f"    {_target(shape.category)} ;",
           f"    sh:closed {'true' if shape.closed else 'false'} ;", "    sh:ignoredProperties ( rdf:type kg:sku ) ;"]
    props = [f"<{RULE}{p.id}>" for p in shape.properties.values()]
    out.append(f"    sh:property {', '.join(props)} ." if props else "    .")
    for name, p in sorted(shape.properties.items()):
        out.append(f"<{RULE}{p.id}> a sh:PropertyShape ;\n    " + " ;\n    ".join(_constraints(name, p)) + " .")
    return "\n".join(out) + "\n"


def conditional_block(rule: Conditional) -> str:
    """The Turtle block of an implication (``sh:or``: not the condition, or the consequence) or an exclusion
    (``sh:not`` of both)."""
    from rdflib import Literal

    (a1, v1), (a2, v2) = rule.condition, rule.consequence
    cond = f"[ sh:path <{attribute_iri(a1)}> ; sh:hasValue {value_n3(v1)} ]"
    if rule.excludes:
        body = f"sh:not [ sh:and ( {cond}\n        [ sh:path <{attribute_iri(a2)}> ; sh:hasValue {value_n3(v2)} ] ) ]"
    else:
        body = f"sh:or ( [ sh:not {cond} ]\n        [ sh:path <{attribute_iri(a2)}> ; sh:in ( {value_n3(v2)} ) ] )"
    return (f"# {rule.id}: {rule.describe()}, for {category_label(rule.category)}\n"
            f"<{RULE}{rule.id}> a sh:NodeShape ;\n"
            f"    kg:origin {Literal(rule.origin).n3()} ; kg:added {Literal(rule.added).n3()} ;\n"
            f"    {_target(rule.category)} ;\n    {body} .\n")


def rule_block(rule: Shape | Conditional) -> str:
    """The Turtle block of any rule (see :func:`shape_block` and :func:`conditional_block`)."""
    return conditional_block(rule) if isinstance(rule, Conditional) else shape_block(rule)


class GraphReader:
    """Reads the rule forms of the module docstring out of an rdflib graph; other shapes are listed as uncompiled."""

    # predicates the compiled checks understand (or that carry no constraint)
    PROPERTY_KEYS = {"path", "in", "minCount", "maxCount", "pattern", "minInclusive", "maxInclusive", "disjoint",
                     "name", "description", "message", "severity", "targetClass", "targetSubjectsOf", "order"}

    def __init__(self, graph, where: str):
        from rdflib.namespace import SH

        self.g, self.where, self.SH = graph, where, SH

    def path_of(self, iri) -> tuple[str, ...]:
        s = str(iri)
        if not s.startswith(CATEGORY):
            raise OntologyError(f"{self.where}: {s} is not a kgattr category IRI")
        return tuple(unquote(part) for part in s[len(CATEGORY):].split("/"))

    def name_of(self, iri) -> str:
        s = str(iri)
        if not s.startswith(ATTRIBUTE):
            raise OntologyError(f"{self.where}: {s} is not a kgattr attribute IRI")
        return unquote(s[len(ATTRIBUTE):])

    @staticmethod
    def rule_id(node) -> str:
        return str(node)[len(RULE):] if str(node).startswith(RULE) else str(node)

    def made(self, node) -> dict:
        from rdflib import URIRef

        return {"origin": str(self.g.value(node, URIRef(KG + "origin")) or ""),
                "added": str(self.g.value(node, URIRef(KG + "added")) or "")}

    def scope(self, node) -> tuple[str, ...] | None:
        from rdflib import URIRef

        target = self.g.value(node, self.SH.targetClass)
        if target is not None:
            return self.path_of(target)
        if self.g.value(node, self.SH.targetSubjectsOf) == URIRef(KG + "sku"):
            return ()
        return None

    def prop(self, node) -> tuple[str, Property]:
        from rdflib.collection import Collection

        g, SH = self.g, self.SH
        extra = {str(p)[len(str(SH)):] for p in g.predicates(node) if str(p).startswith(str(SH))} - self.PROPERTY_KEYS
        if extra:
            raise ValueError("uses " + ", ".join(f"sh:{e}" for e in sorted(extra)))
        if g.value(node, SH.path) is None:
            raise ValueError(f"{self.rule_id(node)} has no sh:path")
        in_list = g.value(node, SH["in"])
        number = (lambda key: None if g.value(node, SH[key]) is None else float(g.value(node, SH[key]).toPython()))
        count = g.value(node, SH.maxCount)
        return self.name_of(g.value(node, SH.path)), Property(
            self.rule_id(node),
            frozenset(str(v) for v in Collection(g, in_list)) if in_list is not None else None,
            int(g.value(node, SH.minCount) or 0), None if count is None else int(count),
            None if g.value(node, SH.pattern) is None else str(g.value(node, SH.pattern)),
            number("minInclusive"), number("maxInclusive"),
            frozenset(self.name_of(o) for o in g.objects(node, SH.disjoint)))

    def path_value(self, node, key) -> tuple[str, str]:
        from rdflib.collection import Collection

        value = self.g.value(node, self.SH[key])
        if key == "in":
            items = list(Collection(self.g, value)) if value is not None else []
            value = items[0] if len(items) == 1 else None
        if value is None or self.g.value(node, self.SH.path) is None:
            raise ValueError("is not an implication or exclusion kgattr can read")
        return self.name_of(self.g.value(node, self.SH.path)), str(value)

    def conditional(self, node, category) -> Conditional:
        from rdflib.collection import Collection

        g, SH = self.g, self.SH
        either, neither = g.value(node, SH["or"]), g.value(node, SH["not"])
        if either is not None:
            first, second = (list(Collection(g, either)) + [None, None])[:2]
            inner = g.value(first, SH["not"]) if first is not None else None
            if inner is None or second is None:
                raise ValueError("is not an implication kgattr can read")
            return Conditional(self.rule_id(node), category, self.path_value(inner, "hasValue"),
                               self.path_value(second, "in"), False, **self.made(node))
        both = list(Collection(g, g.value(neither, SH["and"]))) if g.value(neither, SH["and"]) is not None else []
        if len(both) != 2:
            raise ValueError("is not an exclusion kgattr can read")
        return Conditional(self.rule_id(node), category, self.path_value(both[0], "hasValue"),
                           self.path_value(both[1], "hasValue"), True, **self.made(node))

    def ontology(self) -> Ontology:
        from rdflib import RDF, URIRef

        g, SH = self.g, self.SH
        onto = Ontology()
        onto.categories = {self.path_of(c) for c in g.subjects(RDF.type, URIRef(KG + "Category"))}
        onto.attributes = {self.name_of(a) for a in g.subjects(RDF.type, URIRef(KG + "Attribute"))}
        nodes = set(g.subjects(RDF.type, SH.NodeShape)) | set(g.subjects(RDF.type, SH.PropertyShape))
        for node in sorted(nodes, key=str):
            has_target = any(str(p).startswith(str(SH) + "target") for p in g.predicates(node))
            if not has_target:
                continue                              # a property shape of a category block, read with it
            category = self.scope(node)
            rid = self.rule_id(node)
            try:
                if category is None:
                    raise ValueError("has a target other than a category class or every product")
                if g.value(node, SH.path) is not None:
                    name, p = self.prop(node)
                    onto.shapes.append(Shape(rid, category, False, {name: p}, **self.made(node)))
                elif g.value(node, SH["or"]) is not None or g.value(node, SH["not"]) is not None:
                    onto.conditionals.append(self.conditional(node, category))
                else:
                    closed = g.value(node, SH.closed)
                    shape = Shape(rid, category, bool(closed is not None and closed.toPython()), **self.made(node))
                    for member in g.objects(node, SH.property):
                        name, p = self.prop(member)
                        shape.properties[name] = p
                    onto.shapes.append(shape)
            except ValueError as e:
                onto.uncompiled.append((rid, str(e)))
        onto.shapes.sort(key=lambda s: (s.category, s.id))
        onto.conditionals.sort(key=lambda c: (c.category, c.id))
        for rule in onto.shapes + onto.conditionals:
            for depth in range(1, len(rule.category) + 1):
                onto.categories.add(rule.category[:depth])
        return onto
