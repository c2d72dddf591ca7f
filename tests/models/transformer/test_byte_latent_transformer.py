"""byte_latent_transformer: fixed and entropy-based patching."""

import math

import torch

import bestiary


# ------------------------------------------------------------------------------------------- BLT
def test_blt_fixed_patches_and_override():
    model = bestiary.build("byte_latent_transformer", tiny=True, patch_size=3).eval()
    x = torch.randint(0, 256, (1, 8))
    assert model.patch_ids(x).tolist() == [[0, 0, 0, 1, 1, 1, 2, 2]]
    # patch_size=1 via an explicit override equals the fixed patching with patch_size=1
    one = bestiary.build("byte_latent_transformer", tiny=True, patch_size=1).eval()
    one.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x, patch_ids=torch.arange(8)[None]), one(x))


def test_blt_entropy_patching_follows_the_threshold():
    model = bestiary.build("byte_latent_transformer", tiny=True, patching="entropy").eval()
    x = torch.randint(0, 256, (2, 10))
    model.config.entropy_threshold = -1.0  # every byte is "surprising": one patch per byte
    assert model.patch_ids(x).tolist() == [list(range(10))] * 2
    model.config.entropy_threshold = math.log(256) + 1  # above the maximum entropy: a single patch
    assert model.patch_ids(x).tolist() == [[0] * 10] * 2
    # an entropy model that is sure of byte 0 everywhere: patches start right after each uncertain step
    with torch.no_grad():
        logp = model.entropy_model(x).log_softmax(-1)
        entropy = -(logp.exp() * logp).sum(-1)
    model.config.entropy_threshold = entropy[0, :-1].median().item()
    starts = model.patch_starts(x)
    assert starts[0, 0] and torch.equal(starts[0, 1:], entropy[0, :-1] > model.config.entropy_threshold)
