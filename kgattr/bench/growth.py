"""How kgattr's cost grows with the catalog: every stage timed at several sizes of a generated catalog.

At each size N, a catalog of N products is drawn from a real one (:func:`~kgattr.io.scale.resample`), and each stage
runs as its own ``python -m kgattr`` process, so that its peak memory is its own (``os.wait4``'s ``ru_maxrss``):

- ``sample``: writing the generated catalog;
- ``train_cold`` (an empty text-embedding cache) and ``train_warm`` (the same again, every text cached);
- ``impute_unchanged``: the training catalog (every product's cells were scored in training);
- ``impute_changed``: every product with known values lost one of them, so every product goes through the network
  (its text and neighbours are reused);
- ``complete``: ``complete --sku`` of one product, in a fresh process (loading included).

The recall@10 of the approximate neighbour index (:func:`~kgattr.engine.index.inverted_file`) against exact search is
measured over the trained model's vectors at each size, whichever index the model uses, and that of the neighbours the
model was trained with (:func:`~kgattr.engine.index.joined_search` above the exact index's limit). Each stage's growth
exponent is the least-squares slope of log(seconds) against log(N) (1: linear; start-up costs flatten it at small
sizes). A stage is not run where its peak memory, extrapolated from the sizes before, would pass ``max_memory``,
and a stage that passes it while running is stopped: the report says which, with the numbers.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

SIZES = (10_000, 44_441, 200_000, 1_000_000)
STAGES = ("sample", "train_cold", "train_warm", "impute_unchanged", "impute_changed", "complete")
GB = 2 ** 30


def measure(argv: list[str], env: dict, max_memory: float) -> dict:
    """Run ``argv``; its wall and CPU seconds and peak resident memory (bytes). The process is killed when its
    resident memory passes ``max_memory`` bytes (``stopped``: the bytes and seconds then). Linux counts a child's
    peak from the image it was forked from, so the peak includes the measuring process's own size at most (a few
    hundred MB from the command line).
    """
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopped, done = {}, threading.Event()

    def watch():                                    # polls /proc twice a second: ru_maxrss is known only at exit
        while not done.wait(0.5):
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            if rss > max_memory:
                stopped.update(bytes=rss, seconds=round(time.monotonic() - start, 1))
                proc.kill()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    watcher.join()
    result = {"seconds": round(time.monotonic() - start, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_bytes": usage.ru_maxrss * 1024, "exit": proc.returncode}
    if stopped:
        result["stopped"] = stopped
    elif proc.returncode:
        result["error"] = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return result


def changed(source: Path, target: Path) -> None:
    """Write ``source``'s products to ``target``, each with known values less its last one (the record changes,
    the text does not)."""
    from ..io.catalog import read_chunks
    from ..io.writers import write_jsonl

    def records():
        for chunk in read_chunks(source, 4096):
            for p in chunk:
                record = p.to_json()
                record["attributes"] = dict(list(p.attributes.items())[:-1])
                yield record
    write_jsonl(records(), target)


def recall(model: Path, queries: int = 1000, k: int = 10, seed: int = 0) -> dict:
    """recall@k against exact search, for ``queries`` stored vectors of ``model``'s neighbour index (each excluded
    from its own answer): of an inverted file (:func:`~kgattr.engine.index.inverted_file`) over those vectors,
    searched a query at a time as a new product is; and of the neighbours the model was trained with (found by
    :func:`~kgattr.engine.index.joined_search` where its index is an inverted file). With the seconds of both."""
    import faiss
    import numpy as np

    from safetensors import safe_open

    from ..engine.index import NeighbourIndex

    stored = NeighbourIndex.load(model / "neighbours.faiss")
    vectors = stored.reconstruct(np.arange(stored.index_.ntotal))
    ids = np.random.default_rng(seed).choice(len(vectors), min(queries, len(vectors)), replace=False)
    start = time.monotonic()
    exact = NeighbourIndex(faiss.IndexFlatIP(vectors.shape[1])).add(vectors).search(vectors[ids], k, exclude=ids)
    exact_seconds = time.monotonic() - start
    start = time.monotonic()
    approximate = NeighbourIndex(exact_limit=0).add(vectors)
    built = time.monotonic() - start
    start = time.monotonic()
    found = approximate.search(vectors[ids], k, exclude=ids)
    searched = time.monotonic() - start
    with safe_open(str(model / "state.safetensors"), "np") as f:
        trained = f.get_tensor("knn_index")[ids]
    share = lambda found: round(float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / k
                                              for a, b in zip(exact.index, found)])), 4)
    return {"recall_at_10": share(found.index), "trained_recall_at_10": share(trained),
            "model_index_approximate": stored.approximate,
            "nlist": approximate.index_.nlist, "nprobe": approximate.index_.nprobe,
            "ivf_build_seconds": round(built, 2), "exact_ms_per_query": round(1000 * exact_seconds / len(ids), 3),
            "ivf_ms_per_query": round(1000 * searched / len(ids), 3)}


def exponent(sizes: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(size) (None: fewer than two sizes)."""
    import numpy as np

    pairs = [(s, v) for s, v in zip(sizes, values) if v and v > 0]
    if len(pairs) < 2:
        return None
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


