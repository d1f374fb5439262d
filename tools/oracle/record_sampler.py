"""Record golden fixtures for src/generation/sampler.ts, options.ts and rng.ts.

Run:  /work/main/.venv-oracle/bin/python tools/oracle/record_sampler.py
Writes test/fixtures/sampler/sampler_cases.json (read by test/sampler.test.ts).

Reference: transformers 4.57.6
  - generation/utils.py::GenerationMixin._get_logits_processor builds the processor list (order and gating:
    repetition_penalty != 1; only when do_sample: temperature != 1, top_k != 0, top_p < 1) — called for real below
    on a bare GenerationMixin instance, so the fixture proves the order, not just the individual warpers;
  - generation/logits_process.py: RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
    TopPLogitsWarper;
  - GenerationMixin._sample: probs = softmax(scores) (sampling) or argmax(scores) (greedy).

For every case we store the float32 logits row (vocab 1000), the history ids, the options, and HF's result:
the ids whose processed score is finite and their softmax probabilities (sampling), or the argmax (greedy);
plus raw log_softmax values (float64) for the logprobs check.
"""

import json
import os

import numpy as np
import torch
from transformers import GenerationConfig
from transformers.generation.utils import GenerationMixin

V = 1000
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "sampler", "sampler_cases.json")


class _BareGenerationMixin(GenerationMixin):
    """_get_logits_processor needs no model state for these options."""


MIXIN = object.__new__(_BareGenerationMixin)


def hf_processors(opts):
    greedy = opts["temperature"] == 0
    gc = GenerationConfig(
        do_sample=not greedy,
        temperature=1.0 if greedy else float(opts["temperature"]),
        top_k=int(opts["topK"]),
        top_p=float(opts["topP"]),
        repetition_penalty=float(opts["repetitionPenalty"]),
    )
    gc._eos_token_tensor = None
    return MIXIN._get_logits_processor(gc, input_ids_seq_length=1, device="cpu", model_kwargs={})


def make_rows():
    rng = np.random.default_rng(20240611)
    rows = {}
    rows["normal3"] = (rng.standard_normal(V) * 3).astype(np.float32)
    # many exact ties (one decimal), with the maximum duplicated at two ids (argmax must pick the first)
    ties = np.round(rng.standard_normal(V), 1).astype(np.float32)
    ties[[17, 640]] = np.float32(5.0)
    rows["ties"] = ties
    peaked = rng.standard_normal(V).astype(np.float32)
    peaked[[3, 500, 999]] = np.array([12.0, 11.5, 11.0], dtype=np.float32)
    rows["peaked"] = peaked
    rows["flat"] = (rng.standard_normal(V) * 0.5).astype(np.float32)
    return rows


def base(**kw):
    o = {"temperature": 1.0, "topK": 0, "topP": 1.0, "repetitionPenalty": 1.0}
    o.update(kw)
    return o


def cases(rows):
    n3 = rows["normal3"]
    top_ids = [int(i) for i in np.argsort(-n3, kind="stable")[:6]]
    neg_ids = [int(i) for i in np.where(n3 < -2)[0][:5]]
    # history: the argmax and other top tokens, some negative-score tokens, duplicates, in a mixed order
    hist = [top_ids[0], neg_ids[0], top_ids[2], top_ids[0], neg_ids[1], 7, top_ids[4], neg_ids[0], 999, 0]
    return [
        ("greedy", "normal3", base(temperature=0), []),
        ("greedy_penalty", "normal3", base(temperature=0, repetitionPenalty=1.5), hist),
        ("greedy_ties", "ties", base(temperature=0), []),
        ("temp07", "normal3", base(temperature=0.7), []),
        ("topk50", "normal3", base(topK=50), []),
        ("topk50_t05", "normal3", base(temperature=0.5, topK=50), []),
        ("topk_ties", "ties", base(topK=20), []),
        ("topk1_ties", "ties", base(topK=1), []),
        ("topp09", "normal3", base(topP=0.9), []),
        ("topp09_t15", "normal3", base(temperature=1.5, topP=0.9), []),
        ("topp05_peaked", "peaked", base(topP=0.5), []),
        ("topp0001", "normal3", base(topP=0.001), []),
        ("topp095_t2_flat", "flat", base(temperature=2.0, topP=0.95), []),
        ("combo", "normal3", base(temperature=0.8, topK=40, topP=0.8, repetitionPenalty=1.2), hist),
        ("combo_peaked", "peaked", base(temperature=1.3, topK=100, topP=0.95, repetitionPenalty=1.1), [3, 500, 42]),
        ("penalty_boost", "normal3", base(repetitionPenalty=0.8), hist),
        ("penalty_topp", "normal3", base(temperature=0.6, topP=0.7, repetitionPenalty=1.3), hist),
        ("topk_over_vocab", "normal3", base(topK=5000), []),
        ("qwen2vl_like", "normal3", base(temperature=0.01, topK=1, topP=0.001, repetitionPenalty=1.05), hist),
    ]


