"""A training run's directory: its checkpoints, its metrics log, and the lock that keeps it to one
trainer at a time.

    last.npz         the newest state (every --checkpoint-every / --checkpoint-interval, at the end)
    best.npz         the lowest validation loss so far
    ckpt-<step>.npz  numbered checkpoints, the newest --keep K of them
    metrics.csv      one row per step (METRICS); never behind last.npz
    .lock            held (flock) by the trainer; holds its pid
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from . import checkpoint as ckpt
from .errors import CharrnnError
from .fileio import TMP_PREFIX, write_bytes

METRICS = ("step", "epoch", "train_loss", "val_loss", "lr", "chars_per_sec", "seconds")
NUMBERED = re.compile(r"ckpt-(\d{8,})\.npz")  # exactly what numbered() writes; nothing else is ours


class RunDir:
    """The files of one run; the trainer (run.Run) decides when to write them."""

    def __init__(self, path):
        self.path = Path(path)
        self.metrics = self.path / "metrics.csv"
        self._lock = None

    def checkpoint_path(self, name: str) -> Path:
        return self.path / name

    def numbered(self, step: int) -> str:
        return f"ckpt-{step:08d}.npz"

    def numbered_checkpoints(self) -> list[Path]:
        """The numbered checkpoints charrnn wrote here (names matching NUMBERED exactly), oldest
        step first. A user's own ckpt-3.npz or ckpt-best.npz is not one of them."""
        found = []
        for p in self.path.glob("ckpt-*.npz"):
            m = NUMBERED.fullmatch(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def refuse_existing(self) -> None:
        """A new run never silently replaces one: say what is there and what the choices are.
        Any file a run writes counts (last.npz, best.npz, a numbered checkpoint, metrics.csv)."""
        found = [n for n in ("last.npz", "best.npz") if (self.path / n).is_file()]
        others = [p.name for p in self.numbered_checkpoints()] + \
            ([self.metrics.name] if self.metrics.is_file() else [])
        if not found and not others:
            return
        what = f"{others[0] if not found else found[0]}, a file a run writes"
        if found:
            try:
                p = ckpt.read(self.path / found[0]).progress
                best = p.best_val_loss
                what = (f"a run at step {p.step:,}, best validation loss "
                        + ("none yet" if best is None else f"{float(best):.4f}"))
            except (CharrnnError, KeyError, TypeError, ValueError):
                what = f"a run ({found[0]})"
        raise CharrnnError(f"{self.path} already holds {what}; continue it with --resume, choose "
                           "another --checkpoint-dir, or pass --overwrite to replace it")

    def lock(self) -> None:
        """Hold an advisory lock on the directory for the life of this process: a second trainer
        is refused. The kernel releases it when the process ends, however it ends, so a killed
        run never leaves a stale lock. Readers (sample, eval, info, plot) never take it."""
        self._mkdir()
        try:
            f = open(self.path / ".lock", "a+")  # noqa: SIM115 (held open for the life of the run)
        except OSError as e:
            raise self._cannot(e) from None
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            f.close()
            return
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise CharrnnError(f"{self.path} is in use by another charrnn train (pid {holder}); "
                               "wait for it to finish, or choose another --checkpoint-dir") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f  # kept open, and so locked, until this process ends

    def start_fresh(self, overwrite: bool = False) -> None:
        """A new run: a metrics log with only its header (with overwrite, the previous run's
        checkpoints go first, so --keep never mixes the two runs)."""
        self._mkdir()
        try:
            if overwrite:
                for old in [*self.numbered_checkpoints(), self.path / "last.npz",
                            self.path / "best.npz"]:
                    old.unlink(missing_ok=True)
        except OSError as e:
            raise self._cannot(e) from None
        self._write_metrics([])
        self.remove_stale_temporaries()

    def continue_at(self, step: int) -> None:
        """Resuming at `step` (possibly from another directory's checkpoint): drop log rows past
        it, so the log has no duplicated step; a kill can cut the last row short, and such a row
        is past the checkpoint anyway."""
        self._mkdir()
        rows = []
        try:
            with open(self.metrics, newline="", errors="replace") as f:
                rows = list(csv.reader(f))[1:]
        except FileNotFoundError:
            pass
        except (OSError, csv.Error) as e:
            raise CharrnnError(f"cannot read {self.metrics}: {getattr(e, 'strerror', None) or e}"
                               "; move it away to start a new log") from None
        rows = [r for r in rows if len(r) == len(METRICS) and r[0].isdigit() and int(r[0]) <= step]
        self._write_metrics(rows)
        self.remove_stale_temporaries()

    def remove_stale_temporaries(self) -> None:
        """A process killed while writing a checkpoint leaves its temporary file: never whole."""
        for tmp in self.path.glob(f"{TMP_PREFIX}*"):
            tmp.unlink(missing_ok=True)

    def rotate(self, keep: int) -> None:
        """Delete all but the `keep` newest numbered checkpoints (by step; only charrnn's own)."""
        for old in self.numbered_checkpoints()[:-keep]:
            old.unlink(missing_ok=True)

    def open_log(self, opener=open) -> MetricsLog:
        """The metrics log, opened for appending rows."""
        try:
            return MetricsLog(opener(self.metrics, "a", newline=""), self.metrics)
        except OSError as e:
            raise self._cannot(e) from None

    def _write_metrics(self, rows) -> None:
        lines = [",".join(METRICS)] + [",".join(r) for r in rows]
        write_bytes(self.metrics, ("\n".join(lines) + "\n").encode(),
                    hint="choose another --checkpoint-dir")

    def _mkdir(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._cannot(e) from None

    def _cannot(self, e: OSError) -> CharrnnError:
        return CharrnnError(f"cannot write to {self.path}: {e.strerror or e}; choose another "
                            "--checkpoint-dir")


class MetricsLogError(CharrnnError):
    """The metrics log could not be written (a full disk, say); the trainer stops and keeps its
    last whole checkpoint."""


class MetricsLog:
    """Appends one row per step; the last row can be rewritten once its validation is known."""

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        self.writer = csv.writer(f, lineterminator="\n")
        self.last = None  # (file offset, row) of the last row written
        self.failed = False

    def append(self, row: list) -> None:
        self._do(lambda: (self._remember(row), self.writer.writerow(row)))

    def set_last_val(self, val: float) -> None:
        """Put the final validation loss on the last row (written before it was known)."""
        if self.last is None:
            return
        at, row = self.last
        row[3] = f"{val:.6f}"
        self._do(lambda: (self.f.seek(at), self.f.truncate(), self.writer.writerow(row)))

    def flush(self) -> None:
        """To disk before a checkpoint: the log never lags behind last.npz."""
        self._do(self.f.flush)

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            if not self.failed:  # after a failure, the first error is the one reported
                raise self._error(e) from None

    def _remember(self, row):
        self.last = (self.f.tell(), row)

    def _do(self, action):
        try:
            action()
        except OSError as e:
            self.failed = True
            raise self._error(e) from None

    def _error(self, e: OSError) -> MetricsLogError:
        return MetricsLogError(f"cannot write {self.path}: {e.strerror or e}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.failed = True
        self.close()
