"""The product ontology: category taxonomy, attributes, and SHACL shapes for the rules.

One Turtle file holds all three, written as readable blocks so experts can review it as a diff:
categories are ``rdfs:Class`` nodes linked by ``rdfs:subClassOf``; each category with rules has a
``sh:NodeShape`` (``sh:closed`` lists the attributes that apply to it) whose property shapes give the
allowed values (``sh:in``) and single-valuedness (``sh:maxCount 1``) of each attribute.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from .exceptions import OntologyError

KG = "https://kgattr.org/ontology#"
CATEGORY = "https://kgattr.org/category/"
ATTRIBUTE = "https://kgattr.org/attribute/"
PRODUCT = "https://kgattr.org/product/"
RULE = "https://kgattr.org/rule/"

PREFIXES = f"""@prefix kg: <{KG}> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""


def category_iri(path: tuple[str, ...]) -> str:
    return CATEGORY + "/".join(quote(level, safe="") for level in path)


def attribute_iri(name: str) -> str:
    return ATTRIBUTE + quote(name, safe="")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


@dataclass
class Shape:
    """The rules of one category: which attributes apply and which values each may take."""
    id: str
    category: tuple[str, ...]
    closed: bool = True
    # attribute -> (rule id, allowed values or None for any value)
    properties: dict[str, tuple[str, frozenset[str] | None]] = field(default_factory=dict)
    origin: str = ""        # who or what wrote the rules ("induced", "model snapshot", an expert's name)
    added: str = ""         # ISO date