def record_case(name, row_name, row, opts, history):
    procs = hf_processors(opts)
    scores = torch.from_numpy(row.copy()).unsqueeze(0)  # [1, V] float32
    input_ids = torch.tensor([history if history else [0]], dtype=torch.long)
    if not history:
        # the processors only look at input_ids for the repetition penalty; an empty history is only used with it off
        assert opts["repetitionPenalty"] == 1.0
    processed = procs(input_ids, scores.clone())
    case = {
        "name": name,
        "row": row_name,
        "options": opts,
        "history": history,
        "processors": [type(p).__name__ for p in procs],
    }
    if opts["temperature"] == 0:
        case["greedyToken"] = int(torch.argmax(processed[0]).item())
    else:
        finite = torch.isfinite(processed[0])
        probs = torch.softmax(processed[0], dim=-1)  # float32, as in GenerationMixin._sample
        kept = torch.nonzero(finite).flatten().tolist()
        case["keptTokens"] = kept
        case["keptProbs"] = [float(probs[i]) for i in kept]
    return case


def rng_reference():
    """Independent Python port of splitmix32 → xoshiro128** (rng.ts), for a few seeds."""
    M = 0xFFFFFFFF

    def splitmix(state):
        state[0] = (state[0] + 0x9E3779B9) & M
        z = state[0]
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M
        return (z ^ (z >> 16)) & M

    def rotl(x, k):
        return ((x << k) | (x >> (32 - k))) & M

    out = []
    for seed in [0, 42, 2**40 + 7, 2**53 - 1]:
        lo = [seed & M]
        hi = [((seed >> 32) ^ 0x5BD1E995) & M]
        s = [splitmix(lo), splitmix(hi), splitmix(lo), splitmix(hi)]
        u32 = []
        for _ in range(8):
            result = (rotl((s[1] * 5) & M, 7) * 9) & M
            t = (s[1] << 9) & M
            s[2] ^= s[0]
            s[3] ^= s[1]
            s[1] ^= s[2]
            s[0] ^= s[3]
            s[2] ^= t
            s[3] = rotl(s[3], 11)
            u32.append(result)
        floats = [((u32[2 * i] >> 5) * 67108864 + (u32[2 * i + 1] >> 6)) / 2.0**53 for i in range(4)]
        out.append({"seed": seed, "uint32": u32, "floatsFromSameStream": floats})
    return out


def generation_config_reference():
    """What HF's GenerationConfig makes of a few generation_config.json files (missing keys → its defaults)."""
    files = [
        {"do_sample": True, "temperature": 0.01, "top_k": 1, "top_p": 0.001, "repetition_penalty": 1.05},
        {"do_sample": True, "top_p": 0.8},
        {"do_sample": False, "repetition_penalty": 1.1, "max_new_tokens": 64},
        {"bos_token_id": 151643, "eos_token_id": [151645, 151643]},
    ]
    out = []
    for f in files:
        gc = GenerationConfig(**f)
        out.append(
            {
                "json": f,
                "hf": {
                    "do_sample": gc.do_sample,
                    "temperature": gc.temperature,
                    "top_k": gc.top_k,
                    "top_p": gc.top_p,
                    "repetition_penalty": gc.repetition_penalty,
                    "max_new_tokens": gc.max_new_tokens,
                },
            }
        )
    return out


def main():
    rows = make_rows()
    recorded = [record_case(n, r, rows[r], o, h) for (n, r, o, h) in cases(rows)]
    # raw log_softmax (float64 of the float32 row) for the logprobs check
    n3 = torch.from_numpy(rows["normal3"]).double()
    lsm = torch.log_softmax(n3, dim=-1)
    order = sorted(range(V), key=lambda i: (-float(n3[i]), i))[:5]
    fixture = {
        "source": "tools/oracle/record_sampler.py (transformers 4.57.6 logits processors, torch CPU)",
        "vocab": V,
        "rows": {k: [float(x) for x in v] for k, v in rows.items()},
        "cases": recorded,
        "rawLogprobs": {
            "row": "normal3",
            "top5": [{"token": i, "logprob": float(lsm[i])} for i in order],
            "all": [float(x) for x in lsm],
        },
        "rng": rng_reference(),
        "generationConfigs": generation_config_reference(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {OUT}: {len(recorded)} cases")
    for c in recorded:
        kept = c.get("keptTokens")
        print(f"  {c['name']:18s} {c['processors']} kept={len(kept) if kept is not None else 'greedy ' + str(c['greedyToken'])}")


if __name__ == "__main__":
    main()
