"""SHACL in Turtle: the blocks kgattr writes for each rule form, and the reader that turns a graph back into
an :class:`~kgattr.ontology.ontology.Ontology` (the forms are listed in the ontology module's docstring)."""
from __future__ import annotations

import datetime as _dt
import re
from urllib.parse import unquote

from ..exceptions import OntologyError
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
    """One rdflib graph of the Turtle files ``paths`` (added to ``graph`` when given); an unreadable file or a syntax
    error is an OntologyError naming the file and line."""
    from pathlib import Path

    from rdflib import Graph

    from ..io.inputs import decode_text, encodable, file_label, read_input

    graph = Graph() if graph is None else graph
    for path in paths:
        text = decode_text(read_input(path, OntologyError), file_label(path), OntologyError)
        try:
            graph.parse(data=text, format="turtle", publicID=Path(path).resolve().as_uri())
        except Exception as e:  # rdflib raises several parser types; all mean a broken file
            raise OntologyError(syntax_error(file_label(path), e)) from None
        # a \uD800 escape reads as a lone surrogate, which no file can hold
        bad = next((t for triple in graph for t in triple if not str(t).isascii() and not encodable(str(t))), None)
        if bad is not None:
            raise OntologyError(f"{file_label(path)}: {str(bad)[:60]!r}: not valid Unicode text (a lone surrogate)")
    return graph


