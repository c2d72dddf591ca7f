"""Shared by the Mamba tests: copy our weights into a transformers model through a name table."""

import re

import torch


def copy_into_reference(ours: torch.nn.Module, reference: torch.nn.Module, names: list) -> None:
    """Fill every tensor of `reference` from `ours`, mapping reference names through `names`
    ((pattern, replacement) pairs). Every reference tensor must find its source, with equal shape."""
    source = ours.state_dict()
    target = {}
    for ref_name, ref_tensor in reference.state_dict().items():
        for pattern, replacement in names:
            if re.fullmatch(pattern, ref_name):
                our_name = re.sub(pattern, replacement, ref_name)
                break
        else:
            raise AssertionError(f"no entry of the name table matches {ref_name}")
        assert source[our_name].shape == ref_tensor.shape, (ref_name, our_name)
        target[ref_name] = source[our_name].clone()
    reference.load_state_dict(target)


def tokens(vocab_size: int, batch: int = 2, length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))
