"""What rules do to a catalog: a dry run of rules before adopting them, and completeness of required attributes."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .ontology import Ontology, category_label
from .rules import RuleSet, Violation


@dataclass
class DryRun:
    """The effect of going from one rule set to another."""
    flagged: list[Violation]                     # existing values that break the new rules and did not before
    changes: list[dict] = field(default_factory=list)   # {sku, attribute, before, after, confidence, rule}
    cells: int = 0                               # gaps decided with the current rules

    def counts(self) -> dict[str, int]:
        kinds = Counter(c["change"] for c in self.changes)
        return {"existing values flagged": len(self.flagged), "completions decided now": self.cells,
                **{k: kinds.get(k, 0) for k in ("rejected, next value instead", "rejected, abstains instead",
                                                "no longer a gap", "filled now", "new gap")}}

    def by_rule(self) -> Counter:
        return Counter([v.rule for v in self.flagged] + [c["rule"] for c in self.changes if c["rule"]])


def dry_run(completer, catalog, before: Ontology, after: Ontology) -> DryRun:
    """Existing values flagged and completions changed by replacing ``before``'s rules with ``after``'s, with the
    model of ``completer`` (no training; the completer's own rules are restored afterwards)."""
    rules_before, rules_after = RuleSet(before), RuleSet(after)
    old = {(v.sku, v.attribute, v.rule) for v in rules_before.violations(catalog)}
    result = DryRun([v for v in rules_after.violations(catalog) if (v.sku, v.attribute, v.rule) not in old])
    original = completer.rules_
    decided = []
    try:
        for rules in (rules_before, rules_after):
            completer.rules_ = rules
            decided.append({(pc.sku, c.attribute): c for pc in completer.impute(catalog, evidence_floor=float("inf"))
                            for c in pc.completions})
    finally:
        completer.rules_ = original
    was, now = decided
    result.cells = len(was)
    for key in sorted(set(was) | set(now)):
        b, a = was.get(key), now.get(key)
        if b is not None and a is not None and b.value == a.value:
            continue
        if b is None:
            change, rule = "new gap", None
        elif a is None:
            change = "no longer a gap"
            rule = rules_after.applicable(catalog[key[0]].category, key[1])
        elif b.value is None:
            change, rule = "filled now", None
        else:
            change = "rejected, abstains instead" if a.value is None else "rejected, next value instead"
            rule = next((r["rule"] for r in a.rejected if r["value"] == b.value), None)
        result.changes.append({"sku": key[0], "attribute": key[1], "before": b.value if b else None,
                               "after": a.value if a else None, "confidence": b.confidence if b else None,
                               "change": change, "rule": rule})
    return result


@dataclass
class Completeness:
    category: tuple[str, ...]
    products: int
    required: list[str]
    complete: int                                 # products with every required attribute filled
    filled: dict[str, int]                        # required attribute -> products holding it
    complete_after: int | None = None             # the same after imputation
    filled_after: dict[str, int] | None = None

    def __str__(self) -> str:
        def share(x: int) -> str:
            return f"{x / self.products:.1%}"

        after = f" -> {share(self.complete_after)}" if self.complete_after is not None else ""
        worst = sorted(self.required, key=lambda a: self.filled[a])[:3]
        gaps = ", ".join(f"{a} {share(self.filled[a])}"
                         + (f"->{share(self.filled_after[a])}" if self.filled_after else "") for a in worst)
        return (f"{category_label(self.category)}: {self.products} products, {len(self.required)} required, "
                f"complete {share(self.complete)}{after}  (least filled: {gaps})")


def completeness(catalog, rules: RuleSet, imputed=None) -> list[Completeness]:
    """Per category: how many products hold every attribute the rules require, before and (given the imputed
    catalog) after imputation. Categories without required attributes are left out."""
    after = {p.sku: p.attributes for p in imputed} if imputed is not None else None
    groups = defaultdict(list)
    for p in catalog:
        groups[tuple(p.category)].append(p)
    out = []
    for path, products in sorted(groups.items()):
        required = sorted(rules.required(path))
        if not required:
            continue
        row = Completeness(path, len(products), required,
                           sum(all(a in p.attributes for a in required) for p in products),
                           {a: sum(a in p.attributes for p in products) for a in required})
        if after is not None:
            held = [after.get(p.sku, p.attributes) for p in products]
            row.complete_after = sum(all(a in h for a in required) for h in held)
            row.filled_after = {a: sum(a in h for h in held) for a in required}
        out.append(row)
    return out
