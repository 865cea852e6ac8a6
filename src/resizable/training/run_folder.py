"""Run folders: start a new one, re-run one that never finished an epoch, or continue one with its own options.

A run folder holds ``config.yaml`` (the resolved options), ``metrics.jsonl`` and, once an epoch has
finished, ``checkpoint.pt``. Rules:

- A new run never writes into a folder holding a checkpoint or files of its own; a folder holding
  only what a run writes before its first checkpoint (a run that crashed or was killed in its first
  epoch) is re-used, so re-running the same command works without deleting anything.
- ``--resume RUN`` continues RUN with RUN's own options (``config.yaml``, else the checkpoint's
  record of them). An option that differs from the run's is refused by name, except the ones in
  :data:`SAFE_ON_RESUME`; those changes are printed, appended to ``RUN/resumes.jsonl`` and written
  into ``config.yaml`` (so the next ``--resume`` keeps them).
- One writer of the checkpoint at a time: a run holds ``RUN/.lock`` while it trains, and so does
  ``resizable calibrate`` while it measures and writes the bank; a second one is refused (see
  :func:`hold_run_folder`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any, Dict, Optional, Tuple, Type

import yaml

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint, run_options
from ..utils.options import options_to_dict, write_options, yaml_problem
from ..utils.fileio import atomic_write_text

__all__ = ["SAFE_ON_RESUME", "RUN_FILES", "OWN_FILES", "output_path", "resume_folder", "saved_options", "resume_changes", "record_resume",
           "check_new_run_folder", "flag", "LOCK_NAME", "RunFolderBusy", "hold_run_folder"]

# options that may change when a run is continued: they do not change what the checkpoint's state means
SAFE_ON_RESUME = ("epochs", "lr", "device", "progress", "workers", "eval_batch_size", "download", "data_dir",
                  "divergence_ratio", "tensorboard")
# options that name the run folder, not the run
_IGNORED = ("resume", "name", "out_dir")
# what a run writes before its first checkpoint
RUN_FILES = ("config.yaml", "metrics.jsonl", "steps.jsonl")
# every file a run folder's training owns: no other command writes over them
OWN_FILES = (CHECKPOINT_NAME, "resumes.jsonl") + RUN_FILES


def output_path(out: str, default_name: Optional[str] = None, flag: str = "--out") -> Path:
    """The file a command writes for ``--out OUT``, checked before any work starts.

    A trailing ``/`` or an existing folder means a folder: the file is ``default_name`` inside it (made
    when missing), or, for a command with no default name, an error. A run folder's own files
    (:data:`OWN_FILES`, in a folder holding a checkpoint or ``config.yaml``) are refused: only training
    writes them.
    """
    path = Path(out)
    if str(out).endswith(("/", "\\")) or path.is_dir():
        if not default_name:
            raise ValueError(f"{flag} {out} is a folder; give a file path")
        path = path / default_name
    run = path.parent
    if path.name in OWN_FILES and ((run / CHECKPOINT_NAME).is_file() or (run / "config.yaml").is_file()):
        raise ValueError(f"{flag} {path}: refused: {path.name} is the run folder's own file (training writes it); "
                         f"write somewhere else")
    return path


def flag(name: str) -> str:
    """``eval_batch_size`` -> ``--eval-batch-size``."""
    return "--" + name.replace("_", "-")


def resume_folder(path: str) -> Path:
    """The run folder of ``--resume PATH`` (a run folder, or the checkpoint file in one)."""
    p = Path(path)
    run_dir = p.parent if p.is_file() else p
    if not run_dir.is_dir():
        raise FileNotFoundError(f"nothing to resume: no run folder at {path}")
    if not (run_dir / CHECKPOINT_NAME).is_file() and not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"nothing to resume: {run_dir} holds neither {CHECKPOINT_NAME} nor config.yaml")
    return run_dir


def saved_options(run_dir: Path, cls: Type) -> Dict[str, Any]:
    """The options a run was started with: ``config.yaml``, else the checkpoint's ``train_options``."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    path = run_dir / "config.yaml"
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not readable YAML ({yaml_problem(e)})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of option: value")
    else:
        data = run_options(load_checkpoint(run_dir))
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {unknown}; this version accepts {sorted(names)}")
    return dict(data)


