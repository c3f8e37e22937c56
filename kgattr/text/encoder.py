"""Sentence embeddings of product texts by any local Hugging Face encoder, cached on disk."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from .weights import check_backend, default_text_model, model_identity

log = logging.getLogger(__name__)

# (embed, width) by (path, backend, cache folder), for TextEncoder only (the extractor fine-tunes its
# own copy): a server scoring new products request by request would otherwise read the weights again for each batch
_RUNNERS: dict[tuple, tuple] = {}


def default_cache_dir() -> Path:
    return Path(os.environ.get("KGATTR_CACHE", Path.home() / ".cache" / "kgattr"))


class TextEncoder:
    """Mean-pooled, L2-normalised embeddings of any local Hugging Face encoder.

    Embeddings are cached in SQLite, keyed by the model's identity, ``max_length``, the backend (other than
    ``torch``) and the text's hash, so a second run over the same catalog encodes nothing.

    Args:
        model_path: a local model directory (None: the shipped all-MiniLM-L6-v2).
        max_length: tokens per text; title first, so the description is what gets cut.
        batch_size: texts per forward pass.
        cache_dir: where the cache lives (None: ``$KGATTR_CACHE`` or ``~/.cache/kgattr``; False: no cache).
        backend: ``torch``, ``onnx``, ``onnx-int8`` (ONNX Runtime, int8 matrix products) or ``static`` (token
            vectors distilled from the model, see :mod:`kgattr.text.static`); see :mod:`kgattr.text.encoding`.
    """

    def __init__(self, model_path: str | None = None, *, max_length: int = 48, batch_size: int = 64,
                 cache_dir=None, backend: str = "torch"):
        check_backend(backend)
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.backend = backend

    def __repr__(self) -> str:
        return f"TextEncoder({self.model_path!r}, max_length={self.max_length}, backend={self.backend!r})"

    @property
    def path(self) -> str:
        return self.model_path or default_text_model()

    def _key(self) -> str:
        # torch's key is the one written before backends existed, so its caches stay valid
        blob = json.dumps([*model_identity(self.path), self.max_length] +
                          ([self.backend] if self.backend != "torch" else []))
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def batches(self, texts: list[str]) -> list[np.ndarray]:
        """Indices into ``texts`` of each forward pass: by length (stable), so a batch holds similar lengths
        (less padding), and the texts of a run of whole batches, encoded alone, form the same batches."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        return [order[start:start + self.batch_size] for start in range(0, len(texts), self.batch_size)]

    def encode_batches(self, texts: list[str], progress=False) -> np.ndarray:
        """Embeddings of ``texts``, encoded now (no cache), batch by batch as :meth:`batches` cuts them.

        Args:
            progress: show a bar; or a bar of the caller's to advance.
        """
        from ..io.progress import bar as progress_bar
        from .encoding import runner

        cache_root = default_cache_dir() if self.cache_dir in (None, False) else Path(self.cache_dir)
        key = (self.path, self.backend, str(cache_root))
        if key not in _RUNNERS:
            _RUNNERS[key] = runner(self.path, self.backend, cache_root)
        embed, dim = _RUNNERS[key]
        out = np.zeros((len(texts), dim), dtype=np.float32)
        bar = progress if not isinstance(progress, bool) else \
            progress_bar(total=len(texts), desc="encoding text", unit="text", enabled=progress)
        for idx in self.batches(texts):
            out[idx] = embed([texts[i] for i in idx], self.max_length)
            bar.update(len(idx))
        if bar is not progress:
            bar.close()
        return out

    def encode(self, texts: list[str], *, progress: bool = False, compute=None) -> np.ndarray:
        """Embeddings of ``texts``: float32 array (len(texts), width), rows of unit length
        (the width is the model's hidden size; ``static``: a text with no known token is all zeros).

        Memory stays near the output's own: the cache is read, and the texts it lacks are encoded and stored,
        :data:`CHUNK` texts at a time, each vector written straight into its row. The texts to encode are cut into
        chunks of whole batches in :meth:`batches`' order, so the batches, and the vectors, are those of one pass.

        Args:
            compute: encodes the distinct texts not cached, list -> array as :meth:`encode_batches` (None: here);
                called once a chunk.
        """
        first = dict.fromkeys(texts)                      # distinct texts, in order of first appearance
        for i, t in enumerate(first):
            first[t] = i
        unique = list(first)
        out = None
        cache = None if self.cache_dir is False else self.cache()
        missing: list[int] = []                           # rows of ``unique`` the cache lacks
        for start in range(0, len(unique), CHUNK):
            rows = range(start, min(start + CHUNK, len(unique)))
            found = cache.get({i: text_key(unique[i]) for i in rows}) if cache else {}
            if found:
                out = _rows(out, len(unique), next(iter(found.values())))
                for i, v in found.items():
                    out[i] = v
            missing += [i for i in rows if i not in found]
        if missing:
            from ..io.progress import bar as progress_bar

            bar = progress_bar(total=len(missing), desc="encoding text", unit="text", enabled=progress and not compute)
            order = np.concatenate(self.batches([unique[i] for i in missing]))   # as one pass batches them
            step = max(self.batch_size, CHUNK - CHUNK % self.batch_size)
            for start in range(0, len(order), step):
                chunk = [missing[j] for j in order[start:start + step]]
                batch = [unique[i] for i in chunk]
                vectors = compute(batch) if compute else self.encode_batches(batch, bar)
                if cache:
                    cache.put([(text_key(t), v.tobytes()) for t, v in zip(batch, vectors)])
                out = _rows(out, len(unique), vectors[0])
                out[chunk] = vectors
            bar.close()
        if cache:
            cache.close()
        if not texts:
            return np.zeros((0, 0), np.float32)
        if len(unique) == len(texts):
            return out
        return out[[first[t] for t in texts]]

    @property
    def cache_file(self) -> Path:
        return Path(self.cache_dir or default_cache_dir()) / f"text-{self._key()}.sqlite"

    def cache(self) -> "EmbeddingCache":
        """This encoder's cache of embeddings by :func:`text_key`; close it after use."""
        return EmbeddingCache(self.cache_file)