@dataclass
class Ontology:
    categories: set[tuple[str, ...]] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    shapes: dict[tuple[str, ...], Shape] = field(default_factory=dict)

    @classmethod
    def induce(cls, catalog, *, min_support: int = 1, max_unseen: float = 0.005) -> "Ontology":
        """Bootstrap from data: every observed category, the attributes seen in it, the values seen with it.

        Args:
            catalog: the :class:`~kgattr.catalog.Catalog` to read.
            min_support: a value enters a category's allowed set when seen at least this often there.
            max_unseen: an allowed set is written only where the data say it is closed: when the Good-Turing
                estimate of the chance that the next value is an unseen one (values seen once / cells) is at
                most this. Otherwise the attribute applies with any value.
        """
        categories: set[tuple[str, ...]] = set()
        seen: dict[tuple[str, ...], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        for p in catalog:
            for depth in range(1, len(p.category) + 1):
                categories.add(p.category[:depth])
            for name, value in p.attributes.items():
                seen[p.category][name][value] += 1
        onto = cls(categories, {a for by_attr in seen.values() for a in by_attr})
        for path, by_attr in sorted(seen.items()):
            if not path:
                continue
            shape = Shape(f"category/{_slug('.'.join(path))}", path, origin="induced",
                          added=_dt.date.today().isoformat())
            for name, counts in sorted(by_attr.items()):
                singletons = sum(1 for c in counts.values() if c == 1)
                closed = singletons <= max_unseen * sum(counts.values())
                values = frozenset(v for v, c in counts.items() if c >= min_support) if closed else None
                shape.properties[name] = (f"allowed/{_slug('.'.join(path))}/{_slug(name)}", values)
            onto.shapes[path] = shape
        return onto

    def to_turtle(self, *, source: str = "", origin: str = "induced") -> str:
        """Readable Turtle: taxonomy first, then one commented block per category's rules."""
        from rdflib import Literal

        today = _dt.date.today().isoformat()
        out = [PREFIXES, f"# kgattr ontology{f' induced from {source}' if source else ''}.",
               "# Edit freely: each block below is one category's rules; `kgattr rules` keeps hand edits.", "",
               "# --- categories ---"]
        for path in sorted(self.categories):
            parent = f" ;\n    rdfs:subClassOf <{category_iri(path[:-1])}>" if len(path) > 1 else ""
            out.append(f"<{category_iri(path)}> a rdfs:Class, kg:Category ;\n    rdfs:label {Literal(path[-1]).n3()}{parent} .")
        out += ["", "# --- attributes ---"]
        for name in sorted(self.attributes):
            out.append(f"<{attribute_iri(name)}> a rdf:Property, kg:Attribute ; rdfs:label {Literal(name).n3()} .")
        for path, shape in sorted(self.shapes.items()):
            out += ["", f"# rules of {' > '.join(path)}: the attributes that apply, their allowed values, one value each",
                    f"<{RULE}{shape.id}> a sh:NodeShape ;",
                    f"    kg:origin {Literal(shape.origin or origin).n3()} ;"
                    f" kg:added {Literal(shape.added or today).n3()} ;",
                    f"    sh:targetClass <{category_iri(path)}> ;",
                    f"    sh:closed {'true' if shape.closed else 'false'} ;",
                    f"    sh:ignoredProperties ( rdf:type kg:sku ) ;"]
            props = [f"<{RULE}{rid}>" for rid, _ in shape.properties.values()]
            out.append(f"    sh:property {', '.join(props)} ." if props else "    .")
            for name, (rid, values) in sorted(shape.properties.items()):
                allowed = ""
                if values is not None:
                    allowed = " ;\n    sh:in ( " + " ".join(Literal(v).n3() for v in sorted(values)) + " )"
                out.append(f"<{RULE}{rid}> a sh:PropertyShape ;\n    sh:path <{attribute_iri(name)}> ;\n"
                           f"    sh:maxCount 1{allowed} .")
        return "\n".join(out) + "\n"

    def save(self, path, **kwargs) -> None:
        from .catalog import atomic_write

        text = self.to_turtle(**kwargs)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path) -> "Ontology":
        """Read an ontology Turtle file; a syntax error names the file and line.

        The parsed form is cached by the file's content hash, so an unchanged file loads in milliseconds.
        """
        import hashlib
        import json

        from .text import default_cache_dir

        try:
            digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise OntologyError(f"{path}: no such file") from None
        cached = default_cache_dir() / f"ontology-{digest}.json"
        if cached.exists():
            return cls.from_json(json.loads(cached.read_text()))
        onto = cls._parse(path)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            from .catalog import atomic_write

            atomic_write(cached, lambda tmp: tmp.write_text(json.dumps(onto.to_json())))
        except OSError:
            pass                                     # a read-only cache only costs speed
        return onto

    def to_json(self) -> dict:
        return {"categories": sorted(map(list, self.categories)), "attributes": sorted(self.attributes),
                "shapes": [{"id": s.id, "category": list(s.category), "closed": s.closed, "origin": s.origin,
                            "added": s.added,
                            "properties": {a: [rid, None if v is None else sorted(v)]
                                           for a, (rid, v) in s.properties.items()}}
                           for s in self.shapes.values()]}

    @classmethod
    def from_json(cls, d: dict) -> "Ontology":
        shapes = {}
        for s in d["shapes"]:
            props = {a: (rid, None if v is None else frozenset(v)) for a, (rid, v) in s["properties"].items()}
            shapes[tuple(s["category"])] = Shape(s["id"], tuple(s["category"]), s["closed"], props,
                                                 s.get("origin", ""), s.get("added", ""))
        return cls({tuple(c) for c in d["categories"]}, set(d["attributes"]), shapes)

    @classmethod
    def _parse(cls, path) -> "Ontology":
        from rdflib import Graph

        graph = Graph()
        try:
            graph.parse(str(path), format="turtle")
        except FileNotFoundError:
            raise OntologyError(f"{path}: no such file") from None
        except Exception as e:  # rdflib raises several parser types; all mean a broken file
            raise OntologyError(f"{path}: {str(e).splitlines()[0][:300]}") from None
        return cls.from_graph(graph, str(path))

    @classmethod
    def from_graph(cls, graph, where: str = "<graph>") -> "Ontology":
        from rdflib import RDF, RDFS, URIRef
        from rdflib.collection import Collection
        from rdflib.namespace import SH

        def path_of(iri) -> tuple[str, ...]:
            s = str(iri)
            if not s.startswith(CATEGORY):
                raise OntologyError(f"{where}: {s} is not a kgattr category IRI")
            return tuple(unquote(part) for part in s[len(CATEGORY):].split("/"))

        def name_of(iri) -> str:
            s = str(iri)
            if not s.startswith(ATTRIBUTE):
                raise OntologyError(f"{where}: {s} is not a kgattr attribute IRI")
            return unquote(s[len(ATTRIBUTE):])

        def rule_id(node) -> str:
            return str(node)[len(RULE):] if str(node).startswith(RULE) else str(node)

        onto = cls()
        onto.categories = {path_of(c) for c in graph.subjects(RDF.type, URIRef(KG + "Category"))}
        onto.attributes = {name_of(a) for a in graph.subjects(RDF.type, URIRef(KG + "Attribute"))}
        for node in graph.subjects(RDF.type, SH.NodeShape):
            target = graph.value(node, SH.targetClass)
            if target is None:
                continue
            path = path_of(target)
            shape = Shape(rule_id(node), path, closed=bool(graph.value(node, SH.closed) and
                                                              graph.value(node, SH.closed).toPython()),
                          origin=str(graph.value(node, URIRef(KG + "origin")) or ""),
                          added=str(graph.value(node, URIRef(KG + "added")) or ""))
            for prop in graph.objects(node, SH.property):
                name = name_of(graph.value(prop, SH.path))
                in_list = graph.value(prop, SH["in"])
                values = frozenset(str(v) for v in Collection(graph, in_list)) if in_list is not None else None
                shape.properties[name] = (rule_id(prop), values)
            onto.shapes[path] = shape
        for path in list(onto.shapes):
            for depth in range(1, len(path) + 1):
                onto.categories.add(path[:depth])
        return onto
