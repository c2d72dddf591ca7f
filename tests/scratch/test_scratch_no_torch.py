"""`bestiary.scratch` is NumPy-only: importing it (and using it) must not import torch."""

import subprocess
import sys

CODE = """
import sys
import numpy as np
import bestiary.scratch as S
from bestiary.scratch import micrograd_nn, nn, optim, tensor, value  # every submodule
x = S.Tensor(np.ones((2, 3)), requires_grad=True)
S.cross_entropy(S.Linear(3, 4, seed=0)(x), np.array([0, 1])).backward()
S.Adam([p for p in [x]], lr=0.1).step()
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, f"torch was imported: {loaded[:5]}"
"""


def test_importing_scratch_does_not_import_torch():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
