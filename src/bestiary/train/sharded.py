"""FSDP2 for the Trainer: shard the model over the processes, and checkpoint it shard by shard.

**Sharding** (``Trainer(parallel="fsdp2")`` under ``torchrun``). DDP keeps a full copy of the weights,
the gradients and the optimizer state on every process; FSDP ("fully sharded data parallel", ZeRO-3)
keeps only 1/N of each on each of N processes. ``torch.distributed.fsdp.fully_shard`` (FSDP2) turns
every parameter into a ``DTensor`` sharded along dim 0 (rank r holds rows ``[r*ceil(n/N), ...)``),
all-gathers the full weights just before a module's forward (and again for backward), frees them
right after, and reduce-scatters the gradients so each rank receives the averaged gradient of its own
rows only. The optimizer then updates each rank's shard with that shard's state: ordinary optimizers
work unchanged, because ``DTensor`` implements their arithmetic (Muon's Newton-Schulz matmuls too --
they gather the matrix behind the scenes). :func:`shard_model` shards every block of every
``nn.ModuleList`` (a transformer's layers) as its own unit, so one block at a time is gathered, and
then the root for whatever is left (embeddings, head).

``fully_shard`` replaces the model's ``nn.Parameter`` objects, so the optimizer the Trainer was given
(built on the old ones) is re-pointed at the new ones by name; that is only sound before it holds any
state, which is checked.

**Checkpoints.** A sharded checkpoint is written by *every* rank, each its own rows, with
``torch.distributed.checkpoint`` (DCP). DCP is what knows how shards map to the global tensor: it
plans who writes what (a replicated tensor such as Adam's ``step`` once), records each shard's offset,
and on loading reads exactly the rows this rank now owns -- from however many ranks wrote them
(a 2-process checkpoint loads into 4 processes, or into one: :func:`~bestiary.train.load_checkpoint`
in a plain Python session consolidates it). Writing every rank's shard with our own safetensors code
would mean re-implementing that bookkeeping; gathering the full state on rank 0 to write one
safetensors file would undo the memory saving that is the point of FSDP.

**No pickle.** DCP's default storage (``FileSystemWriter``) writes tensors with ``torch.save`` and a
``.metadata`` file that ``FileSystemReader.read_metadata`` opens with plain ``pickle.load`` in torch
2.13 -- loading a checkpoint from elsewhere could run arbitrary code (DESIGN.md forbids untrusted
pickles; only the tensor data is read with ``weights_only=True``). So we give DCP its safetensors
storage instead: ``HuggingFaceStorageWriter(save_distributed=True)`` writes one safetensors file per
rank whose JSON header records each shard's offset, and ``HuggingFaceStorageReader`` rebuilds DCP's
metadata from those headers. No ``.metadata`` pickle is written or read, and a sharded checkpoint
holds nothing but safetensors and JSON, like every other checkpoint here -- safe to load from anywhere.

Layout (next to the usual ``extra.safetensors`` and ``state.json``, which rank 0 writes)::

    step_00000100/sharded/shard-0000{r+1}-model-00001-of-00001.safetensors   rank r's rows of every
                                    tensor: "model.<name>", "optimizer.<i>.<state>" (chain: "optimizer.chain<j>....")

Atomic as before: rank 0 creates the hidden temporary directory, every rank writes its shard into it
(DCP flushes each file to disk), a barrier waits for all of them, and rank 0 alone renames the
directory to ``step_...`` and moves ``latest``. (Several machines need a shared filesystem for this.)
Loading is all or nothing: every name, shape and dtype is checked against the shards' headers, and
shards that don't cover a tensor completely are refused, before DCP reads the data into *new* tensors;
only then are they copied into the model and the optimizer.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from bestiary.io import CheckpointMismatchError, FileFormatError
from bestiary.train.checkpoint import (
    FORMAT_VERSION,
    Optimizer,
    StagedCheckpoint,
    _begin_checkpoint,
    _optimizer_to_files,
    _publish_checkpoint,
    _raise_problems,
    _stage_optimizer,
    _tied_names,
    _write_json,
    _write_tensors,
    check_model_weights,
    fallback_advice,
)
from bestiary.train.optim import OptimizerChain

SHARDED_DIR = "sharded"  # the DCP shards inside a checkpoint directory
_WHAT = "a sharded checkpoint (DCP shards in safetensors files, one per rank)"


def is_sharded(tensor: torch.Tensor) -> bool:
    """True for a ``DTensor`` (a parameter or state tensor sharded by FSDP2).

    Without importing ``torch.distributed.tensor`` (0.7 s): no DTensor exists before someone imported it.
    """
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, module.DTensor)


def local_part(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a ``DTensor``; any other tensor unchanged."""
    return tensor.to_local() if is_sharded(tensor) else tensor


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor (all-gathered from every rank for a ``DTensor``: every rank must call)."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def local_numel(model: nn.Module) -> int:
    """How many parameter values this process holds (all of them, unless the model is sharded)."""
    return sum(local_part(p).numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ sharding


def shard_model(model: nn.Module, optimizer: Optimizer, device: torch.device, world_size: int) -> None:
    """Shard ``model`` in place with FSDP2 over ``world_size`` processes and re-point ``optimizer``.

    Units: each element of every ``nn.ModuleList`` (transformer blocks), then the root module.
    """
    members = optimizer.optimizers if isinstance(optimizer, OptimizerChain) else [optimizer]
    if any(len(member.state) for member in members):
        raise ValueError(
            "parallel='fsdp2' replaces the model's parameters by sharded ones, so the optimizer must not hold "
            "state yet: pass a freshly built optimizer (resume restores its state from the checkpoint)"
        )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    name_of = {id(p): name for name, p in model.named_parameters()}
    mesh = init_device_mesh(device.type, (world_size,))
    for module in reversed(list(model.modules())):  # inner blocks before the blocks holding them
        if isinstance(module, nn.ModuleList):
            for block in module:
                if any(True for _ in block.parameters()):
                    fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    sharded = dict(model.named_parameters())
    for group in optimizer.param_groups:
        try:
            group["params"] = [sharded[name_of[id(p)]] for p in group["params"]]
        except KeyError:
            raise ValueError(
                "the optimizer holds a tensor that is not a parameter of the model: with parallel='fsdp2' "
                "every optimized tensor must be one of model.parameters()"
            ) from None


# --------------------------------------------------------------------------------------------- save


def save_sharded_checkpoint(
    root: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: Optimizer,
    *,
    extra: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    keep_last: int | None = None,
) -> Path:
    """Write a sharded checkpoint of ``step`` under ``root``; every rank calls it, rank 0 publishes it.

    ``extra`` (JSON) and ``tensors`` (safetensors) are rank 0's to write, like :func:`save_checkpoint`'s.
    Returns the checkpoint's path on every rank.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    root, rank = Path(root), dist.get_rank()
    if rank == 0:
        name, tmp = _begin_checkpoint(root, step, keep_last)
        (tmp / SHARDED_DIR).mkdir()
    # every rank writes into rank 0's temporary directory: share its name (in memory, between our own processes)
    shared = [(name, tmp.name) if rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    name, tmp = shared[0][0], root / shared[0][1]

    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    weights = model.state_dict()
    # a tied weight once, under its first name (as save_model does for unsharded checkpoints)
    state_dict = {f"model.{names[0]}": weights[names[0]] for names in _tied_names(model)}
    state_dict.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
    # HuggingFaceStorageWriter: safetensors files, no pickle (module docstring); it fsyncs every file.
    dcp.save(
        state_dict, storage_writer=HuggingFaceStorageWriter(str(tmp / SHARDED_DIR), save_distributed=True)
    )

    if rank == 0:
        state = {
            "format": FORMAT_VERSION,
            "step": step,
            "extra": extra,
            "optimizer": opt_meta,
            # the global shapes: the shards' headers only hold each shard's offset and size, so a lost
            # last shard would otherwise pass for a smaller tensor
            "sharded": {
                "storage": "dcp-safetensors",
                "ranks": dist.get_world_size(),
                "shapes": {k: list(v.shape) for k, v in state_dict.items()},
            },
        }
        _write_tensors(tmp / "extra.safetensors", tensors)
        _write_json(tmp / "state.json", state)
    dist.barrier()  # every rank's shard is on disk
    if rank == 0:
        _publish_checkpoint(root, name, tmp, keep_last)
    dist.barrier()  # nobody goes on (or reads `latest`) before the checkpoint is published
    return root / name


# --------------------------------------------------------------------------------------------- load


def _shard_metadata(folder: Path, shapes: Any, fix: str) -> Any:
    """DCP's metadata, rebuilt from the shards' safetensors headers (no pickle); checks the shards are all there.

    ``shapes``: every tensor's global shape, from ``state.json``. Every tensor must be there in full --
    checked by values, not by counting files (a rank that holds no rows of anything writes none).
    """
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    if not (folder.is_dir() and any(folder.glob("*.safetensors"))):
        raise FileFormatError(folder, _WHAT, "there are no shard files", fix)
    try:
        metadata = HuggingFaceStorageReader(str(folder)).read_metadata()
    except Exception as err:  # safetensors' own error type, or a malformed sharding header (KeyError, ...)
        raise FileFormatError(
            folder,
            _WHAT,
            f"a shard file is unreadable ({type(err).__name__}: {err}) - truncated or corrupted",
            fix,
        ) from err
    saved = metadata.state_dict_metadata
    for key, shape in shapes.items():
        md = saved.get(key)
        covered = sum(math.prod(chunk.sizes) for chunk in md.chunks) if md is not None else 0
        if md is None or list(md.size) != shape or covered != math.prod(shape):
            raise FileFormatError(
                folder, _WHAT, f"its shards hold {covered} of the {math.prod(shape)} values of {key!r} "
                f"{tuple(shape)}: a shard file is missing or damaged", fix,
            )  # fmt: skip
    return metadata


def _optimizer_templates(
    optimizer: Optimizer, saved: dict[str, Any], problems: list[str]
) -> dict[str, torch.Tensor]:
    """Empty tensors, laid out like this rank's parameters, for DCP to load the optimizer state into.

    ``saved``: the checkpoint's ``optimizer.*`` entries (name -> metadata). A state tensor is either a
    0-dim counter (Adam's ``step``: every rank loads it whole) or shaped like its parameter (moments,
    momentum: sharded like it). Anything else goes into ``problems``.
    """
    members = optimizer.optimizers if isinstance(optimizer, OptimizerChain) else [optimizer]
    chain = isinstance(optimizer, OptimizerChain)
    templates = {}
    for key, md in saved.items():
        rest = key
        member = members[0]
        if chain:
            head, _, rest = key.partition(".")
            j = head.removeprefix("chain")
            member = (
                members[int(j)]
                if head.startswith("chain") and j.isdigit() and int(j) < len(members)
                else None
            )
        index, _, name = rest.partition(".")
        params = [p for g in member.param_groups for p in g["params"]] if member is not None else []
        if not (index.isdigit() and int(index) < len(params) and name):
            problems.append(f"unexpected optimizer tensor {key!r} {tuple(md.size)}")
            continue
        param, dtype = params[int(index)], md.properties.dtype
        if len(md.size) == 0:
            templates[key] = torch.empty((), dtype=dtype, device=local_part(param).device)
        elif tuple(md.size) == tuple(param.shape):
            templates[key] = torch.empty_like(param, dtype=dtype)  # a DTensor sharded like the parameter
        else:
            problems.append(
                f"optimizer tensor {key!r} has shape {tuple(md.size)} in the checkpoint but its parameter "
                f"has {tuple(param.shape)} here"
            )
    return templates


def stage_sharded_checkpoint(
    path: Path, state: dict[str, Any], model: nn.Module, optimizer: Optimizer | None
) -> StagedCheckpoint:
    """:func:`~bestiary.train.checkpoint.stage_checkpoint` for a checkpoint written by FSDP2 ranks.

    ``state`` is its ``state.json``, already read. Works with a sharded model (every rank calls it:
    DCP's load is collective) and with a plain one in a single process (which gets every shard).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    from bestiary.io import read_safetensors

    fix = fallback_advice(path)
    folder = path / SHARDED_DIR
    shapes = state["sharded"].get("shapes") if isinstance(state["sharded"], dict) else None
    if not (isinstance(shapes, dict) and all(isinstance(v, list) for v in shapes.values())):
        problem = "its 'sharded' entry does not list the tensors' shapes"
        raise FileFormatError(path / "state.json", "a sharded checkpoint's state", problem, fix)
    metadata = _shard_metadata(folder, shapes, fix)
    saved = metadata.state_dict_metadata

    # 1. names, shapes and dtypes, from the headers alone
    model_saved = {k.removeprefix("model."): md for k, md in saved.items() if k.startswith("model.")}
    opt_saved = {k.removeprefix("optimizer."): md for k, md in saved.items() if k.startswith("optimizer.")}
    strays = sorted(set(saved) - {f"model.{k}" for k in model_saved} - {f"optimizer.{k}" for k in opt_saved})
    if strays:
        raise CheckpointMismatchError(
            f"{folder}: unexpected tensor {strays[0]!r}: neither model nor optimizer state"
        )
    shapes_only = {
        k: torch.empty(md.size, dtype=md.properties.dtype, device="meta") for k, md in model_saved.items()
    }
    check_model_weights(model, shapes_only, folder)
    live = model.state_dict()
    templates = {f"model.{k}": torch.empty_like(live[k]) for k in model_saved}
    problems: list[str] = []
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"{path} holds no optimizer state")
        opt_templates = _optimizer_templates(optimizer, opt_saved, problems)
        templates.update({f"optimizer.{k}": v for k, v in opt_templates.items()})
    _raise_problems(folder, problems)

    # 2. read into the new tensors (DCP picks this rank's rows out of every shard file)
    try:
        with warnings.catch_warnings():  # DCP warns that no_dist=True means... a single process
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            dcp.load(
                templates,
                storage_reader=HuggingFaceStorageReader(str(folder)),
                planner=DefaultLoadPlanner(allow_partial_load=False),
                no_dist=not dist.is_initialized(),  # one process (e.g. a notebook): it reads every shard
            )
    except Exception as err:  # DCP wraps every rank's failure in a CheckpointException
        raise FileFormatError(
            folder, _WHAT, f"reading the shards failed ({type(err).__name__}: {err})", fix
        ) from err

    staged = StagedCheckpoint(path, state["step"], state["extra"], model=model)
    staged.weights = {k.removeprefix("model."): v for k, v in templates.items() if k.startswith("model.")}
    if optimizer is not None:
        tensors = {
            k.removeprefix("optimizer."): v for k, v in templates.items() if k.startswith("optimizer.")
        }
        param_names = {id(p): name for name, p in model.named_parameters()}
        staged.optimizer_states = _stage_optimizer(
            optimizer, tensors, state["optimizer"], folder, param_names
        )
    staged.tensors = read_safetensors(
        path / "extra.safetensors", what="a checkpoint's extra tensors", fix=fix
    )
    return staged
