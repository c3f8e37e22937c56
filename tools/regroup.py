"""Regroup kgattr's flat modules into one folder per part of the pipeline, imports pointing down.

Run once, from the repository root, on a clean tree; then review ``git diff --stat -M``, run the tests and commit:

    python tools/regroup.py            # moves, rewrites, reports
    python tools/regroup.py --dry-run  # only prints the plan and the report

Folders, lowest first (a module imports from its own folder and those before it):

    kgattr/exceptions.py  the errors every layer raises (stays at the top of the package: ``kgattr.exceptions``)
    io/        inputs, outputs, catalog, frames, datasets, progress: files and data in and out
    text/      encoder (BERT embeddings and their cache), lexical (tf-idf, value matching, folding)
    ontology/  ontology, shacl, rules, mining, authoring, audit: the rules and their Turtle
    extract/   extraction, tagger: values read in a product's text
    engine/    graph, index, model, linear, train, scoring, completion, modeldir, modelfiles (+ crossfit, mixture)
    kgattr/completer.py   the facade over them all (stays: ``kgattr.completer``)
    bench/     evaluation, baselines, benchmark
    serve/     unchanged
    cli/       main (the app, train / complete / impute / ontology / graph / sample / serve), base, bench (split,
               score, evaluate), rules, extract, model

``MOVES`` maps each flat module to its place; ``SPLITS`` cuts one module in two by top-level names (text.py); a
module the table does not know stays where it is, its imports rewritten, and is printed: extend ``MOVES`` and run
again on a fresh checkout. Rewritten: relative imports in kgattr/ (resolved against the old place, written
against the new), ``kgattr.<module>`` anywhere in kgattr/, tests/, docs/, the top-level Markdown files,
pyproject.toml and the Makefile (imports, mock targets, ``:func:`` references, the entry point), and
``from kgattr import <module>``. Refused: a dirty tree, or a tree already regrouped.

Import circles, and how to break them (the report at the end lists what remains after the move):

- ontology.ontology <-> ontology.shacl: shacl builds on Ontology's vocabulary (IRIs, Property, Shape, Conditional,
  category_label, slug) while Ontology calls shacl, lazily, to read and write Turtle. Move the vocabulary down into
  ontology/terms.py; both import it, and ontology imports shacl at the top.
- ontology.ontology -> ontology.mining -> ontology.rules -> ontology.ontology: ``Ontology.induce`` calls
  ``mining.differing_attributes`` lazily. Move that function down into ontology/ontology.py (it reads a Catalog
  only), and mining imports it from there.
- extract.extraction <-> extract.tagger: the tagger builds on extraction's spans; only ``evaluate_extraction``
  needs ``Extractor``, lazily. Move ``evaluate_extraction`` up into bench/ (it is a benchmark).
- Upward, both lazy: engine's completer ``thresholds`` and extraction use bench.evaluation
  (``precision_thresholds``; ``drawn_titles``, ``_title_key``). Move ``precision_thresholds`` down into
  engine/completion.py and the two title helpers into io/catalog.py.
Lazy imports stay only where they already were; the script adds none.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = "kgattr"
FOLDERS = {                               # lowest first; each folder's __init__.py docstring
    "io": "Files and data in and out: catalogs, inputs, outputs, pandas frames, synthetic catalogs, progress.",
    "text": "Text features of a product: BERT embeddings (cached) and lexical features.",
    "ontology": "The ontology and its rules: Turtle and SHACL, rule checking, mining, authoring, audits.",
    "extract": "Values read in a product's text: span extraction and the token tagger.",
    "engine": "The completion engine: graph, retrieval, the GNN and the linear scorer, training, scoring, "
              "model directories.",
    "bench": "Evaluation: splits, metrics, baselines and the benchmark.",
    "cli": "The kgattr command line.",
}
ROOT_MODULES = {"__init__": None, "__main__": None, "exceptions": 0, "completer": "engine"}   # stay; their layer
# flat module (or glob) -> new dotted place under kgattr/
MOVES = {
    "inputs": "io.inputs", "outputs": "io.outputs", "catalog": "io.catalog", "frames": "io.frames",
    "datasets": "io.datasets", "progress": "io.progress",
    "ontology": "ontology.ontology", "shacl": "ontology.shacl", "rules": "ontology.rules",
    "mining": "ontology.mining", "authoring": "ontology.authoring", "audit": "ontology.audit",
    "extraction": "extract.extraction", "tagger": "extract.tagger",
    "graph": "engine.graph", "index": "engine.index", "model": "engine.model", "linear": "engine.linear",
    "train": "engine.train", "scoring": "engine.scoring", "completion": "engine.completion",
    "modeldir": "engine.modeldir", "modelfiles": "engine.modelfiles",
    "crossfit": "engine.crossfit", "mixture": "engine.mixture",
    "evaluation": "bench.evaluation", "baselines": "bench.baselines", "benchmark": "bench.benchmark",
    "cli_base": "cli.base", "rules_cli": "cli.rules", "extract_cli": "cli.extract",
    "model_cli": "cli.model",
}
# module -> {new dotted place: (docstring, top-level names it takes)}; the first part keeps the rest, and the
# commands a later part takes are registered by the first (``app.command()(score)``)
SPLITS = {
    "text": {
        "text.encoder": ("Sentence embeddings of product texts by any local Hugging Face encoder, cached on disk.",
                         ["default_text_model", "load_encoder", "default_cache_dir", "TextEncoder", "EmbeddingCache"]),
        "text.lexical": ("Lexical features of product texts: tf-idf n-grams, folding, values stated in a text.",
                         ["LexicalFeatures", "whole_word", "fold", "ValueMatcher", "_GAP"]),
    },
    "cli": {
        "cli.main": (None, []),
        "cli.bench": ("`kgattr split`, `score` and `evaluate`: hide known cells, score predictions, benchmark.",
                      ["split", "score", "_score_line", "evaluate"]),
    },
}
LIMIT = 400                               # lines; longer modules are reported
TEXT_FILES = ["tests/**/*.py", "docs/**/*.md", "*.md", "pyproject.toml", "Makefile"]


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def place_of(stem: str) -> str | None:
    """The new dotted place (under kgattr) of the flat module ``stem``; None: it stays."""
    for pattern, place in MOVES.items():
        if fnmatch.fnmatch(stem, pattern):
            return place.replace("*", stem)
    return None


def plan(root: Path) -> tuple[dict, dict, list[str]]:
    """(module moves {old dotted: new dotted}, splits {old dotted: {new dotted: (doc, names)}}, unmapped stems)."""
    moves, splits, unmapped = {}, {}, []
    for file in sorted((root / PACKAGE).glob("*.py")):
        stem = file.stem
        if stem in SPLITS:
            splits[f"{PACKAGE}.{stem}"] = {f"{PACKAGE}.{k}": v for k, v in SPLITS[stem].items()}
        elif place_of(stem):
            moves[f"{PACKAGE}.{stem}"] = f"{PACKAGE}.{place_of(stem)}"
        elif stem not in ROOT_MODULES:
            unmapped.append(stem)
    return moves, splits, unmapped


def path_of(dotted: str, root: Path) -> Path:
    return root.joinpath(*dotted.split(".")).with_suffix(".py")


def owner(parts: dict, name: str) -> str:
    """The part of a split module that takes the top-level ``name``."""
    return next((part for part, (_, names) in parts.items() if name in names), next(iter(parts)))


# ---- splitting a module by top-level names ---------------------------------------------------------------------
def _used(code: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}


def split_source(source: str, parts: dict) -> dict[str, str]:
    """Each part's source: its docstring, the imports and module-level names it uses, its own top-level
    definitions in their order, and an import of what it uses of another part. A command that moves to a later
    part loses its ``@app.command(...)`` line; the first part registers it instead."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    first = next(iter(parts))
    doc = ast.get_docstring(tree, clean=False)
    blocks = []                      # (part, names it defines, code) of each statement after the docstring
    registrations = []
    for node in tree.body[1 if doc is not None else 0:]:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        code = "".join(lines[start:node.end_lineno])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
            part = owner(parts, node.name)
            for d in node.decorator_list:
                text = ast.get_source_segment(source, d)
                if part != first and re.fullmatch(r"\w+\.command\(.*\)", text, re.S):
                    code = code.replace(f"@{text}\n", "", 1)
                    registrations.append(f"{text}({node.name})\n")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            part = None                                  # wherever it is used
        else:
            names, part = [], None if isinstance(node, (ast.Import, ast.ImportFrom)) else first
        blocks.append((part, names, code, isinstance(node, (ast.Import, ast.ImportFrom))))
    out = {}
    for part, (part_doc, _) in parts.items():
        own = [code for p, _, code, _ in blocks if p == part]
        if part == first:
            own += registrations
        body = "\n\n".join(c.rstrip("\n") + "\n" for c in own if c.strip())
        used = _used(body)
        shared = []
        for p, names, code, _ in reversed(blocks):      # module-level names, also those other ones use
            if p is None and names and used & set(names):
                shared.insert(0, code)
                used |= _used(code)
        imports = []
        for p, names, code, is_import in blocks:
            if is_import:
                kept = _prune_import(code, used)
                if kept:
                    imports.append(kept)
        foreign = {}
        for p, names, _, _ in blocks:
            for n in names:
                if p not in (None, part) and n in used:
                    foreign.setdefault(p, []).append(n)
        imports += [f"from .{p.rsplit('.', 1)[1]} import {', '.join(ns)}\n" for p, ns in foreign.items()]
        text = f'"""{part_doc if part_doc else doc}"""\n' + "".join(imports) + "\n"
        if shared:
            text += "".join(shared) + "\n"
        out[part] = text + "\n" + body
    return out