def syntax_error(path, error: Exception) -> str:
    """``FILE:LINE: what is wrong`` from an rdflib parser error."""
    text = str(error)
    line = re.search(r"at line (\d+)", text)
    why = re.search(r"Bad syntax \(([^)]*)\)", text)
    detail = f"bad Turtle syntax ({why.group(1) if why else (text.splitlines() or [type(error).__name__])[0][:300]})"
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
    """Reads the rule forms of the module docstring out of an rdflib graph; other shapes are listed as uncompiled.

    A shape of a form the compiled checks cannot read (several values where one is meant, a literal where a number
    is, a broken RDF list) is listed as uncompiled; names that are not kgattr IRIs are OntologyErrors.
    """

    # predicates the compiled checks understand (or that carry no constraint)
    PROPERTY_KEYS = {"path", "in", "minCount", "maxCount", "pattern", "minInclusive", "maxInclusive", "disjoint",
                     "name", "description", "message", "severity", "targetClass", "targetSubjectsOf", "order"}

    def __init__(self, graph, where: str):
        from rdflib.namespace import SH

        self.g, self.where, self.SH = graph, where, SH

    def _iri_parts(self, iri, base: str, what: str) -> list[str]:
        from rdflib import URIRef

        s = str(iri)
        parts = [unquote(part) for part in s[len(base):].split("/")] if s.startswith(base) else []
        if not isinstance(iri, URIRef) or not parts or not all(p.strip() for p in parts):
            raise OntologyError(f"{self.where}: {s!r} is not a kgattr {what} IRI")
        return parts

    def path_of(self, iri) -> tuple[str, ...]:
        return tuple(self._iri_parts(iri, CATEGORY, "category"))

    def name_of(self, iri) -> str:
        from rdflib import URIRef

        s = str(iri)
        if not isinstance(iri, URIRef) or not s.startswith(ATTRIBUTE) or not unquote(s[len(ATTRIBUTE):]).strip():
            raise OntologyError(f"{self.where}: {s!r} is not a kgattr attribute IRI")
        return unquote(s[len(ATTRIBUTE):])

    @staticmethod
    def rule_id(node) -> str:
        return str(node)[len(RULE):] if str(node).startswith(RULE) else str(node)

    def one(self, node, key: str):
        """The object of ``node sh:key``, None when there is none; several are beyond the compiled checks."""
        found = list(self.g.objects(node, self.SH[key]))
        if len(found) > 1:
            raise ValueError(f"has {len(found)} values of sh:{key}")
        return found[0] if found else None

    def items(self, head, key: str) -> list:
        """The members of the RDF list starting at ``head`` (the object of sh:``key``)."""
        from rdflib import RDF

        out, seen = [], set()
        while head != RDF.nil:
            first, rest = list(self.g.objects(head, RDF.first)), list(self.g.objects(head, RDF.rest))
            if head in seen or len(first) != 1 or len(rest) != 1:
                raise ValueError(f"has a malformed list as sh:{key}")
            seen.add(head)
            out.append(first[0])
            head = rest[0]
        return out

    def literal(self, node, key: str, valid, what: str):
        """The Python value of ``node``'s ``sh:key`` literal (None without one); a ValueError saying it is not
        ``what`` unless ``valid(value)``."""
        from rdflib import Literal

        value = self.one(node, key)
        if value is None:
            return None
        x = value.toPython() if isinstance(value, Literal) else None
        if isinstance(x, bool) or not valid(x):
            raise ValueError(f"has sh:{key} {value.n3() if hasattr(value, 'n3') else value}, not {what}")
        return x

    def number(self, node, key: str) -> float | None:
        import math
        from decimal import Decimal

        x = self.literal(node, key, lambda x: isinstance(x, (int, float, Decimal)) and math.isfinite(x),
                         "a finite number")
        return None if x is None else float(x)

    def count(self, node, key: str) -> int | None:
        return self.literal(node, key, lambda x: isinstance(x, int) and x >= 0, "a count")

    def made(self, node) -> dict:
        from rdflib import URIRef

        return {"origin": str(self.g.value(node, URIRef(KG + "origin")) or ""),
                "added": str(self.g.value(node, URIRef(KG + "added")) or "")}

    def scope(self, node) -> tuple[str, ...] | None:
        from rdflib import URIRef

        target = self.one(node, "targetClass")
        if target is not None:
            return self.path_of(target)
        if self.one(node, "targetSubjectsOf") == URIRef(KG + "sku"):
            return ()
        return None

    def prop(self, node) -> tuple[str, Property]:
        g, SH = self.g, self.SH
        extra = {str(p)[len(str(SH)):] for p in g.predicates(node) if str(p).startswith(str(SH))} - self.PROPERTY_KEYS
        if extra:
            raise ValueError("uses " + ", ".join(f"sh:{e}" for e in sorted(extra)))
        path = self.one(node, "path")
        if path is None:
            raise ValueError(f"{self.rule_id(node)} has no sh:path")
        in_list, pattern = self.one(node, "in"), self.one(node, "pattern")
        return self.name_of(path), Property(
            self.rule_id(node), None if in_list is None else frozenset(str(v) for v in self.items(in_list, "in")),
            self.count(node, "minCount") or 0, self.count(node, "maxCount"), None if pattern is None else str(pattern),
            self.number(node, "minInclusive"), self.number(node, "maxInclusive"),
            frozenset(self.name_of(o) for o in g.objects(node, SH.disjoint)))

    def path_value(self, node, key) -> tuple[str, str]:
        value = self.one(node, key) if node is not None else None
        if key == "in" and value is not None:
            members = self.items(value, key)
            value = members[0] if len(members) == 1 else None
        path = self.one(node, "path") if node is not None else None
        if value is None or path is None:
            raise ValueError("is not an implication or exclusion kgattr can read")
        return self.name_of(path), str(value)

    def conditional(self, node, category) -> Conditional:
        either, neither = self.one(node, "or"), self.one(node, "not")
        if either is not None:
            first, second = (self.items(either, "or") + [None, None])[:2]
            inner = self.one(first, "not") if first is not None else None
            if inner is None or second is None:
                raise ValueError("is not an implication kgattr can read")
            return Conditional(self.rule_id(node), category, self.path_value(inner, "hasValue"),
                               self.path_value(second, "in"), False, **self.made(node))
        both = self.one(neither, "and")
        both = self.items(both, "and") if both is not None else []
        if len(both) != 2:
            raise ValueError("is not an exclusion kgattr can read")
        return Conditional(self.rule_id(node), category, self.path_value(both[0], "hasValue"),
                           self.path_value(both[1], "hasValue"), True, **self.made(node))

    def ontology(self) -> Ontology:
        from rdflib import RDF, Literal, URIRef

        g, SH = self.g, self.SH
        onto = Ontology()
        onto.categories = {self.path_of(c) for c in g.subjects(RDF.type, URIRef(KG + "Category"))}
        onto.attributes = {self.name_of(a) for a in g.subjects(RDF.type, URIRef(KG + "Attribute"))}
        alt = URIRef("http://www.w3.org/2004/02/skos/core#altLabel")
        onto.alt_labels = {name: frozenset(str(v) for v in g.objects(a, alt))
                           for a in g.subjects(RDF.type, URIRef(KG + "Attribute"))
                           if (name := self.name_of(a)) and (a, alt, None) in g}
        nodes = set(g.subjects(RDF.type, SH.NodeShape)) | set(g.subjects(RDF.type, SH.PropertyShape))
        for node in sorted(nodes, key=str):
            has_target = any(str(p).startswith(str(SH) + "target") for p in g.predicates(node))
            if not has_target:
                continue                              # a property shape of a category block, read with it
            rid = self.rule_id(node)
            try:
                category = self.scope(node)
                if category is None:
                    raise ValueError("has a target other than a category class or every product")
                if self.one(node, "path") is not None:
                    name, p = self.prop(node)
                    onto.shapes.append(Shape(rid, category, False, {name: p}, **self.made(node)))
                elif self.one(node, "or") is not None or self.one(node, "not") is not None:
                    onto.conditionals.append(self.conditional(node, category))
                else:
                    closed = self.one(node, "closed")
                    if closed is not None and not (isinstance(closed, Literal) and isinstance(closed.toPython(), bool)):
                        raise ValueError("has sh:closed other than true or false")
                    shape = Shape(rid, category, closed is not None and closed.toPython(), **self.made(node))
                    for member in g.objects(node, SH.property):
                        name, p = self.prop(member)
                        if name in shape.properties:
                            raise ValueError(f"has two property shapes on {name}")
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