def _comparable(cls: Type, values: Dict[str, Any]) -> Dict[str, Any]:
    return options_to_dict(cls(**values)) if not dataclasses.is_dataclass(values) else options_to_dict(values)


def resume_changes(cfg: Any, saved: Dict[str, Any], run_dir: Path) -> Dict[str, Tuple[Any, Any]]:
    """``{option: (the run's value, the new one)}`` for the options ``cfg`` changes; raises ``ValueError``
    naming every changed option that is not in :data:`SAFE_ON_RESUME`."""
    cls = type(cfg)
    old = _comparable(cls, {**saved, "resume": None})
    new = options_to_dict(cfg)
    changed = {k: (old[k], new[k]) for k in new if k not in _IGNORED and old.get(k) != new[k]}
    refused = {k: v for k, v in changed.items() if k not in SAFE_ON_RESUME}
    if refused:
        listed = ", ".join(f"{flag(k)} {_show(n)} (the run: {_show(o)})" for k, (o, n) in refused.items())
        raise ValueError(f"--resume {run_dir} continues that run with its own options, and these differ: {listed}; "
                         f"only {', '.join(flag(k) for k in SAFE_ON_RESUME)} may change on resume (start a new "
                         f"run with another --name to change the others)")
    return changed


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(format(v, "g") if isinstance(v, float) else str(v) for v in value)
    return str(value)


def record_resume(run_dir: Path, cfg: Any, changes: Dict[str, Tuple[Any, Any]], epoch: int) -> Optional[str]:
    """Record a resume's changed options (``resumes.jsonl``, ``config.yaml``); returns the line to print."""
    if not changes:
        return None
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "from_epoch": epoch,
             "changed": {k: {"was": o, "now": n} for k, (o, n) in changes.items()}}
    path = run_dir / "resumes.jsonl"
    previous = path.read_text() if path.is_file() else ""
    atomic_write_text(path, previous + json.dumps(entry) + "\n")
    write_options(dataclasses.replace(cfg, resume=None), run_dir / "config.yaml")
    listed = ", ".join(f"{flag(k)} {_show(o)} -> {_show(n)}" for k, (o, n) in changes.items())
    return f"resume changes {listed} (recorded in {path} and config.yaml)"


def check_new_run_folder(run_dir: Path) -> bool:
    """Raise ``ValueError`` unless ``run_dir`` can hold a new run; True when it is a left-over to re-use
    (a run that never finished an epoch: no checkpoint, only :data:`RUN_FILES`)."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} exists and is a file; pick another --name")
    entries = sorted(p.name for p in run_dir.iterdir())
    if CHECKPOINT_NAME in entries:
        raise ValueError(f"run folder {run_dir} exists and is not empty (it holds a checkpoint); pick another "
                         f"--name, or continue it with --resume {run_dir}")
    others = [e for e in entries if e not in RUN_FILES and not e.startswith(".")]
    if others:
        raise ValueError(f"run folder {run_dir} exists and is not empty ({', '.join(others[:5])}); pick another "
                         f"--name")
    return bool(entries)


LOCK_NAME = ".lock"


class RunFolderBusy(OSError):
    """Another live process is training into the run folder."""


def hold_run_folder(run_dir: Path, doing: str = "training") -> Optional[IO[str]]:
    """Hold ``RUN/.lock`` for as long as the returned file stays open.

    The lock is held by whatever rewrites the run's checkpoint: a training (from its first write to its
    end, statistics bank included) and ``resizable calibrate`` (while it measures and writes the bank).
    A second holder (a second ``--resume``, a job restarted while its first process still runs, a
    ``calibrate`` during a training) raises :class:`RunFolderBusy` before writing anything, instead of
    interleaving its epochs or a bank of older weights with the first one's. The lock is the operating
    system's (``flock``): it goes when the process ends, however it ends, so a killed run never leaves its
    folder locked. The file names the holder (pid, host, start time, what it does) for the error message.
    Returns None where ``flock`` does not exist (Windows): there, nothing guards the folder.

    Args:
        run_dir: the run folder.
        doing: what the holder does, in words (``training``, ``resizable calibrate``), for the message.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    handle = open(run_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        who, _, what = holder.partition(": ")
        raise RunFolderBusy(f"run folder {run_dir} is in use: {who} ({what or 'training'}) holds it; wait for it to "
                            f"end (or stop it), then run this again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                 f"{doing}\n")
    handle.flush()
    return handle
