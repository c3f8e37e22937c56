"""Safe outputs: no output overwrites an input, a command's files are written as one set, one writer at a time.

- :func:`check_outputs` refuses, before any work starts, an output that is an input (the same path once ``./``,
  ``..`` and symlinks are resolved, or the same inode through a hard link), lies inside an input directory (a
  model, an extractor), is another output of the same command, names a directory, or cannot be written.
- :func:`write_set` writes each file to a temporary file beside its target and renames them all last, one after
  another, so that a reader never sees two runs mixed; the temporary files go on any exit Python sees, and
  those a killed process left are swept by the next write of the same target.
- :func:`staged_folder` does the same for a folder (a model, an extractor): written whole beside its name, then
  swapped in for the one there.
- :func:`locked` holds one lock a target (``filelock``), so that two commands never interleave their writes.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from ..exceptions import KgattrError

TMP_SUFFIX = ".kgattr-tmp"        # temporary files are named .NAME.PID.RANDOM.kgattr-tmp beside their target


class OutputError(KgattrError):
    """An output that would overwrite an input, is written by another command now, or cannot be written."""


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)              # hard links
    except OSError:                                 # one of them does not exist
        return False


def _inside(path: Path, directory: Path) -> bool:
    """Whether ``path`` lies in ``directory`` once resolved, or is a hard link to one of its files."""
    if path.resolve().is_relative_to(directory.resolve()):
        return True
    if not path.is_file():
        return False
    st = path.stat()
    return any(os.path.samestat(st, f.stat()) for f in directory.rglob("*") if f.is_file())


def _writable(path: Path) -> bool:
    # the mode bits too: root may write anything, but a file or folder marked read-only is refused for everyone
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def check_outputs(outputs: Iterable[tuple[str, Path]], inputs: Iterable[tuple[str, Path | None]] = ()) -> None:
    """Refuse outputs that would destroy an input or that cannot be written, before any work starts.

    Args:
        outputs: (place, file) pairs a command will write; the place (an option such as ``--cells``, or ``""``)
            starts the error message.
        inputs: (what, file or directory) pairs the command reads, e.g. ``("the input catalog", path)``; None
            paths are skipped. An output inside an input directory is refused.

    Raises:
        OutputError: naming the place, the path and what is wrong.
    """
    outputs = [(place, Path(p)) for place, p in outputs]
    inputs = [(what, Path(p)) for what, p in inputs if p is not None]
    for i, (place, path) in enumerate(outputs):
        where = f"{place} {path}" if place else str(path)
        if path.is_dir():
            raise OutputError(f"{where}: is a directory (a file name is expected)")
        for what, source in inputs:
            if source.is_dir() and _inside(path, source):
                raise OutputError(f"{where}: lies inside {what} {source}")
            if not source.is_dir() and _same_file(path, source):
                raise OutputError(f"{where}: would overwrite {what} {source}")
        for other, before in outputs[:i]:
            if _same_file(path, before):
                raise OutputError(f"{where}: is also the output of {other or before}")
        if path.exists() and not _writable(path):
            raise OutputError(f"{where}: is read-only")
        folder = path.parent                        # written as a temporary file there, then renamed
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{where}: {folder} is not a directory")
        if not (_writable(folder) and os.access(folder, os.X_OK)):
            raise OutputError(f"{where}: the folder {folder} is not writable")


def _lock_file(path: Path) -> Path:
    # Lock files live in one private folder, named by the target's resolved path, so that none is left beside
    # the outputs: they serialise the commands of one account on one machine.
    folder = Path(tempfile.gettempdir()) / f"kgattr-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / (hashlib.sha1(str(path.resolve()).encode()).hexdigest() + ".lock")


@contextlib.contextmanager
def locked(paths: Iterable[Path], *, wait: bool = True):
    """Hold the lock of each path (reentrant within a process) for the block.

    Args:
        paths: targets to be written in the block.
        wait: wait for another command holding one of them; else refuse at once.

    Raises:
        OutputError: without ``wait``, when another command holds one of the locks.
    """
    from filelock import FileLock, Timeout

    with contextlib.ExitStack() as stack:
        for path in sorted({Path(p).resolve() for p in paths}):       # one order everywhere: no deadlock
            lock = FileLock(_lock_file(path), is_singleton=True)
            try:
                stack.enter_context(lock.acquire(timeout=-1 if wait else 0))
            except Timeout:
                raise OutputError(f"{path}: another kgattr command is writing it now") from None
        yield


@contextlib.contextmanager
def claim(outputs: Iterable[tuple[str, Path]], inputs: Iterable[tuple[str, Path | None]] = (), *,
          wait: bool = False):
    """Check the outputs (:func:`check_outputs`), then hold their locks (:func:`locked`) for the block that
    computes and writes them.

    Args:
        outputs, inputs: as for :func:`check_outputs`.
        wait: wait for another command writing one of the outputs; else refuse at once (:class:`OutputError`).
    """
    outputs = list(outputs)
    check_outputs(outputs, inputs)
    with locked([p for _, p in outputs], wait=wait):
        yield


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a temporary file or folder named by it may still be written)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                         # alive, another account's
        return True
    return True


def _sweep(target: Path) -> None:
    """Remove temporary files of ``target`` whose writing process is gone (killed before it could clean up)."""
    prefix = f".{target.name}."
    for tmp in target.parent.glob(f"{glob.escape(prefix)}*{TMP_SUFFIX}"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged(paths: Iterable[Path]):
    """Write several files as one set: the block gets {target: temporary file beside it} to fill; only when it
    ends without error are they renamed over their targets, in order. On any error none is renamed and the
    temporary files are removed. A file keeps the mode of the one it replaces (new ones: 0666 less the umask),
    and a symlink keeps pointing where it did: the file it points to is the one replaced.

    Args:
        paths: the targets.
    """
    staged: dict[Path, tuple[Path, Path]] = {}     # path -> (temporary file, resolved target)
    try:
        for path in paths:
            target = Path(path).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            _sweep(target)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=target.parent)
            os.close(fd)
            staged[path] = (Path(name), target)
        named = {str(tmp): path for path, (tmp, _) in staged.items()}
        try:
            yield {path: tmp for path, (tmp, _) in staged.items()}
        except OSError as e:                        # name the output, not the temporary file
            if e.filename in named or (e.filename is None and len(named) == 1):
                raise OSError(e.errno, e.strerror or str(e), str(named.get(e.filename, path))) from e
            raise
        for tmp, target in staged.values():
            mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~umask()
            os.chmod(tmp, mode)                             # mkstemp creates 0600
        for tmp, target in staged.values():
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)


def write_set(writers: dict[Path, Callable[[Path], None]]) -> None:
    """Write several files as one set (see :func:`staged`), each by its ``write(tmp)``.

    Args:
        writers: target path -> function writing the content to the temporary path it is given.
    """
    with staged(writers) as tmp:
        for path, write in writers.items():
            try:
                write(tmp[path])
            except OSError as e:
                if e.filename is None:              # e.g. a full disk: name the output being written
                    raise OSError(e.errno, e.strerror or str(e), str(path)) from e
                raise


def atomic_write(path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename into place, so readers never see a half-written file (a set of one)."""
    write_set({Path(path): write})


