"""The review store: one SQLite file (WAL) holding the current state of every suggested cell and an append-only
log of every decision taken on them.

```
cells       one row per (sku, attribute) gap: the suggestion, its confidence and alternatives, its status
            (open | audit | auto | accepted | edited | rejected), whether it is in the audit sample, the value
            it holds now, who decided last
decisions   every decision ever taken: who, when, the action, the value, the suggested value, its confidence
            and the candidate values shown (two reviewers on one cell: both rows kept, the later one wins)
meta        key/value: what filled the queue
```
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import KgattrError

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    sku TEXT NOT NULL, attribute TEXT NOT NULL, category TEXT NOT NULL, suggested TEXT, confidence REAL NOT NULL,
    alternatives TEXT NOT NULL, status TEXT NOT NULL, audit INTEGER NOT NULL, value TEXT, gain REAL NOT NULL,
    decided_by TEXT, decided_at TEXT, PRIMARY KEY (sku, attribute));
CREATE INDEX IF NOT EXISTS cells_status ON cells (status, confidence);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL, attribute TEXT NOT NULL, action TEXT NOT NULL,
    value TEXT, suggested TEXT, confidence REAL, candidates TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
ACTIONS = ("accept", "edit", "reject")
DONE = {"accept": "accepted", "edit": "edited", "reject": "rejected"}
STATUSES = ("open", "audit", "auto", "accepted", "edited", "rejected")
REVIEWED = ("accepted", "edited", "rejected")
BANDS = {"low": (0.0, 0.5), "mid": (0.5, 0.9), "high": (0.9, 1.01)}
# "gain": audit cells first (precision is measured on them), then by expected gain
SORTS = {"confidence": "confidence ASC", "-confidence": "confidence DESC", "gain": "status = 'audit' DESC, gain DESC"}


class ReviewError(KgattrError):
    """A decision or query the store cannot take: unknown action, status or band, a missing value."""


class UnknownCellError(ReviewError):
    """A (sku, attribute) cell the store holds no suggestion for."""


@dataclass
class QueueFilter:
    """Which cells a queue page or a bulk accept covers (None: any)."""
    category: str | None = None          # a category path ``A > B`` or its last part
    attribute: str | None = None
    band: str | None = None              # low | mid | high, see BANDS
    origin: str | None = None            # model (not reviewed yet) | reviewed
    status: str | None = None            # one of STATUSES; None: open and audit (what waits for a reviewer)
    min_confidence: float | None = None

    def where(self) -> tuple[str, list]:
        sql, args = [], []
        if self.status is not None:
            if self.status not in STATUSES:
                raise ReviewError(f"unknown status {self.status!r} (choose from {', '.join(STATUSES)})")
            sql.append("status = ?")
            args.append(self.status)
        elif self.origin is None:
            sql.append("status IN ('open', 'audit')")
        if self.origin is not None:
            if self.origin not in ("model", "reviewed"):
                raise ReviewError(f"unknown origin {self.origin!r} (choose from model, reviewed)")
            sql.append(("status IN " if self.origin == "reviewed" else "status NOT IN ") + str(REVIEWED))
        if self.category:
            sql.append("(category = ? OR category LIKE ?)")
            args += [self.category, "% > " + self.category]
        if self.attribute:
            sql.append("attribute = ?")
            args.append(self.attribute)
        if self.band is not None:
            if self.band not in BANDS:
                raise ReviewError(f"unknown confidence band {self.band!r} (choose from {', '.join(BANDS)})")
            sql.append("confidence >= ? AND confidence < ?")
            args += list(BANDS[self.band])
        if self.min_confidence is not None:
            sql.append("confidence >= ?")
            args.append(self.min_confidence)
        return " AND ".join(sql) or "1", args


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def audit_draw(sku: str, attribute: str, share: float) -> bool:
    """Whether an auto-filled cell goes to the audit sample: a hash of the cell, so the sample is the same at
    every start and does not depend on the order cells are seen."""
    h = int.from_bytes(hashlib.sha1(f"{sku}\t{attribute}".encode()).digest()[:8], "little")
    return h / 2 ** 64 < share


class ReviewStore:
    """The review store at ``path`` (created on first use).

    Args:
        path: the SQLite file.
        read_only: open an existing store for reading only (see :meth:`open`).
    """

    def __init__(self, path, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def open(cls, path) -> "ReviewStore":
        """The existing store at ``path``, read-only (a running server may write to it meanwhile); a
        :class:`ReviewError` naming the file when it is missing or is not a review store."""
        store = cls(path, read_only=True)
        if not store.path.is_file():
            raise ReviewError(f"{path}: no such review store")
        try:
            with store._db() as db:
                found = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as e:
            raise ReviewError(f"{path}: not a review store ({e})") from e
        if not {"cells", "decisions"} <= found:
            raise ReviewError(f"{path}: not a review store (an SQLite database without its tables 'cells' and "
                              f"'decisions'; `kgattr serve` writes one)")
        return store

    @contextmanager
    def _db(self):
        # one connection per call: the server answers from a thread pool, and SQLite connections are per thread
        target = f"{self.path.resolve().as_uri()}?mode=ro" if self.read_only else self.path
        db = sqlite3.connect(target, timeout=30, isolation_level=None, uri=self.read_only)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self):
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")            # writers queue here, so the later decision is the one kept
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ---- filling ------------------------------------------------------------------------------------------------
    def filled(self) -> dict | None:
        """What filled the queue ({source, cells, at}), or None while it is empty."""
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'filled'").fetchone()
        return json.loads(row[0]) if row else None

    def fill(self, cells, source: str, *, auto_fill: float, audit_share: float) -> int:
        """Add suggested cells; those already in the store are left as they are.

        Args:
            cells: dicts {sku, attribute, category (path list), value, confidence, alternatives, gain}.
            source: what they were scored from (kept in ``meta``).
            auto_fill: cells at least this confident are filled without review (status ``auto``) ...
            audit_share: ... except this share of them, sent to the queue as ``audit``.

        Returns the number of cells added.
        """
        rows = []
        for c in cells:
            status = "open"
            if c["confidence"] >= auto_fill:
                status = "audit" if audit_draw(c["sku"], c["attribute"], audit_share) else "auto"
            rows.append((c["sku"], c["attribute"], " > ".join(c["category"]), c["value"], c["confidence"],
                         json.dumps(c["alternatives"], ensure_ascii=False), status, status == "audit",
                         c["value"] if status == "auto" else None, c["gain"]))
        with self._write() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO cells (sku, attribute, category, suggested, confidence, "
                           "alternatives, status, audit, value, gain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = db.total_changes - before
            db.execute("INSERT OR REPLACE INTO meta VALUES ('filled', ?)",
                       (json.dumps({"source": source, "cells": len(rows), "at": _now()}),))
        return added

    # ---- reading ------------------------------------------------------------------------------------------------
    @staticmethod
    def _cell(row: sqlite3.Row) -> dict:
        out = dict(row)
        out["alternatives"] = json.loads(out["alternatives"])
        out["audit"] = bool(out["audit"])
        out["origin"] = "reviewed" if out["status"] in REVIEWED else "model"
        return out

    def queue(self, where: QueueFilter, *, sort: str = "gain", page: int = 1, per_page: int = 50) -> dict:
        """One page of cells: {total, page, per_page, cells: [cell dicts]}."""
        if sort not in SORTS:
            raise ReviewError(f"unknown sort {sort!r} (choose from {', '.join(SORTS)})")
        sql, args = where.where()
        with self._db() as db:
            total = db.execute(f"SELECT COUNT(*) FROM cells WHERE {sql}", args).fetchone()[0]
            rows = db.execute(f"SELECT * FROM cells WHERE {sql} ORDER BY {SORTS[sort]}, sku, attribute "
                              f"LIMIT ? OFFSET ?", args + [per_page, (page - 1) * per_page]).fetchall()
        return {"total": total, "page": page, "per_page": per_page, "cells": [self._cell(r) for r in rows]}

    def cells_of(self, sku: str) -> dict[str, dict]:
        """The stored cells of one product, by attribute."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM cells WHERE sku = ?", (sku,)).fetchall()
        return {r["attribute"]: self._cell(r) for r in rows}

    def decisions(self, sku: str | None = None, attribute: str | None = None) -> list[dict]:
        """The decision log, oldest first (of one product or one cell when given)."""
        sql, args = "1", []
        if sku is not None:
            sql, args = "sku = ?", [sku]
            if attribute is not None:
                sql, args = sql + " AND attribute = ?", args + [attribute]
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM decisions WHERE {sql} ORDER BY id", args).fetchall()
        return [{**dict(r), "candidates": json.loads(r["candidates"])} for r in rows]

    def stats(self) -> dict:
        """Cells per status and the precision measured on the audited cells: {statuses, audit: {decided,
        correct, precision}}; an audited cell is correct when accepted as suggested."""
        with self._db() as db:
            statuses = dict(db.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall())
            audited = dict(db.execute(f"SELECT status, COUNT(*) FROM cells WHERE audit AND status IN {REVIEWED} "
                                      f"GROUP BY status").fetchall())
        decided = sum(audited.values())
        correct = audited.get("accepted", 0)
        return {"statuses": {s: statuses.get(s, 0) for s in STATUSES},
                "audit": {"decided": decided, "correct": correct,
                          "precision": round(correct / decided, 4) if decided else None}}

    # ---- deciding -----------------------------------------------------------------------------------------------
    def decide(self, sku: str, attribute: str, action: str, who: str, value: str | None = None) -> dict:
        """Accept the suggestion, edit it to ``value`` or reject it; returns the cell as it is now.

        The decision is appended to the log and becomes the cell's state; a later decision on the same cell
        replaces the state and is logged beside the earlier one.
        """
        if action not in ACTIONS:
            raise ReviewError(f"unknown action {action!r} (choose from {', '.join(ACTIONS)})")
        if action == "edit" and not (value or "").strip():
            raise ReviewError("an edit needs a non-empty value")
        with self._write() as db:
            row = db.execute("SELECT * FROM cells WHERE sku = ? AND attribute = ?", (sku, attribute)).fetchone()
            if row is None:
                raise UnknownCellError(f"no suggested cell {sku!r} / {attribute!r} in the review store")
            self._log(db, row, action, who, value)
            row = db.execute("SELECT * FROM cells WHERE sku = ? AND attribute = ?", (sku, attribute)).fetchone()
        return self._cell(row)

    def accept_all(self, where: QueueFilter, who: str) -> int:
        """Accept every cell ``where`` selects that holds a suggestion; returns how many."""
        sql, args = where.where()
        with self._write() as db:
            rows = db.execute(f"SELECT * FROM cells WHERE {sql} AND suggested IS NOT NULL", args).fetchall()
            for row in rows:
                self._log(db, row, "accept", who, None)
        return len(rows)

    @staticmethod
    def _log(db, row: sqlite3.Row, action: str, who: str, value: str | None) -> None:
        value = row["suggested"] if action == "accept" else None if action == "reject" else value.strip()
        # the value set the reviewer chose from: the suggestion and its alternatives
        candidates = [row["suggested"]] + [a["value"] for a in json.loads(row["alternatives"])]
        at = _now()
        db.execute("INSERT INTO decisions (sku, attribute, action, value, suggested, confidence, candidates, who, "
                   "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (row["sku"], row["attribute"], action, value, row["suggested"], row["confidence"],
                    json.dumps(candidates, ensure_ascii=False), who, at))
        db.execute("UPDATE cells SET status = ?, value = ?, decided_by = ?, decided_at = ? WHERE sku = ? AND "
                   "attribute = ?", (DONE[action], value, who, at, row["sku"], row["attribute"]))

    # ---- out ----------------------------------------------------------------------------------------------------
    def values(self, *, auto: bool = False) -> dict[str, dict[str, str]]:
        """The values the review gave (accepted and edited cells; with ``auto`` also the auto-filled ones),
        as {sku: {attribute: value}}: a catalog delta."""
        statuses = ("accepted", "edited", "auto") if auto else ("accepted", "edited")
        with self._db() as db:
            rows = db.execute(f"SELECT sku, attribute, value FROM cells WHERE status IN {statuses} "
                              f"ORDER BY sku, attribute").fetchall()
        out: dict[str, dict[str, str]] = {}
        for sku, attribute, value in rows:
            out.setdefault(sku, {})[attribute] = value
        return out

    def training_labels(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """What the review taught: (values confirmed, values refused), each [(sku, attribute, value)].

        Confirmed: the value of each accepted or edited cell (the reviewer's own for an edit). Refused: the
        suggestion of each rejected cell, and the suggestion an edit replaced. Only each cell's latest decision
        counts. Meant for training on reviews: confirmed values as known ones, refused ones as negatives.
        """
        confirmed, refused = [], []
        with self._db() as db:
            rows = db.execute("SELECT sku, attribute, status, suggested, value FROM cells WHERE status IN "
                              f"{REVIEWED} ORDER BY sku, attribute").fetchall()
        for sku, attribute, status, suggested, value in rows:
            if status in ("accepted", "edited"):
                confirmed.append((sku, attribute, value))
            if status != "accepted" and suggested is not None and suggested != value:
                refused.append((sku, attribute, suggested))
        return confirmed, refused