def _predicted_peak(runs: dict, stage: str, size: int) -> float | None:
    """Peak bytes of ``stage`` at ``size``, extrapolated from the sizes measured (None: fewer than two)."""
    known = [(n, r[stage]["peak_bytes"]) for n, r in runs.items() if "peak_bytes" in r.get(stage, {})
             and "stopped" not in r[stage]]
    if len(known) < 2:
        return None
    slope = exponent([n for n, _ in known], [b for _, b in known])
    n, peak = known[-1]
    return peak * (size / n) ** slope


def run(source: Path, out: Path, *, sizes=SIZES, seed: int = 0, max_memory: float = 6 * GB, cold: bool = True,
        cache: Path | None = None, encoder: str = "torch", log=print) -> dict:
    """Measure every stage at every size (ascending); write ``out``/growth.json, growth.md and growth.png.

    Args:
        source: the real catalog to draw from.
        out: report directory; each size's generated catalogs, model and text cache are left in ``out``/work/N
            (several GB at the largest sizes: remove it when done).
        max_memory: bytes a stage may hold; see the module's description.
        cold: also train with an empty text cache (its BERT encoding is most of a first run's time).
        cache: a text-embedding cache shared by every size and kept (None: an empty one a size, so that the first
            training is cold and the second warm). Every size's texts are among those of the larger sizes (copy c
            of a product is the same at any size), so a cache filled at one size is warm for the smaller ones;
            training with it is reported as warm, and no cold training runs.
        encoder: the text encoder training runs (``train --encoder``; imputing uses the model's).
        log: called with a line per stage.
    """
    runs: dict[int, dict] = {}
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    kgattr = [sys.executable, "-m", "kgattr", "-q"]
    for size in sorted(sizes):
        work = out / "work" / str(size)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        env["KGATTR_CACHE"] = str(cache or work / "cache")
        catalog, model, result = work / "catalog.jsonl", work / "model", {}
        runs[size] = result
        commands = {
            "sample": ["sample", "--from", str(source), "--size", str(size), "--seed", str(seed), "-o", str(catalog)],
            "train_cold": ["train", str(catalog), "--out", str(model), "--encoder", encoder],
            "train_warm": ["train", str(catalog), "--out", str(model), "--encoder", encoder],
            "impute_unchanged": ["impute", str(catalog), "--model", str(model), "-o", str(work / "out.jsonl")],
            "impute_changed": ["impute", str(work / "changed.jsonl"), "--model", str(model), "-o",
                               str(work / "out.jsonl")],
            "complete": ["complete", "--model", str(model), "--sku", None]}
        for stage in STAGES:
            if stage == "train_cold" and (cache or not cold):
                continue
            needs = {"sample": None, "train_cold": "sample", "train_warm": "sample"}.get(stage, "train_warm")
            if needs and result.get(needs, {}).get("exit") != 0:
                result[stage] = {"skipped": f"{needs} did not complete"}
                continue
            peak = _predicted_peak(runs, stage, size)
            if peak is not None and peak > max_memory:
                result[stage] = {"skipped": f"predicted peak {peak / GB:.1f} GiB > {max_memory / GB:.1f} GiB",
                                 "predicted_peak_bytes": int(peak)}
                log(f"{size}: {stage} not run ({result[stage]['skipped']})")
                continue
            if stage == "impute_changed":
                changed(catalog, work / "changed.jsonl")
            argv = commands[stage]
            if stage == "complete":
                with open(catalog) as f:
                    argv[-1] = json.loads(f.readline())["sku"]
            result[stage] = measure(kgattr + argv, env, max_memory)
            if stage.startswith("impute") and result[stage]["exit"] == 0:
                result[stage]["products_per_second"] = round(size / result[stage]["seconds"], 1)
            log(f"{size}: {stage} {json.dumps(result[stage])}")
            report = summarise(source, runs, max_memory)
            write_report(report, out)                 # after every stage: a run stopped early keeps what it measured
        if result.get("train_warm", {}).get("exit") == 0:
            result["index"] = recall(model)
            log(f"{size}: index {json.dumps(result['index'])}")
            report = summarise(source, runs, max_memory)
            write_report(report, out)
    return report


