"""Checkpoints that survive being killed: safetensors for tensors, JSON for everything else.

Layout of a checkpoint directory (``root`` below)::

    root/latest                   one line: the name of the newest complete checkpoint
    root/step_00000100/
        model.safetensors         the model's state_dict (tied weights stored once)
        optimizer.safetensors     the optimizer's tensor state (Adam's moments, ...; an OptimizerChain's
                                  members' under chain0., chain1., ...)
        extra.safetensors         any other tensors, e.g. RNG states (torch's is a uint8 tensor)
        state.json                step, the optimizer's hyperparameters and numbers, anything else

**No pickle anywhere.** ``torch.save``/``torch.load`` pickle, and unpickling a file can run arbitrary
code; safetensors and JSON can only ever produce tensors and plain data.

**Atomic.** A checkpoint is written into a hidden ``.tmp-...`` directory, flushed to disk, and only
then renamed to ``step_...`` -- ``rename`` is atomic on POSIX, so a ``step_...`` directory is always
complete. The ``latest`` pointer is updated last, also by writing a temporary file and renaming it over
the old one. A process killed at *any* moment therefore leaves ``latest`` pointing at a complete
checkpoint (the new one or the previous one), plus perhaps a stale ``.tmp-...`` directory that the next
save removes. A finished checkpoint is never modified in place.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from bestiary.train.optim import OptimizerChain

Optimizer = torch.optim.Optimizer | OptimizerChain  # what save/load accept as the optimizer

FORMAT_VERSION = 1
LATEST = "latest"
_TMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"^step_(\d+)(?:_[0-9a-f]+)?$")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns besides filling the model and optimizer in place."""

    path: Path
    step: int
    extra: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- low-level writes
# Small named functions so that a test can kill the process in the middle of any of them.


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk, so it survives a power cut too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_model(path: Path, model: nn.Module) -> None:
    # save_model (not save_file) because it de-duplicates tied weights, which save_file refuses.
    save_model(model, str(path), force_contiguous=True)
    _fsync_file(path)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
    _fsync_file(path)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _point_latest(root: Path, name: str) -> None:
    """Atomically make ``root/latest`` say ``name``: write a temp file, then rename it over the old one."""
    tmp = root / f"{_TMP_PREFIX}{LATEST}-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / LATEST)
    _fsync_dir(root)


# ------------------------------------------------------------------------------------ optimizer state


