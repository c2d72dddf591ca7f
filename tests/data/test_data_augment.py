"""Batched augmentation: shapes, seeded determinism, and each op against a direct per-image oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bestiary.data.augment import Augment, cutout, normalize, random_crop, random_hflip


def _batch(B: int = 16, C: int = 3, H: int = 12, W: int = 10, seed: int = 0) -> torch.Tensor:
    # Distinct values everywhere (+1 so no pixel is 0): a window or a hole can be identified exactly.
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, C, H, W, generator=g) + 1.0


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("fn", [
    lambda x, g: random_crop(x, 3, g),
    lambda x, g: random_hflip(x, g, 0.5),
    lambda x, g: cutout(x, 4, g),
    lambda x, g: Augment(2, 0.5, 4, seed=int(torch.randint(0, 9, (1,), generator=g)))(x),
])  # fmt: skip
def test_shape_dtype_and_seed_determinism(fn) -> None:
    x = _batch()
    a, b, c = fn(x, _gen(1)), fn(x, _gen(1)), fn(x, _gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)  # same seed, same draw
    assert not torch.equal(a, c)  # another seed, another draw (16 images: a tie is vanishingly rare)
    assert torch.equal(x, _batch())  # the input is never modified in place


def test_crop_is_a_shifted_window_of_the_padded_image() -> None:
    x, p = _batch(B=64), 3
    out = random_crop(x, p, _gen(5))
    padded = F.pad(x, (p, p, p, p))
    H, W = x.shape[-2:]
    shifts = set()
    for b in range(len(x)):
        # Oracle: search every allowed shift for the window equal to the output (values are distinct,
        # so exactly one matches, and it must be within [0, 2p] in both directions).
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(out[b], padded[b, :, dy:dy + H, dx:dx + W])]  # fmt: skip
        assert len(matches) == 1, f"image {b}: output is not one window of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 10  # the shifts really vary across the batch (49 possible)


def test_crop_shift_distribution_uses_every_offset() -> None:
    # With B=2000 and 5x5 = 25 offsets, each appears; padding 0 returns the image unchanged.
    x = torch.arange(1, 1 + 4 * 4, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(2000, 1, 1, 1)
    out = random_crop(x, 2, _gen(0))[:, 0]  # (2000, 4, 4)
    padded = F.pad(x[:1], (2, 2, 2, 2))[0, 0]
    windows = torch.stack([padded[dy:dy + 4, dx:dx + 4] for dy in range(5) for dx in range(5)])  # fmt: skip
    match = (out[:, None] == windows[None]).flatten(2).all(2)  # (2000, 25): which window each image is
    assert bool((match.sum(1) == 1).all())
    seen = set(match.float().argmax(1).tolist())
    assert len(seen) == 25
    assert torch.equal(random_crop(x, 0, _gen(0)), x)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_flip_probability_and_content(p: float) -> None:
    x = _batch(B=4000, C=1, H=3, W=5)
    out = random_hflip(x, _gen(3), p)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # every image is exactly one of the two (values are distinct)
    rate = flipped.float().mean().item()
    # Binomial(4000, p): the standard deviation is at most 0.008, so 0.03 is > 3.5 sigma.
    assert abs(rate - p) < 0.03


@pytest.mark.parametrize("size", [1, 4, 5])
def test_cutout_zeroes_exactly_a_clipped_square(size: int) -> None:
    x = _batch(B=300, C=2, H=9, W=11)
    out = cutout(x, size, _gen(7))
    saw_clipped = saw_full = False
    for b in range(len(x)):
        hole = out[b] == 0  # (C, H, W); the input has no zeros
        assert torch.equal(hole[0], hole[1])  # the same hole in every channel
        assert torch.equal(out[b][~hole], x[b][~hole])  # everything else untouched
        rows = hole[0].any(1).nonzero().flatten()
        cols = hole[0].any(0).nonzero().flatten()
        assert len(rows) >= 1 and len(cols) >= 1  # the centre is always inside, so never empty
        # The hole is the full rectangle spanned by its rows and columns, contiguous ...
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert int(hole[0].sum()) == (r1 - r0) * (c1 - c0) == len(rows) * len(cols)
        # ... of side `size`, shorter only where it touches a border (clipping).
        for lo, hi, n in ((r0, r1, 9), (c0, c1, 11)):
            side = int(hi - lo)
            assert side == size or (side < size and (lo == 0 or hi == n))
        clipped = int(r1 - r0) < size or int(c1 - c0) < size
        saw_clipped |= clipped
        saw_full |= not clipped
    assert saw_full and (saw_clipped or size == 1)


def test_normalize_per_channel() -> None:
    x = _batch(B=2, C=3)
    mean, std = [0.1, 0.2, 0.3], [0.5, 1.0, 2.0]
    out = normalize(x, mean, std)
    for c in range(3):
        assert torch.allclose(out[:, c], (x[:, c] - mean[c]) / std[c])
    assert torch.allclose(normalize(x, 0.5, 0.25), (x - 0.5) / 0.25)


def test_augment_draws_fresh_randomness_each_call_and_respects_zeros() -> None:
    x = _batch()
    aug = Augment(padding=2, flip_p=0.5, cutout_size=3, seed=0)
    first, second = aug(x), aug(x)
    assert not torch.equal(first, second)
    replay = Augment(padding=2, flip_p=0.5, cutout_size=3, seed=0)
    assert torch.equal(replay(x), first)
    assert torch.equal(Augment(0, 0.0, 0)(x), x)  # every step off: identity


def test_bad_inputs_raise_clear_errors() -> None:
    g = _gen()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        random_crop(torch.rand(3, 8, 8), 2, g)
    with pytest.raises(TypeError, match="float"):
        random_hflip(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), g)
    with pytest.raises(TypeError, match="Generator"):
        cutout(torch.rand(1, 1, 4, 4), 2, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding"):
        random_crop(torch.rand(1, 1, 4, 4), -1, g)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        random_hflip(torch.rand(1, 1, 4, 4), g, 1.5)
    with pytest.raises(ValueError, match="one per channel"):
        normalize(torch.rand(1, 3, 4, 4), [0.1, 0.2], 1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        normalize(torch.rand(1, 1, 4, 4), 0.0, 0.0)
