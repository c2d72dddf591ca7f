"""KV-cache decode speed: cached vs uncached generation, and our SmolLM2 vs `transformers`.

1. A small decoder (`decoder_only`, d_model 256, 4 layers) generates 512 tokens greedily, once
   re-running the whole sequence every step (no cache) and once with a KV cache. The tokens must
   be identical; the ratio of the two times is the cache's speed-up (target >= 8x).
2. SmolLM2-135M-Instruct on CPU: our Llama implementation (`bestiary.llm.load_smollm2` +
   `bestiary.generation.generate`, KV cache, greedy) vs `transformers`' LlamaForCausalLM.generate
   from the same fp32 weights, same prompt, same number of new tokens (target >= 1.0x tokens/s);
   `--repeats` alternating rounds, each side's median time.
   Skipped, with a JSON line saying why, when the weights are not installed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kv_cache.py [--new-tokens 512] [--llm-tokens 64]

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

import bestiary
from bestiary.generation import generate


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def cache_speedup(new_tokens: int) -> None:
    torch.manual_seed(0)
    model = bestiary.build(
        "decoder_only",
        vocab_size=256,
        d_model=256,
        n_layers=4,
        n_heads=4,
        n_kv_heads=4,
        d_ff=704,
        max_seq_len=1024,
    ).eval()
    prompt = torch.randint(0, 256, (1, 16))
    generate(model, prompt, 8, temperature=0)  # warm-up (allocator, first-call overheads)
    cached, t_cached = timed(lambda: generate(model, prompt, new_tokens, temperature=0, use_cache=True))
    uncached, t_uncached = timed(lambda: generate(model, prompt, new_tokens, temperature=0, use_cache=False))
    assert torch.equal(cached, uncached), "cached and uncached generation disagree"
    print(
        json.dumps(
            {
                "benchmark": "kv_cache_decode",
                "model": "decoder_only d256 L4 H4",
                "prompt_tokens": 16,
                "new_tokens": new_tokens,
                "uncached_s": round(t_uncached, 3),
                "cached_s": round(t_cached, 3),
                "cached_tokens_per_s": round(new_tokens / t_cached, 1),
                "uncached_tokens_per_s": round(new_tokens / t_uncached, 1),
                "identical_tokens": True,
                "speedup": round(t_uncached / t_cached, 2),
                "target_speedup": 8,
            }
        ),
        flush=True,
    )


def smollm2_vs_transformers(new_tokens: int, repeats: int = 3) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from bestiary.llm import load_smollm2, smollm2_files

        ours, tokenizer = load_smollm2()
        folder = smollm2_files()
    except (ImportError, FileNotFoundError) as err:
        print(json.dumps({"benchmark": "smollm2_decode", "skipped": str(err)}))
        return
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt_text = "The three most important ideas in machine learning are"
    ids = torch.tensor([tokenizer.encode(prompt_text)])
    # warm-up both (first calls allocate)
    generate(ours, ids, 4, temperature=0)
    with torch.no_grad():
        hf.generate(ids, max_new_tokens=4, do_sample=False)

    def run_ours():
        return generate(ours, ids, new_tokens, temperature=0)

    def run_hf():
        with torch.no_grad():
            return hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )

    # alternate the two (ours first on even rounds, transformers first on odd ones) and keep each
    # side's median: a load change on a shared machine then hits both, not just one
    times_ours, times_hf = [], []
    for round_ in range(repeats):
        order = [(run_ours, times_ours), (run_hf, times_hf)]
        for fn, times in order if round_ % 2 == 0 else reversed(order):
            out, seconds = timed(fn)
            times.append(seconds)
            if fn is run_ours:
                out_ours = out
            else:
                out_hf = out
    t_ours, t_hf = statistics.median(times_ours), statistics.median(times_hf)
    n_ours, n_hf = out_ours.shape[1] - ids.shape[1], out_hf.shape[1] - ids.shape[1]
    same = (out_ours[0, ids.shape[1] :] == out_hf[0, ids.shape[1] :]).float().mean().item()
    print(
        json.dumps(
            {
                "benchmark": "smollm2_decode",
                "prompt_tokens": ids.shape[1],
                "new_tokens": new_tokens,
                "repeats": repeats,
                "ours_tokens_per_s": round(n_ours / t_ours, 2),
                "transformers_tokens_per_s": round(n_hf / t_hf, 2),
                "ratio": round((n_ours / t_ours) / (n_hf / t_hf), 2),
                "target_ratio": 1.0,
                "greedy_tokens_agree": round(same, 3),
                "sample": tokenizer.decode(out_ours[0, ids.shape[1] :].tolist())[:120],
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--llm-tokens", type=int, default=64)
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed rounds per side (median)")
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )
    cache_speedup(args.new_tokens)
    if not args.skip_llm:
        smollm2_vs_transformers(args.llm_tokens, args.repeats)


if __name__ == "__main__":
    main()