def _optimizer_to_files(optimizer: Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and plain data (for JSON).

    An :class:`OptimizerChain` is stored member by member: member ``j``'s tensors are named ``chain{j}....``
    and its JSON part is entry ``j`` of ``{"chain": [...]}``.
    """
    if isinstance(optimizer, OptimizerChain):
        parts = [_optimizer_to_files(member) for member in optimizer.optimizers]
        tensors = {f"chain{j}.{k}": v for j, (t, _) in enumerate(parts) for k, v in t.items()}
        return tensors, {"chain": [meta for _, meta in parts]}
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    numbers: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value
            else:
                numbers.setdefault(str(idx), {})[name] = value
    # A dtype hyperparameter (Muon's ns_dtype=torch.bfloat16) is no JSON value: store its name.
    groups = [
        {k: str(v) if isinstance(v, torch.dtype) else v for k, v in g.items()} for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "numbers": numbers}


def _optimizer_from_files(optimizer: Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    if isinstance(optimizer, OptimizerChain) or "chain" in meta:
        members = optimizer.optimizers if isinstance(optimizer, OptimizerChain) else [optimizer]
        saved = meta.get("chain", [meta])
        if len(saved) != len(members):
            raise ValueError(
                f"checkpoint holds a chain of {len(saved)} optimizers, this optimizer is a chain of {len(members)}"
            )
        for j, (member, member_meta) in enumerate(zip(members, saved, strict=True)):
            prefix = f"chain{j}."
            member_tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            _optimizer_from_files(member, member_tensors, member_meta)
        return
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, per_param in meta["numbers"].items():
        state.setdefault(int(idx), {}).update(per_param)
    groups = meta["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(
            f"checkpoint has {len(groups)} optimizer param groups, this optimizer has {len(optimizer.param_groups)}"
        )
    for saved_group, current in zip(groups, optimizer.param_groups):
        for k, v in saved_group.items():  # JSON turned tuples (Adam's betas) into lists, dtypes into names
            if isinstance(current.get(k), tuple) and isinstance(v, list):
                saved_group[k] = tuple(v)
            elif isinstance(current.get(k), torch.dtype) and isinstance(v, str):
                saved_group[k] = getattr(torch, v.removeprefix("torch."))
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ------------------------------------------------------------------------------------------ RNG state


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every global RNG of this process: torch (CPU + each CUDA device) as tensors, Python/NumPy as JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}  # a uint8 tensor
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    version, mt_words, gauss_next = random.getstate()  # (3, 625 ints, float | None)
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()  # MT19937: 624 uint32 words + position
    meta = {
        "python": [version, list(mt_words), gauss_next],
        "numpy": {
            "keys": keys.tolist(),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached_gaussian,
        },
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(tensors["torch_cpu"])
    n_cuda = sum(k.startswith("cuda_") for k in tensors)
    cuda = [tensors[f"cuda_{i}"] for i in range(n_cuda)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, mt_words, gauss_next = meta["python"]
    random.setstate((version, tuple(mt_words), gauss_next))
    n = meta["numpy"]
    keys = np.asarray(n["keys"], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))


# --------------------------------------------------------------------------------------- save / load


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _remove_quietly(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: Optimizer | None = None,
    *,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write a checkpoint for ``step`` under ``root`` atomically and point ``root/latest`` at it.

    ``extra`` must be JSON-serialisable; ``tensors`` are stored with safetensors. ``keep_last=k`` deletes
    all but the ``k`` newest checkpoints (never the one ``latest`` points at). One writer per ``root``.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(_TMP_PREFIX + "*"):  # left behind by a writer that was killed
        _remove_quietly(stale)

    name = f"step_{step:08d}"
    if (root / name).exists():  # e.g. resumed from an older checkpoint: never rewrite a finished one
        name = f"{name}_{uuid.uuid4().hex[:8]}"
    tmp = root / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    tmp.mkdir()

    state: dict[str, Any] = {"format": FORMAT_VERSION, "step": step, "extra": extra or {}}
    _write_model(tmp / "model.safetensors", model)
    if optimizer is not None:
        opt_tensors, state["optimizer"] = _optimizer_to_files(optimizer)
        _write_tensors(tmp / "optimizer.safetensors", opt_tensors)
    _write_tensors(tmp / "extra.safetensors", tensors or {})
    _write_json(tmp / "state.json", state)
    _fsync_dir(tmp)

    os.replace(tmp, root / name)  # the atomic moment: the checkpoint now exists, complete
    _fsync_dir(root)
    _point_latest(root, name)

    if keep_last is not None:
        for _, old in _step_dirs(root)[:-keep_last]:
            if old.name != name:
                trash = root / f"{_TMP_PREFIX}trash-{old.name}"
                os.replace(old, trash)  # disappear atomically, then delete at leisure
                shutil.rmtree(trash, ignore_errors=True)
    return root / name


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``root/latest`` points at, or None if nothing was saved yet."""
    pointer = Path(root) / LATEST
    if not pointer.exists():
        return None
    target = Path(root) / pointer.read_text().strip()
    if not (target / "state.json").exists():
        raise FileNotFoundError(f"{pointer} points at {target.name}, which is missing or incomplete")
    return target


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: Optimizer | None = None,
) -> Checkpoint:
    """Load a checkpoint into ``model`` (and ``optimizer``) in place.

    ``path`` is a checkpoint directory or a root holding a ``latest`` pointer.
    """
    path = Path(path)
    if (path / LATEST).exists():
        path = latest_checkpoint(path)  # type: ignore[assignment]
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint directory (no state.json)")
    state = json.loads((path / "state.json").read_text())
    if state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unknown checkpoint format {state.get('format')!r}")
    load_model(model, str(path / "model.safetensors"), strict=True)
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"{path} holds no optimizer state")
        _optimizer_from_files(optimizer, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    return Checkpoint(path, state["step"], state["extra"], load_file(str(path / "extra.safetensors")))
