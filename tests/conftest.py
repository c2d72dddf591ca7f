import os

# One torch thread per test worker (pytest -n 2 on 2 cores; see DESIGN.md "Threads").
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# where the suite's time goes, against the budgets: printed at the end, saved to build/test-times.json
pytest_plugins = ["time_table"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
