"""Rule authoring for category experts: make a rule from names people type, add it to a Turtle file as one
block (never re-serialising what is there), remove a block, and lint files for mistakes and contradictions.

Every edit is checked before it is written: the file with the change must parse, read back the same rules plus
(or minus) the edited one, and lint no worse; otherwise the file is left exactly as it was.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import getpass
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..exceptions import OntologyError
from .ontology import PREFIXES, RULE, Conditional, Ontology, Property, Shape, category_label, slug

KINDS = ("allowed", "required", "not-applicable", "pattern", "range", "differs", "implies", "excludes")


class RuleError(OntologyError):
    """Bad rule input: unknown names, a malformed pattern, a contradiction, a file that cannot take the edit."""


def _close(word: str, options) -> str:
    near = difflib.get_close_matches(word, sorted(options), n=3)
    return f" (did you mean {', '.join(map(repr, near))}?)" if near else ""


def resolve_category(ontology: Ontology, name: str | None) -> tuple[str, ...]:
    """A category named by its path (``Apparel > Topwear``) or, when unambiguous, its own name; None: every product."""
    if name is None:
        return ()
    path = tuple(part.strip() for part in name.split(">"))
    if path in ontology.categories:
        return path
    found = [c for c in ontology.categories if c[-1] == name.strip()]
    if len(found) == 1:
        return found[0]
    if found:
        raise RuleError(f"--category: {name!r} is ambiguous: " + "; ".join(sorted(" > ".join(c) for c in found)))
    names = {" > ".join(c) for c in ontology.categories} | {c[-1] for c in ontology.categories}
    raise RuleError(f"--category: unknown category {name!r}" + _close(name, names))


def known_values(ontology: Ontology, attribute: str) -> frozenset[str] | None:
    """Every value any ``sh:in`` list allows for ``attribute`` (None: no list names its values)."""
    lists = [p.values for s in ontology.shapes for a, p in s.properties.items()
             if a == attribute and p.values is not None]
    return frozenset().union(*lists) if lists else None


def _attribute(ontology: Ontology, name: str | None, option: str = "--attribute") -> str:
    if not name:
        raise RuleError(f"{option} is required for this kind of rule")
    if name not in ontology.attributes:
        raise RuleError(f"{option}: unknown attribute {name!r}" + _close(name, ontology.attributes))
    return name


def _value(ontology: Ontology, attribute: str, value: str, option: str) -> str:
    known = known_values(ontology, attribute)
    if known is not None and value not in known:
        raise RuleError(f"{option}: unknown value {value!r} of {attribute}" + _close(value, known))
    return value


def _pair(ontology: Ontology, text: str | None, option: str) -> tuple[str, str]:
    if not text or "=" not in text:
        raise RuleError(f"{option} takes ATTRIBUTE=VALUE, got {text!r}")
    attribute, value = (part.strip() for part in text.split("=", 1))
    attribute = _attribute(ontology, attribute, option)
    return attribute, _value(ontology, attribute, value, option)


def _unique(ontology: Ontology, base: str) -> str:
    taken, rid, n = ontology.rule_ids(), base, 1
    while rid in taken:
        n += 1
        rid = f"{base}-{n}"
    return rid


def make_rule(ontology: Ontology, kind: str, *, category: str | None = None, attribute: str | None = None,
              values: list[str] | None = None, regex: str | None = None, low: float | None = None,
              high: float | None = None, condition: str | None = None, consequence: str | None = None,
              other: str | None = None, origin: str | None = None) -> Shape | Conditional:
    """A new rule of ``kind`` (one of :data:`KINDS`), its names checked against ``ontology``; an error names the
    option (``--min``, ``--values``, ...) that is wrong."""
    import math

    from ..io.inputs import encodable

    if kind not in KINDS:
        raise RuleError(f"unknown kind of rule {kind!r} (choose from {', '.join(KINDS)})")
    # no option may hold a line break or another control character: it would break the block's comment line
    texts = {"--category": category, "--attribute": attribute, "--regex": regex, "--if": condition,
             "--then-not" if kind == "excludes" else "--then": consequence, "--from": other, "--origin": origin}
    for option, text in [*texts.items(), *(("--values", v) for v in values or ())]:
        if text is not None and (not isinstance(text, str) or not encodable(text)
                                 or re.search(r"[\x00-\x1f\x7f\x85\u2028\u2029]", text)):
            raise RuleError(f"{option}: {text!r} is not one line of text")
    for option, number in (("--min", low), ("--max", high)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                   or not math.isfinite(number)):
            raise RuleError(f"{option}: {number!r} is not a finite number")
    path = resolve_category(ontology, category)
    made = {"origin": origin or f"expert: {getpass.getuser()}", "added": _dt.date.today().isoformat()}
    where = slug(".".join(path)) if path else "all"
    if kind in ("implies", "excludes"):
        (a1, v1), (a2, v2) = _pair(ontology, condition, "--if"), _pair(ontology, consequence,
                                                                     "--then-not" if kind == "excludes" else "--then")
        if a1 == a2:
            raise RuleError(f"--if and --then name the same attribute {a1!r}")
        rid = _unique(ontology, f"{kind}/{where}/{slug(a1)}-{slug(v1)}/{slug(a2)}-{slug(v2)}")
        return Conditional(rid, path, (a1, v1), (a2, v2), kind == "excludes", **made)
    name = _attribute(ontology, attribute)
    rid = _unique(ontology, f"{kind}/{where}/{slug(name)}")
    if kind == "allowed":
        if not values or not all(v.strip() for v in values):
            raise RuleError("--values is required for an allowed rule, and no value may be blank")
        prop = Property(rid, frozenset(_value(ontology, name, v.strip(), "--values") for v in values))
    elif kind == "required":
        prop = Property(rid, min_count=1)
    elif kind == "not-applicable":
        prop = Property(rid, max_count=0)
    elif kind == "differs":
        second = _attribute(ontology, other, "--from")
        if second == name:
            raise RuleError(f"--attribute and --from name the same attribute {name!r}")
        prop = Property(rid, disjoint=frozenset({second}))
    elif kind == "pattern":
        import regex as regex_engine                # the compiled checks' engine; re is pySHACL's

        for engine in (re, regex_engine):
            try:
                engine.compile(regex or "")
            except (engine.error, ValueError, OverflowError, RecursionError) as e:
                raise RuleError(f"malformed --regex {regex!r}: {str(e).splitlines()[0]}") from None
        if not regex:
            raise RuleError("--regex is required for a pattern rule")
        prop = Property(rid, pattern=regex)
    else:
        if low is None and high is None:
            raise RuleError("a range rule needs --min, --max or both")
        if low is not None and high is not None and low > high:
            raise RuleError(f"--min {low} is above --max {high}")
        prop = Property(rid, low=None if low is None else float(low), high=None if high is None else float(high))
    return Shape(rid, path, False, {name: prop}, **made)


# ---- editing files as text --------------------------------------------------------------------------------------
def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise RuleError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _reads_as(path: Path, text: str) -> Ontology:
    from rdflib import Graph

    from .shacl import GraphReader, syntax_error

    try:
        graph = Graph().parse(data=text, format="turtle", publicID=path.resolve().as_uri())
    except Exception as e:  # rdflib raises several parser types
        raise RuleError(syntax_error(path, e)) from None
    return GraphReader(graph, str(path)).ontology()


def _signature(onto: Ontology) -> set[str]:
    import json

    d = onto.to_json()
    return {json.dumps(x, sort_keys=True) for x in d["shapes"] + d["conditionals"] + d["uncompiled"]}


def _write_checked(path: Path, before: Ontology, new_text: str, expect_added: Ontology | None,
                   expect_removed: set[str]) -> list[Finding]:
    """Write ``new_text`` to ``path`` if it reads back as ``before`` (the file's rules now) plus ``expect_added``
    minus the rules with ids in ``expect_removed`` and lints without new errors; returns the new warnings.
    The file keeps its mode (see :func:`kgattr.io.outputs.write_set`)."""
    from ..io.outputs import atomic_write

    after = _reads_as(path, new_text)
    kept = Ontology(shapes=[s for s in before.shapes if s.id not in expect_removed],
                    conditionals=[c for c in before.conditionals if c.id not in expect_removed],
                    uncompiled=[u for u in before.uncompiled if u[0] not in expect_removed])
    if expect_added is not None:
        kept = kept.merge(expect_added)
    if _signature(after) != _signature(kept):
        raise RuleError(f"{path}: the edit would change other rules than the one meant; edit the file by hand")
    new = set(lint_ontology(after)) - set(lint_ontology(before))
    errors = sorted(f.message for f in new if f.level == "error")
    if errors:
        raise RuleError(f"{path}: {errors[0]}")
    atomic_write(path, lambda tmp: tmp.write_text(new_text, encoding="utf-8"))
    return sorted(f for f in new if f.level == "warning")


def add_rule(path, rule: Shape | Conditional) -> list[Finding]:
    """Append ``rule`` to the Turtle file ``path`` as one commented block; the rest of the file is kept byte for byte.
    Returns the lint warnings the rule brings."""
    from .shacl import rule_block

    from ..io.outputs import claim

    path = Path(path)
    with claim([("", path)], wait=True):               # read, check and write as one: no concurrent edit is lost
        text = _read(path) if path.exists() else PREFIXES + "\n# kgattr rules\n"
        new_text = text.rstrip("\n") + "\n\n" + rule_block(rule)
        added = Ontology(conditionals=[rule]) if isinstance(rule, Conditional) else Ontology(shapes=[rule])
        return _write_checked(path, _reads_as(path, text), new_text, added, set())


def remove_rule(path, rule_id: str) -> None:
    """Delete the block of rule ``rule_id`` (with its comment lines and, for a category block, its property
    shapes) from the Turtle file ``path``."""
    from ..io.outputs import claim

    path = Path(path)
    with claim([("", path)], wait=True):               # read, check and write as one: no concurrent edit is lost
        _remove(path, _read(path), rule_id)


def _remove(path: Path, text: str, rule_id: str) -> None:
    """Write ``path`` without the block of ``rule_id``; ``text`` is its content now."""
    lines = text.split("\n")
    head = f"<{RULE}{rule_id}> a "
    onto = _reads_as(path, text)
    owner = next((s.id for s in onto.shapes if any(p.id == rule_id for p in s.properties.values())), None)
    if owner is not None and owner != rule_id:
        raise RuleError(f"{path}: rule {rule_id!r} is part of the block of {owner!r}; remove that block or "
                        f"edit the file by hand")
    start = next((i for i, line in enumerate(lines) if line.startswith(head)), None)
    if start is None:
        raise RuleError(f"{path}: no rule {rule_id!r}" + _close(rule_id, onto.rule_ids()))
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    if start > 0 and not lines[start - 1].strip():
        start -= 1                                  # the blank line that separated the block
    removed = {rule_id} | {p.id for s in onto.shapes if s.id == rule_id for p in s.properties.values()}
    _write_checked(path, onto, "\n".join(lines[:start] + lines[end:]), None, removed)


def without(ontology: Ontology, rule_id: str) -> Ontology:
    """``ontology`` less one rule, or less one property shape of a category block."""
    shapes = []
    for s in ontology.shapes:
        if s.id == rule_id:
            continue
        props = {a: p for a, p in s.properties.items() if p.id != rule_id}
        shapes.append(s if len(props) == len(s.properties) else replace(s, properties=props))
    found = ontology.rule_ids()
    if rule_id not in found:
        raise RuleError(f"no rule {rule_id!r}" + _close(rule_id, found))
    return replace(ontology, shapes=shapes, conditionals=[c for c in ontology.conditionals if c.id != rule_id])


# ---- lint -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Finding:
    level: str          # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def lint_files(paths) -> list[Finding]:
    """Syntax errors (file and line), then :func:`lint_ontology` of the files read as one ontology."""
    from rdflib import RDF, Graph, URIRef

    from .ontology import KG
    from .shacl import GraphReader, parse_turtle

    graph, findings = Graph(), []
    for path in paths:
        try:
            parse_turtle(path, graph=graph)
        except OntologyError as e:
            findings.append(Finding("error", str(e)))
    if findings:
        return findings
    reader = GraphReader(graph, ", ".join(map(str, paths)))
    declared = {reader.path_of(c) for c in graph.subjects(RDF.type, URIRef(KG + "Category"))}
    return lint_ontology(reader.ontology(), declared)


def lint_ontology(onto: Ontology, declared: set | None = None) -> list[Finding]:
    """Unknown names, malformed patterns, rules kgattr cannot compile, and contradictions."""
    from .rules import RuleSet

    out = [Finding("warning", f"{rid}: not compiled ({why}); only pySHACL checks it") for rid, why in onto.uncompiled]
    categories = onto.categories if declared is None else declared
    rules = list(onto.shapes) + list(onto.conditionals)
    for r in rules:
        if r.category and r.category not in categories:
            out.append(Finding("error", f"{r.id}: unknown category {category_label(r.category)!r}"))
        names = [*r.properties, *(b for p in r.properties.values() for b in sorted(p.disjoint))] \
            if isinstance(r, Shape) else [r.condition[0], r.consequence[0]]
        out += [Finding("error", f"{r.id}: unknown attribute {a!r}") for a in names if a not in onto.attributes]
        for p in r.properties.values() if isinstance(r, Shape) else ():
            try:
                re.compile(p.pattern or "")
            except re.error as e:
                out.append(Finding("error", f"{p.id}: malformed pattern {p.pattern!r}: {e}"))
    for c in onto.conditionals:
        for a, v in (c.condition, c.consequence):
            known = known_values(onto, a)
            if known is not None and v not in known:
                out.append(Finding("error", f"{c.id}: unknown value {v!r} of {a}"))
    out += _contradictions(onto, RuleSet(onto))
    return out


def _contradictions(onto: Ontology, rules) -> list[Finding]:
    seen, out = set(), []

    def report(key, message, level="error"):
        if key not in seen:
            seen.add(key)
            out.append(Finding(level, message))

    def warn(key, message):
        report(key, message, "warning")

    for path in sorted(onto.categories | {()}):
        for name, rid in rules.required(path).items():
            blocker = rules.applicable(path, name)
            if blocker is not None:
                report((rid, blocker), f"{rid}: {name} is required in {category_label(path)} but {blocker} makes "
                                       f"it not applicable")
        for name in onto.attributes:
            if rules.applicable(path, name) is None and rules.allowed_values(path, name) == frozenset():
                ids = tuple(sorted(p.id for s in onto.shapes for a, p in s.properties.items()
                                   if a == name and p.values is not None and s.category == path[:len(s.category)]))
                report(ids, f"{', '.join(ids)}: no value of {name} satisfies them all in {category_label(path)}")
        for c in onto.conditionals:
            if c.excludes or c.category != path[:len(c.category)]:
                continue
            (a1, v1), (a2, v2) = c.condition, c.consequence
            if rules.check(path, a1, v1) is None and rules.applicable(path, a2) is None and \
                    rules.check(path, a2, v2) is not None:
                warn((c.id,), f"{c.id}: implies {a2} = {v2}, which {category_label(path)} does not allow "
                              f"({rules.check(path, a2, v2).rule}): its products with {a1} = {v1} get no {a2}")
    for i, c in enumerate(onto.conditionals):
        for d in onto.conditionals[i + 1:]:
            overlap = c.category == d.category[:len(c.category)] or d.category == c.category[:len(d.category)]
            if not overlap or c.condition != d.condition or c.consequence[0] != d.consequence[0]:
                continue
            if (not c.excludes and not d.excludes and c.consequence[1] != d.consequence[1]) or \
                    (c.excludes != d.excludes and c.consequence[1] == d.consequence[1]):
                report((c.id, d.id), f"{c.id} and {d.id} cannot both hold: {c.describe()}; {d.describe()}")
    return out