@contextlib.contextmanager
def staged_folder(path):
    """Write a folder whole: the block gets an empty temporary folder beside ``path`` to fill; only when it ends
    without error does that folder take ``path``'s place (a folder there is renamed aside, the new one renamed
    in, then the old one removed, under ``path``'s lock, so two writers swap one after the other). On any error
    the temporary folder is removed and ``path`` is left as it was. The temporary folders are named
    ``.NAME.partial-PID-XXXX`` and ``.NAME.old-PID-XXXX``; those of a killed process are removed by the next write
    of the same folder.

    Args:
        path: the folder to write; what it holds now is replaced whole, so callers check first that it may be.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = f".{path.name}."
    for entry in path.parent.glob(glob.escape(stem) + "*"):          # leftovers of killed writers
        kind, _, rest = entry.name[len(stem):].partition("-")
        pid = rest.partition("-")[0]
        if kind in ("partial", "old") and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{stem}partial-{os.getpid()}-", dir=path.parent))
    old = tmp.with_name(f"{stem}old-" + tmp.name[len(f"{stem}partial-"):])
    try:
        yield tmp
        tmp.chmod(0o777 & ~umask())                      # mkdtemp creates 0700
        moved = False
        try:
            with locked([path]):
                if path.exists():
                    path.rename(old)
                    moved = True
                tmp.rename(path)
        except BaseException:
            if moved and not path.exists():
                old.rename(path)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)           # nothing left there after the swap
        shutil.rmtree(old, ignore_errors=True)
