"""Checkpoints that survive being killed: safetensors for tensors, JSON for everything else.

Layout of a checkpoint directory (``root`` below)::

    root/latest                   one line: the name of the newest complete checkpoint
    root/step_00000100/
        model.safetensors         the model's state_dict (tied weights stored once)
        optimizer.safetensors     the optimizer's tensor state (Adam's moments, ...; an OptimizerChain's
                                  members' under chain0., chain1., ...)
        extra.safetensors         any other tensors, e.g. RNG states (torch's is a uint8 tensor)
        state.json                step, the optimizer's hyperparameters and numbers, anything else

A run sharded with FSDP2 writes ``sharded/`` (every rank's rows of the model and the optimizer
state, DCP in safetensors files) instead of ``model.safetensors`` and ``optimizer.safetensors``;
:func:`stage_checkpoint` reads either kind (see :mod:`bestiary.train.sharded`).

**No pickle anywhere.** ``torch.save``/``torch.load`` pickle, and unpickling a file can run arbitrary
code; safetensors and JSON can only ever produce tensors and plain data.

**Atomic.** A checkpoint is written into a hidden ``.tmp-...`` directory, flushed to disk, and only
then renamed to ``step_...`` -- ``rename`` is atomic on POSIX, so a ``step_...`` directory is always
complete. The ``latest`` pointer is updated last, also by writing a temporary file and renaming it over
the old one. A process killed at *any* moment therefore leaves ``latest`` pointing at a complete
checkpoint (the new one or the previous one), plus perhaps a stale ``.tmp-...`` directory that the next
save removes. A finished checkpoint is never modified in place.

**All or nothing when loading.** ``torch``'s own ``load_state_dict`` copies every tensor that fits
and raises on the rest at the end, leaving a model half old, half new. Here loading has two phases:
:func:`stage_checkpoint` reads every file and checks every tensor's name, shape and dtype against the
model and the optimizer (its type too: resuming Adam's moments into SGD would silently swap its
hyper-parameters) and changes nothing; only then does :meth:`StagedCheckpoint.apply` copy it in. A
failed load leaves the model and the optimizer bit-identical to before. A truncated or corrupted file
raises :class:`~bestiary.io.FileFormatError` naming it and the previous checkpoint to fall back to; a
checkpoint that does not fit raises :class:`CheckpointMismatchError` naming the tensor and both
shapes or dtypes.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file, save_model
from torch import nn

from bestiary.io import CheckpointMismatchError, FileFormatError, read_json, read_safetensors
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


@dataclass
class StagedCheckpoint(Checkpoint):
    """A checkpoint read from disk and checked against a model (and optimizer), not yet copied into them.

    Everything that can fail has failed already; :meth:`apply` only copies. A caller with more state
    of its own (the Trainer: step, history, RNG) checks that too before calling :meth:`apply`.
    """

    model: nn.Module | None = None
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_states: list[tuple[torch.optim.Optimizer, dict[str, Any]]] = field(default_factory=list)

    def apply(self) -> None:
        """Copy the checked weights into the model and the checked state into each optimizer."""
        if self.model is not None:
            # strict=False: a tied weight is stored under one of its names; every name was checked already
            self.model.load_state_dict(self.weights, strict=False)
        for optimizer, state_dict in self.optimizer_states:
            optimizer.load_state_dict(state_dict)


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
    and its JSON part is entry ``j`` of ``{"chain": [...]}``. The JSON part also records the optimizer's
    type and the names of its tensors, so that loading can refuse another type and notice a lost tensor.
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
    meta = {
        "type": type(optimizer).__name__,
        "tensors": sorted(tensors),
        "param_groups": groups,
        "numbers": numbers,
    }
    return tensors, meta


def _optimizer_kind(optimizer: Optimizer) -> str:
    """``"AdamW"``, or ``"a chain of 2 optimizers (Muon, AdamW)"`` for an OptimizerChain."""
    if isinstance(optimizer, OptimizerChain):
        names = ", ".join(type(member).__name__ for member in optimizer.optimizers)
        return f"a chain of {len(optimizer.optimizers)} optimizers ({names})"
    return type(optimizer).__name__


def _saved_optimizer_kind(meta: dict) -> str:
    """The same description for the optimizer a checkpoint was written with (types may be unrecorded)."""
    if "chain" in meta:
        names = ", ".join(str(member.get("type", "?")) for member in meta["chain"])
        return f"a chain of {len(meta['chain'])} optimizers ({names})"
    return str(meta.get("type", "an optimizer of unrecorded type"))


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _stage_optimizer(
    optimizer: Optimizer, tensors: dict[str, torch.Tensor], meta: Any, file: Path, param_names: dict[int, str]
) -> list[tuple[torch.optim.Optimizer, dict[str, Any]]]:
    """Check the saved optimizer state against ``optimizer``; return each member's ``state_dict`` to load.

    Changes nothing. The type comes first: Adam's moments loaded into SGD would be ignored, and the
    saved hyper-parameters (Adam's betas, eps) would silently replace SGD's own.
    """
    chain = meta.get("chain") if isinstance(meta, dict) else None
    well_formed = isinstance(meta, dict) and (
        "param_groups" in meta
        if chain is None
        else isinstance(chain, list) and all(isinstance(m, dict) for m in chain)
    )
    if not well_formed:
        state_file, fix = file.with_name("state.json"), fallback_advice(file.parent)
        raise FileFormatError(state_file, "a checkpoint's state", "its optimizer entry is malformed", fix)
    members = optimizer.optimizers if isinstance(optimizer, OptimizerChain) else [optimizer]
    saved = meta.get("chain", [meta])
    same_kind = (
        isinstance(optimizer, OptimizerChain) == ("chain" in meta)
        and len(saved) == len(members)
        and all(m.get("type", type(o).__name__) == type(o).__name__ for m, o in zip(saved, members))
    )
    if not same_kind:
        raise CheckpointMismatchError(
            f"{file}: the checkpoint's optimizer is {_saved_optimizer_kind(meta)}, this one is "
            f"{_optimizer_kind(optimizer)}. Its state (and hyper-parameters) would not mean the same thing: "
            "build the optimizer the checkpointed run used, or load the model alone (load_checkpoint(path, model))"
        )
    if "chain" not in meta:
        return [(optimizer, _stage_one_optimizer(optimizer, tensors, meta, file, "", param_names))]  # type: ignore[arg-type]
    known = {f"chain{j}." for j in range(len(members))}
    strays = [k for k in tensors if not any(k.startswith(prefix) for prefix in known)]
    if strays:
        raise CheckpointMismatchError(f"{file}: unexpected tensor {strays[0]!r} {_shape(tensors[strays[0]])}")
    staged = []
    for j, (member, member_meta) in enumerate(zip(members, saved, strict=True)):
        prefix = f"chain{j}."
        member_tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        staged.append(
            (member, _stage_one_optimizer(member, member_tensors, member_meta, file, prefix, param_names))
        )
    return staged


def _stage_one_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict,
    file: Path,
    prefix: str,
    param_names: dict[int, str],
) -> dict[str, Any]:
    """One optimizer's checks (group sizes, tensor names, shapes, dtypes); returns its ``state_dict``.

    What each state tensor must look like: like the optimizer's current state for that parameter when
    it has some (a run resumed twice); otherwise a 0-dim tensor (a counter such as Adam's ``step``) or a
    tensor with the parameter's shape and dtype (moments, momentum buffers: true of SGD, Adam(W),
    RMSprop, Adagrad, Muon). ``torch`` would cast a float64 moment to float32 without a word.
    """
    where = f"{file} ({prefix.rstrip('.') or 'optimizer'}: {type(optimizer).__name__})"
    groups, numbers = meta.get("param_groups"), meta.get("numbers")
    if not (
        isinstance(groups, list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
        and isinstance(numbers, dict)
        and all(isinstance(v, dict) for v in numbers.values())
    ):
        raise FileFormatError(
            file.with_name("state.json"),
            "a checkpoint's state",
            "its optimizer entry is malformed",
            fallback_advice(file.parent),
        )
    groups = [dict(group) for group in groups]
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointMismatchError(
            f"{where}: the checkpoint has {len(groups)} optimizer param groups, this optimizer has "
            f"{len(optimizer.param_groups)}"
        )
    params_by_index: dict[int, torch.Tensor] = {}
    for g, (saved_group, group) in enumerate(zip(groups, optimizer.param_groups)):
        if len(saved_group["params"]) != len(group["params"]):
            raise CheckpointMismatchError(
                f"{where}: param group {g} holds {len(saved_group['params'])} parameters in the checkpoint "
                f"but {len(group['params'])} in this optimizer"
            )
        params_by_index.update(zip(saved_group["params"], group["params"]))
        for k, v in saved_group.items():  # JSON turned tuples (Adam's betas) into lists, dtypes into names
            if isinstance(group.get(k), tuple) and isinstance(v, list):
                saved_group[k] = tuple(v)
            elif isinstance(group.get(k), torch.dtype) and isinstance(v, str):
                saved_group[k] = getattr(torch, v.removeprefix("torch."))

    problems = []
    if (
        "tensors" in meta
    ):  # the names state.json says optimizer.safetensors holds (older checkpoints: unchecked)
        lost = sorted(set(meta["tensors"]) - set(tensors))
        problems += [
            f"tensor {prefix + name!r} listed in state.json is missing from the file" for name in lost
        ]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        param = params_by_index.get(int(index)) if index.isdigit() else None
        if param is None or not name:
            problems.append(f"unexpected tensor {prefix + key!r} {_shape(value)}")
            continue
        live = optimizer.state.get(param, {}).get(name)
        if isinstance(live, torch.Tensor):
            want_shape, want_dtype = _shape(live), live.dtype
        elif value.dim() == 0:  # a counter (Adam's step): torch converts it as the optimizer needs
            want_shape, want_dtype = (), value.dtype
        else:
            want_shape, want_dtype = _shape(param), param.dtype
        label = f"tensor {prefix + key!r} (state {name!r} of parameter {param_names.get(id(param), index)!r})"
        if _shape(value) != want_shape:
            problems.append(f"{label} has shape {_shape(value)} in the checkpoint but {want_shape} here")
        elif value.dtype != want_dtype:
            problems.append(f"{label} has dtype {value.dtype} in the checkpoint but {want_dtype} here")
        state.setdefault(int(index), {})[name] = value
    for index, per_param in numbers.items():
        if not (index.isdigit() and int(index) in params_by_index):
            problems.append(
                f"state.json holds optimizer state for parameter {prefix + index!r}, which does not exist"
            )
            continue
        state.setdefault(int(index), {}).update(per_param)
    _raise_problems(where, problems)
    return {"state": state, "param_groups": groups}


def _raise_problems(where: str | Path, problems: list[str], limit: int = 8) -> None:
    """One error listing every problem found (up to ``limit``): a wider model shows as a pattern."""
    if problems:
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        raise CheckpointMismatchError(
            f"{where} does not fit:\n  " + "\n  ".join(problems[:limit]) + more + "\nNothing was changed."
        )


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


def check_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless :func:`set_rng_state` would accept ``tensors`` and ``meta``.

    Changes no global RNG: each state is tried on a throwaway generator of the same kind, which runs
    the very checks (sizes, types, ranges) that setting the global one would.
    """
    try:
        torch.Generator().set_state(tensors["torch_cpu"])
        for name, state in tensors.items():
            if name.startswith("cuda_") and torch.cuda.is_available():
                like = torch.cuda.get_rng_state(0)
                if state.dtype != like.dtype or state.shape != like.shape:
                    raise ValueError(
                        f"{name} is {state.dtype} {_shape(state)}, not {like.dtype} {_shape(like)}"
                    )
        version, mt_words, gauss_next = meta["python"]
        random.Random().setstate((version, tuple(mt_words), gauss_next))
        n = meta["numpy"]
        keys = np.asarray(n["keys"], dtype=np.uint32)
        np.random.RandomState().set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as err:
        raise ValueError(f"unusable RNG state ({type(err).__name__}: {err})") from err


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
    root = Path(root)
    name, tmp = _begin_checkpoint(root, step, keep_last)
    state: dict[str, Any] = {"format": FORMAT_VERSION, "step": step, "extra": extra or {}}
    _write_model(tmp / "model.safetensors", model)
    if optimizer is not None:
        opt_tensors, state["optimizer"] = _optimizer_to_files(optimizer)
        _write_tensors(tmp / "optimizer.safetensors", opt_tensors)
    _write_tensors(tmp / "extra.safetensors", tensors or {})
    _write_json(tmp / "state.json", state)
    return _publish_checkpoint(root, name, tmp, keep_last)


def _begin_checkpoint(root: Path, step: int, keep_last: int | None) -> tuple[str, Path]:
    """Clear stale temporaries, pick the checkpoint's name and create its hidden temporary directory."""
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(_TMP_PREFIX + "*"):  # left behind by a writer that was killed
        _remove_quietly(stale)
    name = f"step_{step:08d}"
    if (root / name).exists():  # e.g. resumed from an older checkpoint: never rewrite a finished one
        name = f"{name}_{uuid.uuid4().hex[:8]}"
    tmp = root / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    tmp.mkdir()
    return name, tmp


def _publish_checkpoint(root: Path, name: str, tmp: Path, keep_last: int | None) -> Path:
    """Rename the complete temporary directory to ``name``, point ``latest`` at it, drop old checkpoints."""
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
        raise FileNotFoundError(
            f"{pointer} points at {target.name}, which is missing or incomplete. To fix: {fallback_advice(target)}"
        )
    return target


def fallback_advice(path: Path) -> str:
    """What to do about a bad checkpoint ``path``: name the newest complete checkpoint before it."""
    root = path.parent
    older = [p for _, p in _step_dirs(root) if p.name < path.name and (p / "state.json").is_file()]
    if not older:
        return "no earlier checkpoint exists next to it: restore it from a copy or train from scratch"
    return (
        f"resume from the previous checkpoint, {older[-1]} (pass that path to load_checkpoint / "
        f"Trainer.load_checkpoint, or write {older[-1].name!r} into {root / LATEST} for resume=True)"
    )


def _read_state(path: Path) -> dict[str, Any]:
    """``state.json``, checked for the fields every checkpoint has."""
    file, what, fix = path / "state.json", "a checkpoint's state (state.json)", fallback_advice(path)
    state = read_json(file, what=what, fix=fix)
    if state.get("format") != FORMAT_VERSION:
        raise FileFormatError(file, what, f"its format is {state.get('format')!r}, not {FORMAT_VERSION}", fix)
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise FileFormatError(file, what, f"its step is {step!r}, not a count of steps", fix)
    if not isinstance(state.get("extra"), dict):
        raise FileFormatError(file, what, "its 'extra' entry is missing or not a JSON object", fix)
    return state


def _tied_names(model: nn.Module) -> list[list[str]]:
    """The model's ``state_dict`` names, grouped by the tensor they share (tied weights: two names, one tensor).

    Only one name of each group needs to be in a checkpoint (``save_model`` stores a shared tensor once).
    """
    by_tensor: dict[int, list[str]] = {}
    names = model.state_dict().keys()  # persistent buffers only
    for name, tensor in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        if name in names:
            by_tensor.setdefault(id(tensor), []).append(name)
    return list(by_tensor.values())


def check_model_weights(
    model: nn.Module, weights: dict[str, torch.Tensor], where: str | Path = "checkpoint"
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``weights`` fit ``model`` exactly (changes nothing).

    Every name must be one of the model's, with the model's shape and dtype (``load_state_dict`` would
    cast a float64 tensor to float32 silently), and every tensor of the model must be given (tied ones
    once). All problems are listed together: a checkpoint of a wider model shows as a wall of shapes,
    one with an extra layer as unexpected names.
    """
    expected = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    problems = []
    for name, tensor in weights.items():
        if name not in expected:
            problems.append(f"unexpected tensor {name!r} {_shape(tensor)}: the model has no such tensor")
        elif _shape(tensor) != _shape(expected[name]):
            problems.append(
                f"tensor {name!r} has shape {_shape(tensor)} in the checkpoint but {_shape(expected[name])} in the model"
            )
        elif tensor.dtype != expected[name].dtype:
            problems.append(
                f"tensor {name!r} has dtype {tensor.dtype} in the checkpoint but {expected[name].dtype} in the model"
            )
    for names in _tied_names(model):
        given = [n for n in names if n in weights]
        if not given:
            problems.append(f"tensor {names[0]!r} {_shape(expected[names[0]])} of the model is missing")
        elif not problems and any(not torch.equal(weights[n], weights[given[0]]) for n in given[1:]):
            problems.append(f"tied tensors {given} (one tensor in the model) differ in the checkpoint")
    _raise_problems(where, problems)


def _is_dtensor(tensor: torch.Tensor) -> bool:
    """A parameter sharded by FSDP2 (without importing torch.distributed.tensor, which takes 0.7 s)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, module.DTensor)


def stage_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: Optimizer | None = None,
) -> StagedCheckpoint:
    """Read a checkpoint and check it against ``model`` (and ``optimizer``) without changing either.

    ``path`` is a checkpoint directory or a root holding a ``latest`` pointer. Raises
    :class:`~bestiary.io.FileFormatError` for a missing, truncated or corrupted file (naming it and the
    previous checkpoint) and :class:`CheckpointMismatchError` for anything that does not fit. Call
    ``.apply()`` on the result to copy it in.
    """
    path = Path(path)
    if (path / LATEST).exists():
        path = latest_checkpoint(path)  # type: ignore[assignment]
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint directory (no state.json)")
    state = _read_state(path)
    if "sharded" in state:  # written by FSDP2 ranks: DCP shards instead of model/optimizer.safetensors
        from bestiary.train.sharded import stage_sharded_checkpoint

        return stage_sharded_checkpoint(path, state, model, optimizer)
    if any(_is_dtensor(p) for p in model.parameters()):
        raise CheckpointMismatchError(
            f"{path} is an unsharded checkpoint (model.safetensors) and this model is sharded by FSDP2: "
            "resume a parallel='fsdp2' run from a checkpoint that such a run wrote, or load this one into the "
            "unsharded model before training it with parallel='fsdp2'"
        )
    fix = fallback_advice(path)
    weights = read_safetensors(path / "model.safetensors", what="a checkpoint's model weights", fix=fix)
    check_model_weights(model, weights, path / "model.safetensors")
    staged = StagedCheckpoint(path, state["step"], state["extra"], model=model, weights=weights)
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"{path} holds no optimizer state")
        file = path / "optimizer.safetensors"
        tensors = read_safetensors(file, what="a checkpoint's optimizer state", fix=fix)
        param_names = {id(p): name for name, p in model.named_parameters()}
        staged.optimizer_states = _stage_optimizer(optimizer, tensors, state["optimizer"], file, param_names)
    staged.tensors = read_safetensors(
        path / "extra.safetensors", what="a checkpoint's extra tensors", fix=fix
    )
    return staged


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: Optimizer | None = None,
) -> Checkpoint:
    """Load a checkpoint into ``model`` (and ``optimizer``) in place -- all of it, or, on error, nothing.

    ``path`` is a checkpoint directory or a root holding a ``latest`` pointer. See :func:`stage_checkpoint`
    for what is checked and raised.
    """
    staged = stage_checkpoint(path, model, optimizer)
    staged.apply()
    return Checkpoint(staged.path, staged.step, staged.extra, staged.tensors)