def summarise(source: Path, runs: dict, max_memory: float) -> dict:
    """The report: every measurement, and per stage the growth exponents of seconds, CPU seconds and peak memory."""
    growth = {}
    for stage in STAGES:
        done = [(n, r[stage]) for n, r in runs.items() if r.get(stage, {}).get("exit") == 0]
        sizes = [n for n, _ in done]
        growth[stage] = {key: exponent(sizes, [m[key] for _, m in done])
                         for key in ("seconds", "cpu_seconds", "peak_bytes")}
    return {"source": str(source), "cores": os.cpu_count(), "max_memory_bytes": int(max_memory),
            "measured": time.strftime("%Y-%m-%d"), "sizes": {str(n): r for n, r in runs.items()}, "growth": growth}


def markdown(report: dict) -> str:
    """The report as a markdown table: a row per stage, a column per size (seconds; peak GiB), exponents last."""
    sizes = list(report["sizes"])
    head = "| stage | " + " | ".join(f"{int(n):,}" for n in sizes) + " | exponent (s; CPU s; memory) |"
    lines = [f"Generated from `{report['source']}`, measured {report['measured']} on {report['cores']} cores: "
             f"wall seconds (CPU seconds), peak GiB (2^30 bytes).", "", head, "|" + " --- |" * (len(sizes) + 2)]
    for stage in STAGES:
        cells = []
        for n in sizes:
            m = report["sizes"][n].get(stage)
            if m is None:
                cells.append("–")
            elif "skipped" in m:
                cells.append("not run: " + m["skipped"])
            elif "stopped" in m:
                cells.append(f"stopped at {m['stopped']['bytes'] / GB:.1f} GiB after {m['stopped']['seconds']:.0f} s")
            elif m.get("exit"):
                cells.append(f"failed: {' '.join(m.get('error', []))[:80]}")
            else:
                rate = f"; {m['products_per_second']:,.0f}/s" if "products_per_second" in m else ""
                cells.append(f"{m['seconds']:,.0f} s ({m['cpu_seconds']:,.0f}); {m['peak_bytes'] / GB:.2f} GiB{rate}")
        g = report["growth"][stage]
        slopes = "; ".join("–" if g[k] is None else f"{g[k]:.2f}" for k in ("seconds", "cpu_seconds", "peak_bytes"))
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {slopes} |")
    recalls = [f"{int(n):,}: {r['index']['recall_at_10']:.3f} a query (nlist {r['index']['nlist']}, nprobe "
               f"{r['index']['nprobe']}; {r['index']['ivf_ms_per_query']:.2f} ms a query against "
               f"{r['index']['exact_ms_per_query']:.2f} exact), {r['index'].get('trained_recall_at_10', 1):.3f} the "
               f"model's own neighbours" for n, r in report["sizes"].items() if "index" in r]
    if recalls:
        lines += ["", "Approximate neighbour index, recall@10 against exact search: " + "; ".join(recalls) + "."]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> None:
    """``out``/growth.json, growth.md and growth.png (seconds and peak memory against products, log-log)."""
    import matplotlib

    from ..io.outputs import write_set

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage in STAGES:
        done = [(int(n), r[stage]) for n, r in report["sizes"].items() if r.get(stage, {}).get("exit") == 0]
        if done:
            for ax, key, scale in ((axes[0], "seconds", 1), (axes[1], "peak_bytes", GB)):
                ax.plot([n for n, _ in done], [m[key] / scale for _, m in done], "o-", label=stage)
    for ax, label in zip(axes, ("wall seconds", "peak memory, GiB")):
        ax.set(xscale="log", yscale="log", xlabel="products", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    write_set({out / "growth.json": lambda tmp: tmp.write_text(json.dumps(report, indent=1)),
               out / "growth.md": lambda tmp: tmp.write_text(markdown(report)),
               out / "growth.png": lambda tmp: fig.savefig(tmp, format="png", dpi=110)})
    plt.close(fig)
