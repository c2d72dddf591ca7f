"""generate / stream / beam_search on a hand-made model and on our decoder_only (with KV cache)."""

from __future__ import annotations

import itertools

import pytest
import torch

import bestiary
from bestiary.generation import beam_search, generate, stream, stream_text, supports_cache
from bestiary.tokenizers import CharTokenizer


class TableModel:
    """A toy LM: the next-token distribution depends only on the last token (a bigram table).
    Plain callable: no parameters, no cache."""

    def __init__(self, table: torch.Tensor, max_seq_len: int | None = None):
        self.log_table = table.log()  # (V, V): row = previous token
        self.max_seq_len = max_seq_len
        self.calls: list[int] = []

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls.append(tokens.shape[1])
        return self.log_table[tokens]  # (B, T, V)


@pytest.fixture
def bigram() -> TableModel:
    torch.manual_seed(1)
    return TableModel(torch.rand(7, 7).softmax(-1))


@pytest.fixture
def lm():
    model = bestiary.build("decoder_only", tiny=True).eval()  # vocab 64, max_seq_len 64
    for p in model.parameters():  # random init is nearly uniform; scale up for decisive logits
        p.data.mul_(3.0)
    return model


def test_greedy_equals_manual_argmax_loop(bigram):
    out = generate(bigram, [3], max_new_tokens=6, temperature=0)
    expected, tok = [3], 3
    for _ in range(6):
        tok = int(bigram.log_table[tok].argmax())
        expected.append(tok)
    assert out[0].tolist() == expected
    assert not supports_cache(bigram)


def test_cached_and_uncached_generation_are_identical(lm):
    assert supports_cache(lm)
    prompt = torch.randint(0, 64, (3, 5))
    greedy_c = generate(lm, prompt, 30, temperature=0, use_cache=True)
    greedy_u = generate(lm, prompt, 30, temperature=0, use_cache=False)
    assert torch.equal(greedy_c, greedy_u)
    kw = dict(temperature=0.9, top_k=20, top_p=0.95, repetition_penalty=1.3)
    sample_c = generate(lm, prompt, 30, use_cache=True, generator=torch.Generator().manual_seed(5), **kw)
    sample_u = generate(lm, prompt, 30, use_cache=False, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(sample_c, sample_u)
    assert sample_c.shape == (3, 35) and torch.equal(sample_c[:, :5], prompt)


def test_cached_path_feeds_one_token_per_step(bigram):
    calls = []

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def init_cache(self, batch):
            return object()

        def forward(self, tokens, cache=None):
            calls.append(tokens.shape[1])
            return torch.zeros(tokens.shape[0], tokens.shape[1], 7)

    generate(Wrapped(bigram), [1, 2, 3], 4, temperature=0)
    assert calls == [3, 1, 1, 1]


def test_stream_yields_the_same_tokens_as_generate(lm):
    prompt = [1, 2, 3]
    streamed = list(stream(lm, prompt, 12, temperature=0.7, generator=torch.Generator().manual_seed(3)))
    batch = generate(lm, prompt, 12, temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert streamed == batch[0, 3:].tolist()
    assert isinstance(streamed[0], int)


def test_stream_text_reassembles_the_decoded_text(bigram):
    tok = CharTokenizer("abcdefg")
    pieces = list(stream_text(bigram, tok, "abc", 8, temperature=0))
    ids = generate(bigram, tok.encode("abc"), 8, temperature=0)[0, 3:].tolist()
    assert "".join(pieces) == tok.decode(ids) and len(pieces) == 8


def test_eos_stops_and_pads(bigram):
    eos = int(bigram.log_table[3].argmax())  # greedy from 3 emits this first
    out = generate(bigram, torch.tensor([[3], [3]]), 10, temperature=0, eos_token_id=eos)
    assert out.shape == (2, 2) and out[0, 1] == eos
    assert list(stream(bigram, [3], 10, temperature=0, eos_token_id=eos)) == [eos]


def test_context_errors_and_window(lm):
    with pytest.raises(ValueError, match="context"):
        generate(lm, torch.zeros(1, 65, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="use_cache=False"):
        generate(lm, torch.zeros(1, 60, dtype=torch.long), 10)
    out = generate(lm, torch.zeros(1, 60, dtype=torch.long), 10, use_cache=False, temperature=0)
    assert out.shape == (1, 70)  # sliding window: the model only ever sees the last 64 tokens
    with pytest.raises(ValueError, match="at least one token"):
        generate(lm, [], 3)
    with pytest.raises(ValueError, match="use_cache=True"):
        generate(TableModel(torch.ones(3, 3) / 3), [0], 2, use_cache=True)


def test_window_truncation_on_plain_model():
    model = TableModel(torch.ones(5, 5) / 5, max_seq_len=4)
    generate(model, [0, 1], 6, temperature=0)
    assert max(model.calls) == 4


def brute_force_best(model, prompt: list[int], n: int, vocab: int) -> tuple[list[int], float]:
    best = None
    for cont in itertools.product(range(vocab), repeat=n):
        seq = torch.tensor([prompt + list(cont)])
        logp = model(seq).log_softmax(-1)[0]
        score = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(cont))
        if best is None or score > best[1]:
            best = (list(cont), score)
    return best


def test_beam_search_exhaustive_width_equals_brute_force():
    torch.manual_seed(0)
    model = bestiary.build("decoder_only", tiny=True, vocab_size=5).eval()
    for p in model.parameters():
        p.data.mul_(4.0)
    with torch.no_grad():
        seq, score = beam_search(model, [1, 2], beam_width=25, max_new_tokens=3)
        best, best_score = brute_force_best(model, [1, 2], 3, 5)
    assert seq == best and score == pytest.approx(best_score, abs=1e-4)


def test_beam_width_one_is_greedy(lm):
    seq, _ = beam_search(lm, [4, 5], beam_width=1, max_new_tokens=8)
    assert seq == generate(lm, [4, 5], 8, temperature=0)[0, 2:].tolist()


def test_beam_search_beats_greedy_on_a_hand_made_trap():
    # token 0 = start. Greedy takes 1 (p=0.55) and then faces a flat distribution (max 0.34);
    # 2 (p=0.45) is followed by a confident 0.9: the best 2-token sequence starts with 2.
    table = torch.tensor(
        [
            [0.0, 0.55, 0.45],
            [0.34, 0.33, 0.33],
            [0.9, 0.05, 0.05],
        ]
    )
    model = TableModel(table + 1e-12)
    greedy = generate(model, [0], 2, temperature=0)[0, 1:].tolist()
    seq, score = beam_search(model, [0], beam_width=2, max_new_tokens=2)
    assert greedy == [1, 0] and seq == [2, 0]
    assert score == pytest.approx(float(torch.tensor(0.45 * 0.9).log()), abs=1e-6)


def test_beam_search_eos_and_errors(bigram):
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(bigram, [0], beam_width=0, max_new_tokens=3)
    seq, _ = beam_search(bigram, [0], beam_width=3, max_new_tokens=20, eos_token_id=2)
    assert 2 not in seq[:-1] and len(seq) <= 20
