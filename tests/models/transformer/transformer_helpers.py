"""Shared by the transformer family's oracle tests: seeded token ids and the float32 tolerance."""

import torch

ATOL = 1e-5  # on logits / hidden states of order 1, float32 sums in another order


def token_ids(vocab: int, B: int = 2, T: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))
