"""Ontology files: the readable Turtle kgattr writes (taxonomy, attributes, one commented block per rule), and
reading one or more files back as one :class:`~kgattr.ontology.ontology.Ontology`, through a parse cache."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

from ..exceptions import OntologyError
from ..io.inputs import file_label, read_input
from ..io.outputs import atomic_write
from ..text.encoder import default_cache_dir
from .ontology import PREFIXES, Ontology, attribute_iri, category_iri
from .shacl import GraphReader, conditional_block, parse_turtle, shape_block


def to_turtle(onto: Ontology, *, source: str = "", origin: str = "induced") -> str:
    """Readable Turtle: taxonomy first, then one commented block per rule (or category block)."""
    from rdflib import Literal

    today = _dt.date.today().isoformat()
    out = [PREFIXES, f"# kgattr ontology{f' induced from {source}' if source else ''}.",
           "# Edit freely: each block below is one category's rules or one rule; `kgattr rules` keeps hand edits.",
           "", "# --- categories ---"]
    for path in sorted(onto.categories):
        parent = f" ;\n    rdfs:subClassOf <{category_iri(path[:-1])}>" if len(path) > 1 else ""
        out.append(f"<{category_iri(path)}> a rdfs:Class, kg:Category ;\n    rdfs:label {Literal(path[-1]).n3()}{parent} .")
    out += ["", "# --- attributes ---"]
    for name in sorted(onto.attributes):
        alt = "".join(f" ;\n    skos:altLabel {Literal(a).n3()}" for a in sorted(onto.alt_labels.get(name, ())))
        out.append(f"<{attribute_iri(name)}> a rdf:Property, kg:Attribute ; rdfs:label {Literal(name).n3()}{alt} .")
    for shape in sorted(onto.shapes, key=lambda s: (s.category, not s.closed, s.id)):
        out += ["", shape_block(shape, origin=shape.origin or origin, added=shape.added or today).rstrip("\n")]
    for rule in sorted(onto.conditionals, key=lambda c: (c.category, c.id)):
        out += ["", conditional_block(rule).rstrip("\n")]
    return "\n".join(out) + "\n"


def save_ontology(onto: Ontology, path, *, source: str = "", origin: str = "induced") -> None:
    """Write :func:`to_turtle` of ``onto`` to ``path``, whole or not at all."""
    text = to_turtle(onto, source=source, origin=origin)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_ontology(*paths) -> Ontology:
    """Read one or more Turtle files as one ontology; an error names the file and, for syntax, the line.

    The parsed form is cached by the files' content hash, so unchanged files load in milliseconds; a damaged
    cache file is set aside (``*.damaged``) and rebuilt.
    """
    digest = hashlib.sha1()
    for path in paths:
        digest.update(read_input(path, OntologyError) + b"\0")
    sources = tuple(str(Path(p).resolve()) for p in paths)
    cached = default_cache_dir() / f"ontology-v5-{digest.hexdigest()}.json"
    onto = _from_cache(cached)
    if onto is None:
        onto = GraphReader(parse_turtle(*paths), ", ".join(map(file_label, paths))).ontology()
        body = json.dumps(onto.to_json())
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, lambda tmp: tmp.write_text(_checksum(body) + "\n" + body, encoding="utf-8"))
        except OSError:
            pass                                 # a read-only cache only costs speed
    return dataclasses.replace(onto, sources=sources)


def _checksum(body: str) -> str:
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
