"""``kgattr serve``: a review workbench in the browser and an HTTP API over a trained model.

``app`` holds the FastAPI routes, ``workbench`` the library calls behind them, ``store`` the SQLite review store,
``auth`` the token, sessions and CSRF checks, ``pages`` the server-rendered pages, ``bench`` a latency benchmark.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def serve(model, *, catalog=None, ontology=None, db=None, host: str = "127.0.0.1", port: int = 8000,
          token_file=None, auto_fill: float = 0.9, audit_share: float = 0.05) -> None:
    """Load ``model``, fill the review queue on first start and answer HTTP until interrupted.

    Args:
        model, catalog, ontology, db, auto_fill, audit_share: see :class:`~kgattr.serve.workbench.Workbench`.
        host, port: where to listen.
        token_file: file whose first line is the write token (None: ``$KGATTR_TOKEN``, else a fresh one,
            printed once).
    """
    import os
    import secrets

    import torch
    import uvicorn

    from .app import create_app
    from .auth import read_token
    from .workbench import Workbench

    token = read_token(token_file)
    if token is None:
        token = secrets.token_urlsafe(24)
        print(f"write token (no --token-file or KGATTR_TOKEN given): {token}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"listening on {host}: whoever reaches it can read the catalog and its completions (writes still "
              f"need the token)", flush=True)
    if "OMP_NUM_THREADS" not in os.environ:
        # one thread per torch operation: the scoring thread keeps a core, requests are answered on the others;
        # several threads per small operation wait for each other at every step on a busy machine (one new
        # product: 0.8 s with two threads on two loaded cores, 0.08 s with one)
        torch.set_num_threads(1)
    bench = Workbench(model, catalog=catalog, ontology=ontology, db=db, auto_fill=auto_fill,
                      audit_share=audit_share)
    added = bench.fill_queue()
    bench.warm_up()
    bench.warm_cache()
    print(f"review store {bench.store.path}: {added} cells added; http://{host}:{port}/queue "
          f"(API docs: /docs)", flush=True)
    uvicorn.run(create_app(bench, token), host=host, port=port, log_level="warning")
