"""Text encoding and scoring spread over a Ray cluster: a pool of actors (``ray.util.ActorPool``), each holding
the model, fed shards of the catalog; results come back in the catalog's order. In training, the text is
encoded the same way and the linear scorers' fits (one per attribute) run as Ray tasks.

The results are those of one process, byte for byte. Texts are encoded in the batches one process runs: the
texts to encode, sorted by length, are cut into shards of whole batches (:meth:`TextEncoder.batches`), so each
batch holds the same texts whichever actor runs it, and the vectors are stored in the driver's text cache and
sent along with the products that need them. The rest of scoring reads one product at a time (its text vector,
its neighbours, the trained pool), so how products are grouped into shards changes nothing.

Every node needs kgattr and its dependencies installed and the model directory (and a text model or extractor it
names) at the same path, e.g. on a shared file system.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..exceptions import KgattrError
from ..io.catalog import Catalog
from ..text.encoder import TextEncoder, text_key

BATCHES_PER_SHARD = 16                          # of TextEncoder.batch_size texts: the most in a shard of encoding
PRODUCTS_PER_SHARD = 2048                       # a shard of scoring


class RayError(KgattrError):
    """Ray is missing, or the cluster cannot be reached."""


def connect(address: str | None = None, **options):
    """The ``ray`` module, connected: to ``address`` (a cluster's ``HOST:PORT`` or ``ray://HOST:PORT``, or
    ``local`` for a new one on this machine), else as ``ray.init`` finds it: ``$RAY_ADDRESS``, a cluster
    started on this machine with ``ray start --head``, or a new local one.

    Args:
        options: for ``ray.init`` (e.g. ``num_cpus`` of a new local cluster).
    """
    try:
        import ray
    except ImportError:
        raise RayError("--ray needs Ray: pip install 'kgattr[ray]'") from None
    if not ray.is_initialized():
        here = str(Path(__file__).resolve().parents[1])        # workers import this kgattr, as the driver does
        env = {"PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
               "HF_HUB_OFFLINE": "1"}
        if "KGATTR_CACHE" in os.environ:                          # the driver's text cache, where a node has it
            env["KGATTR_CACHE"] = os.environ["KGATTR_CACHE"]
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env},
                     **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RayError(f"--ray-address {address or 'auto'}: {e}") from None
    return ray


class Worker:
    """A Ray actor: the encoder and, for scoring, the model (loaded once, kept for every shard).

    Args:
        encoder: the :class:`TextEncoder` settings to encode with.
        model: a model directory (None: encoding only).
        load: reads the model directory (``AttributeCompleter.load``).
    """

    def __init__(self, encoder: TextEncoder, model: str | None = None, load=None):
        self.encoder = encoder
        self.completer = load(model) if model else None

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode_batches(texts)

    def impute(self, shard: Catalog, vectors: list[tuple[str, bytes]], evidence_floor: float) -> list:
        """Completions of ``shard``; ``vectors`` (text key, float32 bytes) go to the text cache first."""
        if vectors:
            cache = self.completer.text_encoder().cache()
            cache.put(vectors)
            cache.close()
        return self.completer.impute(shard, evidence_floor=evidence_floor)


def _count(ray, workers: int | None) -> int:
    """``workers``, else one per CPU of the cluster."""
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def _pool(ray, encoder: TextEncoder, model: str | None, workers: int | None, load=None):
    """(an ActorPool of :class:`Worker` actors, how many)."""
    from ray.util import ActorPool

    count = _count(ray, workers)
    actor = ray.remote(num_cpus=1)(Worker)
    return ActorPool([actor.remote(encoder, model, load) for _ in range(count)]), count


def _results(ray, mapped, total: int, desc: str, progress: bool) -> list:
    """The items of ``mapped`` (ActorPool.map) in order; an error a worker raised is raised here."""
    from ..io.progress import bar

    out = []
    try:
        for item in bar(mapped, total=total, desc=desc, unit="shard", enabled=progress):
            out.append(item)
    except ray.exceptions.RayError as e:                      # a task's error, or an actor that died starting
        raise _failure(e) from None
    return out


def _failure(error) -> Exception:
    """What to raise for a Ray task's or actor's ``error``: the kgattr error it raised, else a :class:`RayError`."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, KgattrError) else RayError(f"a Ray worker failed: {cause or error}")


