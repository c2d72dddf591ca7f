"""ArrayLoader: every example once per epoch, aligned arrays, seeded and resumable, sharded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bestiary.data import ArrayLoader, to_tensor, to_tensor_dataset


def test_each_example_once_per_epoch_and_arrays_stay_aligned():
    X = np.arange(103, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)  # row i is all i
    y = np.arange(103)
    loader = ArrayLoader(X, y, batch_size=10, seed=0)
    assert len(loader) == 11
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))  # shuffled
    for xb, yb in batches:
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64
        assert torch.equal(xb[:, 0].long(), yb) and xb.shape[1:] == (3,)


def test_seeded_epochs_differ_and_resume_reproduces():
    y = np.arange(50)
    a, b = ArrayLoader(y, batch_size=7, seed=1), ArrayLoader(y, batch_size=7, seed=1)
    epoch0 = [t[0] for t in a]
    epoch1 = [t[0] for t in a]
    assert all(torch.equal(p, q) for p, q in zip(epoch0, [t[0] for t in b]))  # same seed, same order
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))  # new order each epoch
    other = torch.cat([t[0] for t in ArrayLoader(y, batch_size=7, seed=2)])
    assert not torch.equal(torch.cat(epoch0), other)
    # A fresh loader restored from a checkpoint continues with epoch 1's order.
    resumed = ArrayLoader(y, batch_size=7, seed=999)
    resumed.load_state_dict({"epoch": 1, "seed": 1})
    assert torch.equal(torch.cat([t[0] for t in resumed]), torch.cat(epoch1))
    resumed.set_epoch(0)
    assert torch.equal(torch.cat([t[0] for t in resumed]), torch.cat(epoch0))
    # Breaking out of an epoch early still moves on to the next order.
    c = ArrayLoader(y, batch_size=7, seed=1)
    next(iter(c))
    assert c.state_dict()["epoch"] == 1


def test_no_shuffle_and_drop_last():
    loader = ArrayLoader(torch.arange(10), batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_ranks_get_disjoint_equal_shares():
    y = np.arange(23)
    shards = [
        torch.cat([b[0] for b in ArrayLoader(y, batch_size=4, seed=0, rank=r, world_size=3)])
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [7, 7, 7]
    together = torch.cat(shards).tolist()
    assert len(set(together)) == 21 and set(together) <= set(range(23))
    with pytest.raises(ValueError, match="rank"):
        ArrayLoader(y, rank=3, world_size=3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same length"):
        ArrayLoader(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match="at least one"):
        ArrayLoader()
    with pytest.raises(ValueError, match="batch_size"):
        ArrayLoader(np.zeros(5), batch_size=0)


def test_to_tensor_shares_memory_or_copies_when_it_must():
    a = np.arange(6, dtype=np.float32)
    t = to_tensor(a)
    a[0] = 42.0
    assert t[0] == 42.0  # zero-copy for an ordinary array
    frozen = np.arange(4)
    frozen.flags.writeable = False
    assert to_tensor(frozen).tolist() == [0, 1, 2, 3]
    assert to_tensor(np.arange(4)[::-1]).tolist() == [3, 2, 1, 0]
    ds = to_tensor_dataset(np.zeros((5, 2)), np.arange(5))
    assert len(ds) == 5 and ds[3][1] == 3


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
def test_device_placement_keeps_the_same_order(device):
    y = np.arange(40)
    on_cpu = torch.cat([b[0] for b in ArrayLoader(y, batch_size=8, seed=5)])
    loader = ArrayLoader(y, batch_size=8, seed=5, device=device)
    batches = [b[0] for b in loader]
    assert all(b.device.type == device for b in batches)
    assert torch.equal(torch.cat(batches).cpu(), on_cpu)  # permutation drawn on CPU for every device


def test_random_access_batch_equals_iteration_order():
    x = torch.arange(23)
    loader = ArrayLoader(x, batch_size=5, seed=4, drop_last=True)
    iterated = [b[0] for _ in range(3) for b in loader]  # three epochs, in order
    assert len(iterated) == 3 * len(loader)
    for i in reversed(range(len(iterated))):  # any access order gives the same batch i
        assert torch.equal(loader.batch(i)[0], iterated[i])
    with pytest.raises(IndexError):
        loader.batch(-1)