def _prune_import(code: str, used: set[str]) -> str:
    """The import statement ``code`` with only the names in ``used`` ('' when none; __future__ kept)."""
    node = ast.parse(code).body[0]
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return code
    keep = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
    if len(keep) == len(node.names):
        return code
    if not keep:
        return ""
    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
    if isinstance(node, ast.Import):
        return f"import {names}\n"
    return f"from {'.' * node.level}{node.module or ''} import {names}\n"


# ---- rewriting references -------------------------------------------------------------------------------------
STATEMENT = rf"^(?P<indent>[ \t]*)from (?P<module>\.+[\w.]*|{PACKAGE}\b[\w.]*) import (?P<names>\([^)]*\)|[^\n]*)"


def _resolve(package: str, dots: str, module: str) -> str:
    parts = package.split(".")
    return ".".join(parts[:len(parts) - (len(dots) - 1)] + ([module] if module else []))


def _relative(package: str, target: str) -> str:
    """``target`` (dotted) as a relative import from inside ``package``."""
    here, there = package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def _names(text: str) -> list[str]:
    text = "\n".join(line.split("#")[0] for line in text.splitlines())
    return [n.strip() for n in text.strip().strip("()").split(",") if n.strip()]


class Rewriter:
    """Rewrites references to moved modules in one pass: import statements (relative ones resolved against the
    module's old package) and every other ``kgattr.<module>`` or ``kgattr/<module>.py``."""

    def __init__(self, moves: dict, splits: dict):
        self.moves, self.splits = moves, splits
        stems = sorted((m.split(".", 1)[1] for m in [*moves, *splits]), key=len, reverse=True)
        dotted = rf"\b{PACKAGE}(?P<sep>[./])(?P<stem>{'|'.join(map(re.escape, stems))})(?![\w])(?P<py>\.py)?"
        self.pattern = re.compile(f"(?P<statement>{STATEMENT})|(?P<dotted>{dotted})", re.M)

    def targets(self, old: str, names: list[str]) -> dict[str, list[str]]:
        """{new dotted module: names} of ``from old import names``."""
        if old == PACKAGE:                               # from kgattr import Catalog, modeldir
            out = {}
            for n in names:
                moved = self.moves.get(f"{PACKAGE}.{n.split(' as ')[0]}")
                out.setdefault(moved.rsplit(".", 1)[0] if moved else PACKAGE, []).append(
                    f"{moved.rsplit('.', 1)[1]} as {n}" if moved and moved.rsplit(".", 1)[1] != n else n)
            return out
        if old in self.splits:
            out = {}
            for n in names:
                out.setdefault(owner(self.splits[old], n.split(" as ")[0]), []).append(n)
            return out
        return {self.moves.get(old, old): names}

    def __call__(self, text: str, old_package: str | None = None, new_package: str | None = None) -> str:
        def fix(m):
            if m["dotted"]:
                old = f"{PACKAGE}.{m['stem']}"
                if old in self.splits:
                    after = re.match(r"\.(\w+)", text[m.end():])
                    new = owner(self.splits[old], after[1]) if after and m["sep"] == "." else next(iter(self.splits[old]))
                else:
                    new = self.moves[old]
                return new.replace(".", "/") + (m["py"] or "") if m["sep"] == "/" else new
            module, relative = m["module"], m["module"].startswith(".")
            if relative and old_package is None:
                return m[0]
            old = _resolve(old_package, *re.match(r"(\.+)(.*)", module).groups()) if relative else module
            groups = self.targets(old, _names(m["names"]))
            spell = (lambda t: _relative(new_package, t)) if relative else (lambda t: t)
            if len(groups) == 1 and next(iter(groups.values())) == _names(m["names"]):
                return f"{m['indent']}from {spell(next(iter(groups)))} import {m['names']}"
            return "\n".join(f"{m['indent']}from {spell(t)} import {', '.join(ns)}" for t, ns in groups.items())
        return self.pattern.sub(fix, text)