def _encode_with(ray, pool, encoder: TextEncoder, progress: bool):
    """``compute`` for :meth:`TextEncoder.encode` on ``pool`` (:func:`_pool`): the texts cut into shards of whole
    batches, in order."""
    actors, count = pool

    def compute(texts: list[str]) -> np.ndarray:
        batches = encoder.batches(texts)
        step = max(1, min(BATCHES_PER_SHARD, -(-len(batches) // count)))       # every actor busy on a small run
        groups = [np.concatenate(batches[i:i + step]) for i in range(0, len(batches), step)]
        shards = [[texts[i] for i in g] for g in groups]          # each sorted already: encoded as one process does
        mapped = actors.map(lambda a, shard: a.encode.remote(shard), shards)
        vectors = _results(ray, mapped, len(shards), "encoding text", progress)
        out = np.zeros((len(texts), vectors[0].shape[1]), dtype=np.float32)
        for g, v in zip(groups, vectors):
            out[g] = v
        return out
    return compute


def encoder_on_ray(encoder: TextEncoder, *, address: str | None = None, workers: int | None = None,
                   progress: bool = False):
    """A ``compute`` for :meth:`TextEncoder.encode` that encodes on a pool of Ray actors, connecting on first use.

    Args:
        address: the cluster (see :func:`connect`).
        workers: actors (None: one per CPU of the cluster).
    """
    def compute(texts: list[str]) -> np.ndarray:
        ray = connect(address)
        return _encode_with(ray, _pool(ray, encoder, None, workers), encoder, progress)(texts)
    return compute


class RayCluster:
    """Training's parts that spread over a Ray cluster (``AttributeCompleter.fit(cluster=...)``), connecting on
    first use: text encoding on an actor pool, and independent fits as Ray tasks.

    Args:
        address, workers: as :func:`encoder_on_ray`.
    """

    def __init__(self, *, address: str | None = None, workers: int | None = None, progress: bool = False):
        self.address = address
        self.workers = workers
        self.progress = progress

    def encoder(self, encoder: TextEncoder):
        """A ``compute`` for ``encoder.encode`` (see :func:`encoder_on_ray`)."""
        return encoder_on_ray(encoder, address=self.address, workers=self.workers, progress=self.progress)

    def map(self, fn, jobs) -> list:
        """``list(map(fn, jobs))``, each call a Ray task of one CPU; ``fn`` is importable on every node. At most
        twice as many jobs as the cluster has CPUs are in flight, so a generator of large jobs is taken as
        tasks free up."""
        ray = connect(self.address)
        task = ray.remote(num_cpus=1)(fn)
        window = 2 * _count(ray, self.workers)
        refs, out = [], []
        try:
            for job in jobs:
                if len(refs) - len(out) >= window:             # the oldest first: results stay in order
                    out.append(ray.get(refs[len(out)]))
                refs.append(task.remote(job))
            out += ray.get(refs[len(out):])
        except ray.exceptions.RayError as e:
            raise _failure(e) from None
        return out


class RayImputer:
    """:meth:`AttributeCompleter.impute` on Ray workers that hold the model at ``model``; the model is loaded and
    the actor pool started once, for every catalog it is then given.

    Args:
        model: the model directory, at this path on every node.
        load: reads it (``AttributeCompleter.load``), here and on each worker.
        address, workers: as :func:`encoder_on_ray`.
    """

    def __init__(self, model, load, *, address: str | None = None, workers: int | None = None,
                 progress: bool = False):
        self.ray = connect(address)
        self.completer = load(model)
        self.encoder = self.completer.text_encoder()
        self.pool = _pool(self.ray, self.encoder, str(Path(model).resolve()), workers, load)
        self.progress = progress

    def __call__(self, chunks: list[Catalog], evidence_floor: float = 0.0) -> list[list]:
        """Per chunk, its :class:`~kgattr.engine.completion.ProductCompletion` list: the chunks are cut further
        into shards of :data:`PRODUCTS_PER_SHARD` products; the answer is the one impute gives for all the
        chunks' products at once in one process (see :meth:`AttributeCompleter.impute` for ``evidence_floor``)."""
        from .scoring import texts_to_encode

        ray, completer, encoder = self.ray, self.completer, self.encoder
        whole = Catalog([p for chunk in chunks for p in chunk], chunks[0].source if chunks else "")
        texts = texts_to_encode(completer, whole) if completer.read_text else []
        vectors = dict(zip(texts, encoder.encode(texts, compute=_encode_with(ray, self.pool, encoder, self.progress)))) \
            if texts else {}
        shards, sizes = [], []
        for chunk in chunks:
            parts = [Catalog(chunk.products[i:i + PRODUCTS_PER_SHARD], chunk.source)
                     for i in range(0, len(chunk), PRODUCTS_PER_SHARD)]
            shards += parts
            sizes.append(len(parts))

        def task(actor, shard: Catalog):
            own = {p.text for p in shard} & vectors.keys()
            return actor.impute.remote(shard, [(text_key(t), vectors[t].tobytes()) for t in own], evidence_floor)

        actors, _ = self.pool
        done = _results(ray, actors.map(task, shards), len(shards), "scoring", self.progress)
        out, at = [], 0
        for n in sizes:
            out.append([pc for part in done[at:at + n] for pc in part])
            at += n
        return out
