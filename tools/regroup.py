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
- ontology.ontology <-> ontology.mining (which imports ontology.rules, which imports ontology.ontology):
  ``Ontology.induce`` calls ``mining.differing_attributes`` lazily. Move ``Differing`` and
  ``differing_attributes`` (they read a catalog only) down into ontology/ontology.py; mining imports them there.
- extract.extraction <-> extract.tagger, and extract.extraction -> bench.evaluation (upward): both come from
  extraction's benchmark, ``evaluate_extraction`` with ``held_out``, ``score_extraction`` and ``_prf``, which needs
  ``Extractor`` and evaluation's ``drawn_titles``. Move those four up into bench/ (bench/extraction.py); the
  tagger then builds on extraction, and extraction imports neither.
- kgattr.completer -> bench.evaluation (upward, lazy, in ``thresholds``): move ``precision_thresholds`` down into
  engine/completion.py, beside the decisions whose confidences it reads.
Until then those lazy imports keep working as they do today; the script adds no lazy import.
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
ROOT_MODULES = ("__init__", "__main__", "exceptions", "completer")          # stay at the top of the package
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
    "model_cli": "cli.model", "encode_cli": "cli.encode",
    "copying": "engine.copying", "reviewed": "engine.reviewed", "imputation": "engine.imputation",
    "encoding": "text.encoding", "distributed": "engine.distributed",
    "scale": "io.scale", "growth": "bench.growth",
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
def _used(code: str, free: bool = False) -> set[str]:
    """Names ``code`` reads; with ``free``, less those it also assigns somewhere (a rough test of being local)."""
    names = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)]
    read = {n.id for n in names if isinstance(n.ctx, ast.Load)}
    return read - {n.id for n in names if isinstance(n.ctx, ast.Store)} if free else read


