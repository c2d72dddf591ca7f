"""multi_token_prediction: each head is trained on its own offset."""

import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.transformer.multi_token_prediction import mtp_loss


# -------------------------------------------------------------------------- multi-token prediction
def test_mtp_loss_aligns_each_head_with_its_offset():
    tokens = torch.randint(0, 10, (2, 9))
    n = 3
    perfect = torch.full((2, n, 9, 10), -20.0)
    for k in range(n):  # head k at position t puts all mass on tokens[t + k + 1]
        perfect[:, k, : 9 - k - 1].scatter_(-1, tokens[:, k + 1 :, None], 20.0)
    assert mtp_loss(perfect, tokens) < 1e-6
    shifted = perfect.roll(1, dims=2)  # off by one position: the loss must notice
    assert mtp_loss(shifted, tokens) > 1.0


def test_mtp_with_one_head_is_an_ordinary_language_model_loss():
    model = bestiary.build("multi_token_prediction", tiny=True, n_future=1)
    x = torch.randint(0, 32, (2, 10))
    logits = model(x).logits
    assert logits.shape == (2, 1, 10, 32)
    expected = F.cross_entropy(logits[:, 0, :-1].reshape(-1, 32), x[:, 1:].reshape(-1))
    torch.testing.assert_close(mtp_loss(logits, x), expected)
