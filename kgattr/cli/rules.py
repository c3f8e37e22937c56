"""`kgattr rules ...` and `kgattr completeness`: the rule workflow of category experts, as thin commands.

Exit codes: 0 success; 1 when ``check`` finds broken values or ``lint`` finds errors; 2 bad input (an unknown
attribute, category or value, a malformed pattern, broken Turtle, a contradiction, a rule file that is read-only
or a directory), with rule files untouched. Edits of one file wait for each other, so none is lost.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import typer

from ..ontology.authoring import KINDS
from .base import (CatalogFormat, OutputFormat, count, emit, finite, format_of_catalog, format_option, natural,
                   note, output_format, share)
from ..io.outputs import claim

rules_app = typer.Typer(help="Write, check and test the ontology's rules.", no_args_is_help=True)

FileOpt = typer.Option(..., "--ontology", help="Ontology Turtle file holding the rules (repeatable: read as one).")
EditOpt = typer.Option(..., "--ontology", help="Ontology Turtle file to edit (kept byte for byte but for the rule).")
JsonOpt = typer.Option(False, "--json", help="One JSON object a line.")
SUGGESTED = ("implies", "differs", "allowed", "not-applicable")       # the kinds of rule mining suggests


@rules_app.command("list")
def rules_list(ontology: list[Path] = FileOpt,
               category: Optional[str] = typer.Option(None, help="Only this category: its path (A > B) or name."),
               attribute: Optional[str] = typer.Option(None, help="Only rules on this attribute."),
               fmt: Optional[OutputFormat] = format_option(None)):
    """List the rules, one a line: id, kind, category / attribute, what it says, who added it and when.

    Example: kgattr rules list --ontology ontology/sample.ttl --attribute gender
    """
    from ..ontology.files import load_ontology
    from ..ontology.rules import list_rules

    rules = list_rules(load_ontology(*ontology), category=category, attribute=attribute)
    fmt = output_format(fmt, False)
    if fmt != "table":
        emit([{**r.__dict__, "category": list(r.category)} for r in rules], fmt)
        return
    for rule in rules:
        typer.echo(str(rule))


@rules_app.command("check")
def rules_check(catalog: Path = typer.Argument(..., help="Catalog whose existing values to check."),
                ontology: list[Path] = FileOpt, as_json: bool = JsonOpt,
                fmt: Optional[OutputFormat] = format_option("jsonl"),
                catalog_format: CatalogFormat = format_of_catalog()):
    """Existing values that break a rule (compiled checks); exit code 1 when there is any.

    Example: kgattr rules check data/sample.jsonl --ontology ontology/sample.ttl
    """
    from collections import Counter

    from ..io.catalog import read_catalog
    from ..ontology.files import load_ontology
    from ..ontology.rules import RuleSet

    cat = read_catalog(catalog, format=catalog_format)
    found = RuleSet(load_ontology(*ontology)).violations(cat)
    fmt = output_format(fmt, as_json, "jsonl")
    if fmt != "table":
        emit([{"sku": v.sku, "attribute": v.attribute, "value": v.value, "rule": v.rule, "kind": v.kind}
              for v in found], fmt)
    else:
        for v in found[:50]:
            typer.echo(str(v))
        if len(found) > 50:
            typer.echo(f"... and {len(found) - 50} more (--json lists all)")
        summary = f"{len(found)} values break a rule in {len(cat)} products"
        note(summary) if found else typer.echo(summary)
        for rule, n in Counter(v.rule for v in found).most_common(10):
            note(f"  {n:7d}  {rule}")
    if found:
        raise typer.Exit(1)


@rules_app.command("add")
def rules_add(kind: Literal[KINDS] = typer.Argument(..., help=f"The kind of rule: {' | '.join(KINDS)}."),
              ontology: Path = EditOpt,
              category: Optional[str] = typer.Option(None, help="Category (path A > B, or name); default every product."),
              attribute: Optional[str] = typer.Option(None, help="The attribute (all kinds but implies/excludes)."),
              values: Optional[str] = typer.Option(None, help="allowed: the values, comma-separated."),
              regex: Optional[str] = typer.Option(None, help="pattern: a regular expression the value must contain."),
              low: Optional[float] = typer.Option(None, "--min", callback=finite, help="range: lowest value allowed."),
              high: Optional[float] = typer.Option(None, "--max", callback=finite, help="range: highest value allowed."),
              condition: Optional[str] = typer.Option(None, "--if", help="implies/excludes: ATTRIBUTE=VALUE."),
              then: Optional[str] = typer.Option(None, "--then", help="implies: ATTRIBUTE=VALUE."),
              then_not: Optional[str] = typer.Option(None, "--then-not", help="excludes: ATTRIBUTE=VALUE."),
              other: Optional[str] = typer.Option(None, "--from", help="differs: the attribute whose value it must "
                                                                       "differ from."),
              origin: Optional[str] = typer.Option(None, help="Who adds it [default: expert: $USER].")):
    """Add one rule as a commented SHACL block at the end of the ontology file; it applies at the next
    complete/impute of models trained with that file, without training again.

    Example: kgattr rules add excludes --if "gender=Boys" --then-not "age_group=Adults-Men" --ontology ontology/sample.ttl
    """
    from ..ontology.authoring import add_rule, make_rule
    from ..ontology.files import load_ontology
    from ..ontology.shacl import rule_block

    with claim([("--ontology", ontology)], wait=True):     # the rule is made from the file as it is now
        rule = make_rule(load_ontology(ontology), kind, category=category, attribute=attribute,
                         values=values.split(",") if values else None, regex=regex, low=low, high=high,
                         condition=condition, consequence=then_not if kind == "excludes" else then, other=other,
                         origin=origin)
        warnings = add_rule(ontology, rule)
    typer.echo(f"added {rule.id} to {ontology}:\n{rule_block(rule)}")
    for w in warnings:
        typer.echo(str(w), err=True)


@rules_app.command("remove")
def rules_remove(rule_id: str = typer.Argument(..., help="The rule's id, as `rules list` shows it."),
                 ontology: Path = EditOpt):
    """Remove one rule's block (its comment lines and statements) from the ontology file.

    Example: kgattr rules remove excludes/all/gender-Boys/age-group-Adults-Men --ontology ontology/sample.ttl
    """
    from ..ontology.authoring import remove_rule

    with claim([("--ontology", ontology)], wait=True):
        remove_rule(ontology, rule_id)
    typer.echo(f"removed {rule_id} from {ontology}")


@rules_app.command("lint")
def rules_lint(files: Optional[list[Path]] = typer.Argument(None, help="Turtle files, read as one "
                                                                       "[default: ontology/*.ttl]."),
               as_json: bool = JsonOpt, fmt: Optional[OutputFormat] = format_option("jsonl")):
    """Syntax errors (file:line), unknown attributes, categories and values, malformed patterns, rules kgattr
    cannot compile, and contradictions; exit code 1 when there is an error.

    Example: kgattr rules lint ontology/sample.ttl
    """
    from ..exceptions import OntologyError
    from ..ontology.authoring import lint_files

    files = files or sorted(Path("ontology").glob("*.ttl"))
    if not files:
        raise OntologyError("no Turtle files given and none in ontology/")
    findings = lint_files(files)
    fmt = output_format(fmt, as_json, "jsonl")
    if fmt != "table":
        emit([{"level": f.level, "message": f.message} for f in findings], fmt)
    else:
        for f in findings:
            typer.echo(str(f))
        errors = sum(f.level == "error" for f in findings)
        note(f"{errors} errors, {len(findings) - errors} warnings in {', '.join(map(str, files))}")
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(catalog: Path = typer.Option(..., "--catalog", help="Catalog to try the rules on."),
               model: Path = typer.Option(..., "--model", "-m", help="Model directory written by `kgattr train`."),
               rule: Optional[str] = typer.Option(None, "--rule", help="A rule of the model's ontology: the effect "
                                                                       "of having it against not."),
               file: Optional[Path] = typer.Argument(None, help="Or: a Turtle file of rules to adopt."),
               examples: int = typer.Option(10, callback=natural, help="Examples to show of each change."),
               as_json: bool = JsonOpt, catalog_format: CatalogFormat = format_of_catalog()):
    """Dry run: which existing values a rule would flag and which completions it would reject or change.

    Example: kgattr rules test --catalog data/sample.jsonl --model models/sample --rule RULE_ID
    """
    from ..completer import AttributeCompleter
    from ..io.catalog import read_catalog
    from ..ontology.audit import dry_run
    from ..ontology.authoring import without
    from ..ontology.files import load_ontology

    if (rule is None) == (file is None):
        raise typer.BadParameter("give either --rule ID or a FILE of rules")
    completer = AttributeCompleter.load(model)
    current = completer.ontology_
    before, after = (without(current, rule), current) if rule else (current, current.merge(load_ontology(file)))
    result = dry_run(completer, read_catalog(catalog, format=catalog_format), before, after)
    if as_json:
        typer.echo(json.dumps({"counts": result.counts(), "by_rule": dict(result.by_rule()),
                               "flagged": [v.__dict__ for v in result.flagged], "changes": result.changes},
                              ensure_ascii=False))
        return
    for name, n in result.counts().items():
        typer.echo(f"{n:8d}  {name}")
    for rid, n in result.by_rule().most_common(10):
        typer.echo(f"{n:8d}  by {rid}")
    for v in result.flagged[:examples]:
        typer.echo(f"  flagged  {v}")
    for c in result.changes[:examples]:
        typer.echo(f"  {c['change']}  {c['sku']}: {c['attribute']} {c['before']!r} -> {c['after']!r}"
                   + (f" ({c['rule']})" if c["rule"] else ""))


@rules_app.command("suggest")
def rules_suggest(catalog: Path = typer.Argument(..., help="Catalog to mine."),
                  ontology: Optional[list[Path]] = typer.Option(None, "--ontology", help="Rules already adopted "
                                                                "(and the file the commands will edit)."),
                  min_support: int = typer.Option(50, callback=count, help="Products a rule must speak about."),
                  min_confidence: float = typer.Option(0.999, callback=share, help="Share of them that must follow it already."),
                  kind: Optional[Literal[SUGGESTED]] = typer.Option(None, help="Only this kind."),
                  top: int = typer.Option(30, callback=count, help="Suggestions to show, best supported first."),
                  as_json: bool = JsonOpt, fmt: Optional[OutputFormat] = format_option("jsonl"),
                  catalog_format: CatalogFormat = format_of_catalog()):
    """Rules the data support, each with support, confidence, exceptions and the command that adopts it.

    Example: kgattr rules suggest data/sample.jsonl --ontology ontology/sample.ttl --min-support 20
    """
    from ..io.catalog import read_catalog
    from ..ontology.mining import suggest
    from ..ontology.files import load_ontology

    onto = load_ontology(*ontology) if ontology else None
    found = [s for s in suggest(read_catalog(catalog, format=catalog_format), onto, min_support=min_support,
                                min_confidence=min_confidence)
             if kind is None or s.kind == kind][:top]
    target = str(ontology[-1]) if ontology else "ONTOLOGY.ttl"
    fmt = output_format(fmt, as_json, "jsonl")
    if fmt != "table":
        emit([{"kind": s.kind, "category": list(s.category), "attribute": s.attribute, "detail": s.detail,
               "support": s.support, "confidence": s.confidence, "exceptions": s.exceptions,
               "command": s.command(target)} for s in found], fmt)
        return
    for s in found:
        typer.echo(f"{s}\n    {s.command(target)}")


def completeness(catalog: Path = typer.Argument(..., help="Catalog to measure."),
                 ontology: list[Path] = FileOpt,
                 imputed: Optional[Path] = typer.Option(None, "--imputed", help="The catalog `kgattr impute` wrote."),
                 as_json: bool = JsonOpt, fmt: Optional[OutputFormat] = format_option("jsonl"),
                 catalog_format: CatalogFormat = format_of_catalog()):
    """Required attributes filled, per category (and after imputation, given --imputed).

    Example: kgattr completeness data/sample.jsonl --ontology ontology/sample.ttl --imputed out/sample.jsonl
    """
    from ..exceptions import OntologyError
    from ..io.catalog import read_catalog
    from ..ontology.audit import completeness as measure
    from ..ontology.files import load_ontology
    from ..ontology.rules import RuleSet

    rows = measure(read_catalog(catalog, format=catalog_format), RuleSet(load_ontology(*ontology)),
                   read_catalog(imputed) if imputed else None)
    if not rows:
        raise OntologyError(f"{', '.join(map(str, ontology))}: no attribute is required anywhere "
                            f"(add some with `kgattr rules add required`)")
    fmt = output_format(fmt, as_json, "jsonl")
    if fmt != "table":
        emit([{**r.__dict__, "category": list(r.category)} for r in rows], fmt)
        return
    for r in rows:
        typer.echo(str(r))
    total, done = sum(r.products for r in rows), sum(r.complete for r in rows)
    after = sum(r.complete_after for r in rows) if imputed else None
    typer.echo(f"all: {total} products, complete {done / total:.1%}"
               + (f" -> {after / total:.1%} after imputation" if after is not None else ""))
