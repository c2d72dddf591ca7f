"""ShuffledBatches (random access, reshuffled per epoch) and shard_batch (each rank's slice)."""

import pytest
import torch

from bestiary.train import ShuffledBatches, shard_batch


def test_each_epoch_is_a_permutation_and_epochs_differ():
    x = torch.arange(20)
    data = ShuffledBatches(x, batch_size=5, seed=3)
    assert len(data) == 4
    epoch0 = torch.cat([data(i)[0] for i in range(4)])
    epoch1 = torch.cat([data(i)[0] for i in range(4, 8)])
    assert sorted(epoch0.tolist()) == list(range(20))
    assert sorted(epoch1.tolist()) == list(range(20))
    assert not torch.equal(epoch0, epoch1)  # reshuffled
    assert not torch.equal(epoch0, x)  # shuffled at all


def test_order_depends_only_on_index_not_on_global_rng_or_history():
    x, y = torch.randn(30, 2), torch.arange(30)
    a = ShuffledBatches(x, y, batch_size=4, seed=1)
    b = ShuffledBatches(x, y, batch_size=4, seed=1)
    first = [a(i)[1] for i in range(20)]
    torch.manual_seed(123)  # the global RNG must not matter
    assert all(torch.equal(b(i)[1], first[i]) for i in reversed(range(20)))  # any access order
    assert not torch.equal(ShuffledBatches(x, y, batch_size=4, seed=2)(0)[1], first[0])
    xb, yb = a(5)
    assert torch.equal(xb, x[yb])  # rows stay aligned across tensors


def test_bad_inputs():
    with pytest.raises(ValueError, match="same first dimension"):
        ShuffledBatches(torch.zeros(4), torch.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        ShuffledBatches(torch.zeros(4), batch_size=5)
    with pytest.raises(TypeError):
        ShuffledBatches([1, 2, 3], batch_size=1)


def test_shard_batch_splits_dim0_in_rank_order():
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    shards = [shard_batch((x, {"y": y}), r, 3) for r in range(3)]
    assert torch.equal(torch.cat([s[0] for s in shards]), x)
    assert torch.equal(torch.cat([s[1]["y"] for s in shards]), y)
    assert shard_batch(x, 0, 1) is x
    with pytest.raises(ValueError, match="multiple of world_size"):
        shard_batch(torch.zeros(5), 0, 2)