CHUNK = 16_384        # texts read from the cache, or encoded and stored, at a time


def _rows(out: np.ndarray | None, n: int, vector: np.ndarray) -> np.ndarray:
    """``out``, or a new (n, width) float32 array once the first vector tells the width."""
    return out if out is not None else np.zeros((n, len(vector)), dtype=np.float32)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class EmbeddingCache:
    """An SQLite table of embeddings by key that several processes may share, and that never fails a job.

    WAL mode and a busy timeout let readers and writers wait for each other. A file SQLite finds corrupt is
    renamed aside (``*.corrupt``) and started afresh; where the cache cannot be used at all (a folder that
    is not writable, a lock held too long), it is bypassed: texts are encoded again and not stored. Each
    such event is one logged warning.

    Args:
        file: the SQLite file.
    """

    TIMEOUT = 60.0                                                  # seconds to wait for another process

    def __init__(self, file: Path):
        self.file = file
        self.renewed = False
        self.db = self._open()

    def _open(self):
        db = None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.file, timeout=self.TIMEOUT)
            self._prepare(db)
            return db
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            return self._failed(e)

    def _prepare(self, db) -> None:
        """WAL mode and the table. A connection switching a new file to WAL while another does gets "database is
        locked" at once, the busy timeout not applying there (4 threads opening one new file: 6 times in 300), so
        that is tried again until :attr:`TIMEOUT`."""
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
                return
            except sqlite3.OperationalError as e:
                if getattr(e, "sqlite_errorname", "") != "SQLITE_BUSY" or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _failed(self, error: Exception):
        """After ``error``: a fresh database in place of a corrupt one (once), else None (the cache is bypassed)."""
        corrupt = getattr(error, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        if corrupt and not self.renewed:
            self.renewed = True
            aside = self.file.with_name(self.file.name + ".corrupt")
            try:
                os.replace(self.file, aside)
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.file}{suffix}").unlink(missing_ok=True)
            except OSError:
                pass                                # another process moved it first
            log.warning("%s: text-embedding cache is corrupt (%s); moved to %s and started afresh",
                        self.file, error, aside.name)
            return self._open()
        log.warning("%s: text-embedding cache not used (%s); texts are encoded without it", self.file, error)
        return None

    def get(self, keys: dict[str, str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``keys`` (item -> key), by item; those not stored are left out."""
        by_key = {k: t for t, k in keys.items()}
        klist = list(by_key)
        found: dict[str, np.ndarray] = {}
        while self.db is not None:
            try:
                for start in range(0, len(klist), 900):                 # SQLite's bound-variable limit
                    chunk = klist[start:start + 900]
                    rows = self.db.execute(f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})",
                                           chunk)
                    found.update((by_key[k], np.frombuffer(blob, dtype=np.float32)) for k, blob in rows)
                return found
            except sqlite3.Error as e:
                self.close()
                found.clear()
                self.db = self._failed(e)
        return found

    def put(self, rows: list[tuple[str, bytes]]) -> None:
        """Store (key, vector bytes) ``rows``; a failure only costs the next run's time."""
        if self.db is None:
            return
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
        except sqlite3.Error as e:
            self.close()
            self.db = self._failed(e)
            if self.db is not None:
                self.put(rows)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
