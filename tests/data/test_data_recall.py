import numpy as np
import pytest
import torch

from bestiary.data.recall import IGNORE, make_mqar, mqar_accuracy, mqar_vocab_size


def test_mqar_answers_are_the_paired_values():
    tokens, targets = make_mqar(50, 6, n_queries=4, n_keys=10, n_values=7, seed=3)
    assert tokens.shape == targets.shape == (50, 2 * (6 + 4))
    assert tokens.max() < mqar_vocab_size(10, 7)
    for row, target in zip(tokens, targets, strict=True):
        keys, values = row[0:12:2], row[1:12:2]
        assert len(set(keys)) == 6 and keys.max() < 10 and values.min() >= 10
        pairs = dict(zip(keys, values, strict=True))
        scored = np.flatnonzero(target != IGNORE)
        assert list(scored) == [12, 14, 16, 18]
        for t in scored:
            assert target[t] == pairs[row[t]] == row[t + 1]


def test_mqar_is_seeded_and_rows_do_not_depend_on_n():
    a, _ = make_mqar(5, 4, seed=(1, 2))
    b, _ = make_mqar(9, 4, seed=(1, 2))
    assert np.array_equal(a, b[:5])
    assert not np.array_equal(a, make_mqar(5, 4, seed=(1, 3))[0])


def test_mqar_refuses_bad_sizes():
    with pytest.raises(ValueError, match="n_keys"):
        make_mqar(4, 9, n_keys=8)
    with pytest.raises(ValueError, match="n_queries"):
        make_mqar(4, 3, n_queries=4)


def test_mqar_accuracy_counts_only_scored_positions():
    tokens, targets = make_mqar(8, 3, n_keys=5, n_values=5, seed=0)
    perfect = torch.nn.functional.one_hot(torch.tensor(targets).clamp(min=0), 10).float()
    assert mqar_accuracy(perfect, torch.tensor(targets)) == 1.0
    assert mqar_accuracy(perfect.numpy() * 0 + np.eye(10)[0], targets) == 0.0  # always predicts id 0: a key