# ---- checks ------------------------------------------------------------------------------------------------------
def layer(dotted: str) -> int | None:
    """The rank of a kgattr module's folder, lowest first (None: the package itself or a module left flat)."""
    parts = dotted.split(".")
    order = ["exceptions", *FOLDERS]
    order.insert(order.index("bench"), "completer")
    order.insert(order.index("cli"), "serve")
    return order.index(parts[1]) if len(parts) > 1 and parts[1] in order else None


def imports_of(file: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(imported kgattr module, line, lazy) of each import statement of ``file``."""
    package = ".".join(file.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE)):
            target = _resolve(package, "." * node.level, node.module or "") if node.level else node.module
            out.append((target, node.lineno, node.col_offset > 0))
    return out


def report(root: Path, unmapped: list[str]) -> None:
    files = sorted((root / PACKAGE).rglob("*.py"))
    print("\nupward imports (a lower folder importing a higher one):")
    edges = {}
    for f in files:
        me = ".".join(f.relative_to(root).with_suffix("").parts)
        for target, line, lazy in imports_of(f, root):
            if target == me or target == PACKAGE:
                continue
            edges.setdefault(me, set()).add(target)
            if layer(me) is not None and layer(target) is not None and layer(target) > layer(me):
                print(f"  {f.relative_to(root)}:{line}: {target}" + (" (lazy)" if lazy else ""))
    print("\nmodules importing each other:")
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            if a < b and a in edges.get(b, ()):
                print(f"  {a} <-> {b}")
    print(f"\nmodules over {LIMIT} lines:")
    for f in files:
        n = len(f.read_text().splitlines())
        if n > LIMIT:
            print(f"  {f.relative_to(root)}: {n}")
    if unmapped:
        print("\nleft in kgattr/, not in MOVES (add them and regroup a fresh checkout):")
        for stem in unmapped:
            print(f"  kgattr/{stem}.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the report, change nothing")
    args = parser.parse_args()
    root = Path.cwd()
    if not (root / PACKAGE / "__init__.py").is_file():
        sys.exit(f"regroup: run from the repository root (no {PACKAGE}/__init__.py here)")
    done = [name for name in FOLDERS if (root / PACKAGE / name / "__init__.py").exists()]
    if done:
        sys.exit(f"regroup: {PACKAGE}/{done[0]}/ exists: this tree is regrouped already")
    moves, splits, unmapped = plan(root)
    for old, new in moves.items():
        print(f"{path_of(old, root).relative_to(root)} -> {path_of(new, root).relative_to(root)}")
    for old, parts in splits.items():
        for new, (_, names) in parts.items():
            print(f"{path_of(old, root).relative_to(root)} -> {path_of(new, root).relative_to(root)}: "
                  f"{', '.join(names) or 'the rest'}")
    if args.dry_run:
        report(root, unmapped)
        return
    if sh("git", "status", "--porcelain").strip():
        sys.exit("regroup: the tree has uncommitted changes; commit or stash them first")

    # where each module of kgattr/ lived: its old package, for resolving its relative imports
    origin = {}
    for file in (root / PACKAGE).rglob("*.py"):
        dotted = ".".join(file.relative_to(root).with_suffix("").parts)
        origin[dotted] = dotted.rsplit(".", 1)[0]
    for name, doc in FOLDERS.items():
        folder = root / PACKAGE / name
        folder.mkdir()
        (folder / "__init__.py").write_text(f'"""{doc}"""\n')
        sh("git", "add", str(folder / "__init__.py"))
    for old, new in moves.items():
        sh("git", "mv", str(path_of(old, root)), str(path_of(new, root)))
        origin[new] = origin.pop(old)
    for old, parts in splits.items():
        source = path_of(old, root).read_text()
        sh("git", "mv", str(path_of(old, root)), str(path_of(next(iter(parts)), root)))   # history: first part
        for new, code in split_source(source, parts).items():
            path_of(new, root).write_text(code)
            sh("git", "add", str(path_of(new, root)))
            origin[new] = origin[old]
        origin.pop(old)
    rewrite = Rewriter(moves, splits)
    for new, old_package in origin.items():
        file = path_of(new, root)
        text = file.read_text()
        fixed = rewrite(text, old_package, new.rsplit(".", 1)[0])
        if fixed != text:
            file.write_text(fixed)
    for glob in TEXT_FILES:
        for file in sorted(root.glob(glob)):
            text = file.read_text()
            fixed = rewrite(text)
            if file.suffix == ".py":           # whole-package scans of modules
                fixed = fixed.replace(f'/ "{PACKAGE}").glob("*.py")', f'/ "{PACKAGE}").rglob("*.py")')
            if file.name == "pyproject.toml":
                packages = [PACKAGE, *(f"{PACKAGE}.{n}" for n in FOLDERS), f"{PACKAGE}.serve"]
                fixed = re.sub(r"packages = \[[^\]]*\]", "packages = [" + ", ".join(f'"{p}"' for p in packages) + "]",
                               fixed)
            if fixed != text:
                file.write_text(fixed)
    report(root, unmapped)
    print("\nnext: git add -A && python -m pyflakes kgattr tests && python -m pytest -q && python -m kgattr --help")


if __name__ == "__main__":
    main()