def split_source(source: str, parts: dict) -> dict[str, tuple[str, str]]:
    """Each part's (source, imports of the other parts).

    A part is the module less what is not its own, in the module's order and spacing: its docstring; the imports
    and module-level assignments it uses; its own definitions; in the first part, also every other statement. A
    command that moves to a later part loses its ``@app.command(...)`` line and the first part registers it where
    it was. The imports of what a part uses of the others are relative to the package, to be added once the
    module's own imports are rewritten.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    first = next(iter(parts))
    doc = ast.get_docstring(tree, clean=False)
    blocks = []                  # (start, stop, part or None: where used, names defined, kind, node)
    for node in tree.body[1 if doc is not None else 0:]:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            blocks.append((start, node.end_lineno, owner(parts, node.name), [node.name], "def", node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            blocks.append((start, node.end_lineno, owner(parts, names[0]) if any(
                n in names for _, ns in parts.values() for n in ns) else None, names, "assign", node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            blocks.append((start, node.end_lineno, None, [], "import", node))
        else:
            blocks.append((start, node.end_lineno, first, [], "other", node))
    out = {}
    for part, (part_doc, _) in parts.items():
        keep = {}                # block index -> its text in this part
        for i, (start, stop, p, names, kind, node) in enumerate(blocks):
            text = "".join(lines[start:stop])
            commands = [ast.get_source_segment(source, d) for d in getattr(node, "decorator_list", [])]
            commands = [c for c in commands if re.fullmatch(r"\w+\.command\(.*\)", c, re.S)]
            if p == part:
                keep[i] = text if part == first else re.sub(
                    "|".join(rf"^@{re.escape(c)}\n" for c in commands) or "^$^", "", text, flags=re.M)
            elif kind == "def" and part == first and commands:
                keep[i] = "".join(f"{c}({node.name})\n" for c in commands)
        used = _used("".join(keep.values()))
        for i, (start, stop, p, names, kind, node) in reversed(list(enumerate(blocks))):
            if kind == "assign" and p is None and used & set(names):     # shared: a copy in each part using it
                keep[i] = "".join(lines[start:stop])
                used |= _used(keep[i])
        for i, (start, stop, p, names, kind, node) in enumerate(blocks):
            if kind == "import":
                pruned = _prune_import("".join(lines[start:stop]), node, used)
                if pruned:
                    keep[i] = pruned
        body = []
        previous = 0 if doc is None else tree.body[0].end_lineno
        head = f'"""{part_doc}"""\n' if part_doc else "".join(lines[:previous])
        for i, (start, stop, *_rest) in enumerate(blocks):
            body.append("".join(line for line in lines[previous:start] if not line.strip()) + keep.get(i, ""))
            previous = stop
        text = re.sub(r"\n{4,}", "\n\n\n", head + "".join(body)).rstrip("\n") + "\n"
        foreign, free = {}, _used("".join(v for i, v in keep.items() if blocks[i][4] != "import"), free=True)
        for start, stop, p, names, kind, node in blocks:
            for n in names:
                if p not in (None, part) and n in free:
                    foreign.setdefault(p, []).append(n)
        out[part] = (text, "".join(f"from .{p.rsplit('.', 1)[1]} import {', '.join(ns)}\n"
                                   for p, ns in foreign.items()))
    return out


def _prune_import(code: str, node, used: set[str]) -> str:
    """The import statement ``code`` with only the names in ``used`` ('' when none; __future__ kept)."""
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return code
    keep = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
    if len(keep) == len(node.names):
        return code
    if not keep:
        return ""
    names = [a.name + (f" as {a.asname}" if a.asname else "") for a in keep]
    if isinstance(node, ast.Import):
        return f"import {', '.join(names)}\n"
    return wrap(f"from {'.' * node.level}{node.module or ''} import ", names)


def wrap(prefix: str, names: list[str], width: int = 120) -> str:
    """``prefix`` and the comma-separated ``names``, in parentheses over several lines where one is too long."""
    if len(prefix) + len(", ".join(names)) <= width:
        return prefix + ", ".join(names) + "\n"
    rows, row = [], prefix + "("
    for i, name in enumerate(names):
        piece = name + (", " if i < len(names) - 1 else ")")
        if len(row) + len(piece.rstrip()) > width:
            rows.append(row.rstrip())
            row = " " * len(prefix + "(")
        row += piece
    return "\n".join(rows + [row]) + "\n"


def add_imports(source: str, lines: str) -> str:
    """``source`` with the import statements ``lines`` after its last top-level import."""
    last = max((n.end_lineno for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))),
               default=0)
    rows = source.splitlines(keepends=True)
    return "".join(rows[:last]) + lines + "".join(rows[last:])


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
                    parts = self.splits[old]
                    new = owner(parts, after[1]) if after and m["sep"] == "." else next(iter(parts))
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
                shift = len(spell(next(iter(groups)))) - len(module)         # continuation lines stay aligned
                names = re.sub(r"\n {%d}" % max(-shift, 0), "\n" + " " * max(shift, 0), m["names"])
                statement = f"{m['indent']}from {spell(next(iter(groups)))} import {names}"
                if "#" in names or max(map(len, statement.splitlines())) <= 120:
                    return statement
                return wrap(f"{m['indent']}from {spell(next(iter(groups)))} import ", _names(names)).rstrip("\n")
            return "".join(wrap(f"{m['indent']}from {spell(t)} import ", ns) for t, ns in groups.items()).rstrip("\n")
        return sort_imports(self.pattern.sub(fix, text))


def sort_imports(text: str) -> str:
    """``text`` with each run of one-line imports from kgattr (relative or not) at one indentation sorted by module,
    as they were before their modules moved."""
    lines = text.splitlines(keepends=True)
    out, i = [], 0
    single = re.compile(rf"([ \t]*)from (\.[\w.]*|{PACKAGE}\.[\w.]*) import [^(\n]*\n")
    while i < len(lines):
        j = i
        while j < len(lines) and single.fullmatch(lines[j]) and \
                single.fullmatch(lines[j])[1] == single.fullmatch(lines[i])[1]:
            j += 1
        if j - i > 1:
            out += sorted(lines[i:j], key=lambda line: single.fullmatch(line)[2])
            i = j
        else:
            out.append(lines[i])
            i += 1
    return "".join(out)


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
    late = {}                                  # split part -> its imports of the other parts
    for old, parts in splits.items():
        source = path_of(old, root).read_text()
        sh("git", "mv", str(path_of(old, root)), str(path_of(next(iter(parts)), root)))   # history: first part
        for new, (code, late[new]) in split_source(source, parts).items():
            path_of(new, root).write_text(code)
            sh("git", "add", str(path_of(new, root)))
            origin[new] = origin[old]
        origin.pop(old)
    rewrite = Rewriter(moves, splits)
    for new, old_package in origin.items():
        file = path_of(new, root)
        text = file.read_text()
        fixed = rewrite(text, old_package, new.rsplit(".", 1)[0])
        if late.get(new):
            fixed = sort_imports(add_imports(fixed, late[new]))
        if fixed != text:
            file.write_text(fixed)
    for glob in TEXT_FILES:
        for file in sorted(root.glob(glob)):
            text = file.read_text()
            fixed = rewrite(text)
            if file.suffix == ".py":           # whole-package scans of modules
                fixed = fixed.replace(f'/ "{PACKAGE}").glob("*.py")', f'/ "{PACKAGE}").rglob("*.py")')
            if file.name == "pyproject.toml":            # the listed packages, and the new folders after the first
                def packages(m):
                    listed = re.findall(r'"([^"]+)"', m[1])
                    listed[1:1] = [f"{PACKAGE}.{n}" for n in FOLDERS if f"{PACKAGE}.{n}" not in listed]
                    return "packages = [" + ", ".join(f'"{p}"' for p in listed) + "]"
                fixed = re.sub(r"packages = \[([^\]]*)\]", packages, fixed)
            if fixed != text:
                file.write_text(fixed)
    report(root, unmapped)
    print("\nnext: git add -A && python -m pyflakes kgattr tests && python -m pytest -q && python -m kgattr --help")


if __name__ == "__main__":
    main()
