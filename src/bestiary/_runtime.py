"""Small run-time helpers every notebook's setup cell uses: quick mode, device, seeds."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def quick() -> bool:
    """True in quick mode (env BESTIARY_QUICK=1): notebooks shrink their work to about a minute."""
    return os.environ.get("BESTIARY_QUICK", "0").lower() not in ("", "0", "false", "no")


def device() -> torch.device:
    """CUDA when present, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
