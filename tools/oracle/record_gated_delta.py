"""Record golden fixtures for src/onnx/gated-delta.ts (the Gated DeltaNet core of Qwen3.5).

Run:  /work/main/.venv-oracle-5/bin/python tools/oracle/record_gated_delta.py
Writes test/fixtures/qwen3_5/gated-delta.json (read by test/gated-delta.test.ts).

Reference: transformers 5.18.0, models/qwen3_5/modeling_qwen3_5.py, called as Qwen3_5GatedDeltaNet.forward calls them:
  - torch_chunk_gated_delta_rule(q, k, v, g, beta, initial_state, output_final_state=True,
    use_qk_l2norm_in_kernel=True) (prefill; chunk_size 64; solve_triangular path, not the export row loop);
  - torch_recurrent_gated_delta_rule(...) on the next token from the chunk's final state (decode);
  - causal_conv1d_fn (prefill, no cache) and causal_conv1d_update (one token with a K-wide conv state), SiLU, no bias;
  - Qwen3_5RMSNormGated.
Inputs are random float32 in the reference's layout ([B, T, H, D], g and beta [B, T, H]); the fixture stores them in
that layout with shapes; the test transposes to heads-first. Deterministic (fixed seed, CPU).
"""

import json
import os

import torch
import torch.nn.functional as F
from transformers.models.qwen3_5 import modeling_qwen3_5 as m

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "qwen3_5", "gated-delta.json")


def flat(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def delta_case(gen, B, T, H, Dk, Dv, aligned):
    q = torch.randn(B, T + 1, H, Dk, generator=gen)
    k = torch.randn(B, T + 1, H, Dk, generator=gen)
    v = torch.randn(B, T + 1, H, Dv, generator=gen)
    a = torch.randn(B, T + 1, H, generator=gen)
    b = torch.randn(B, T + 1, H, generator=gen)
    A_log = torch.log(torch.rand(H, generator=gen) * 4 + 0.01)
    dt_bias = torch.randn(H, generator=gen) * 0.5
    # as Qwen3_5GatedDeltaNet.forward makes them
    beta = b.sigmoid()
    g = -A_log.float().exp() * F.softplus(a.float() + dt_bias)
    if aligned:  # little decay, keys sharing one direction, beta near 1: the UT system's inverse is far from I
        k = 0.5 * k + 2 * torch.randn(Dk, generator=gen)
        g = -0.001 * torch.rand(B, T + 1, H, generator=gen)
        beta = 0.8 + 0.2 * torch.rand(B, T + 1, H, generator=gen)
    state = torch.randn(B, H, Dk, Dv, generator=gen) * 0.5
    with torch.no_grad():
        out, final = m.torch_chunk_gated_delta_rule(
            q[:, :T], k[:, :T], v[:, :T], g=g[:, :T], beta=beta[:, :T],
            initial_state=state, output_final_state=True, use_qk_l2norm_in_kernel=True,
        )
        step_out, step_state = m.torch_recurrent_gated_delta_rule(
            q[:, T:], k[:, T:], v[:, T:], g=g[:, T:], beta=beta[:, T:],
            initial_state=final, output_final_state=True, use_qk_l2norm_in_kernel=True,
        )
    return {
        "B": B, "T": T, "H": H, "Dk": Dk, "Dv": Dv, "aligned": aligned,
        # T + 1 tokens of inputs: the first T are the prefill, the last one the decode step
        "q": flat(q), "k": flat(k), "v": flat(v), "g": flat(g), "beta": flat(beta),
        "initial_state": flat(state),
        "chunk_output": flat(out), "chunk_state": flat(final),
        "step_output": flat(step_out), "step_state": flat(step_state),
    }


def conv_case(gen, B, T, C, K):
    x = torch.randn(B, C, T + 1, generator=gen)  # the reference's [B, C, T] layout
    w = torch.randn(C, K, generator=gen) * 0.5
    with torch.no_grad():
        y = m.causal_conv1d_fn(x[:, :, :T], w, None, activation="silu")
        # what the cache holds after prefill: the last K inputs (update_conv_state), then one decode token
        conv_state = F.pad(x[:, :, :T], (K, 0))[:, :, -K:].clone()  # zeros before the first token
        y_step = m.causal_conv1d_update(x[:, :, T:], conv_state, w, None, activation="silu")
    return {"B": B, "T": T, "C": C, "K": K, "x": flat(x), "weight": flat(w), "prefill": flat(y), "step": flat(y_step)}


def norm_case(gen, rows, D):
    norm = m.Qwen3_5RMSNormGated(D, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(D, generator=gen))
        x = torch.randn(rows, D, generator=gen) * 2
        z = torch.randn(rows, D, generator=gen) * 2
        y = norm(x, z)
    return {"rows": rows, "D": D, "eps": 1e-6, "weight": flat(norm.weight), "x": flat(x), "z": flat(z), "y": flat(y)}


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20261203)
    fixture = {
        "reference": "transformers 5.18.0 models/qwen3_5/modeling_qwen3_5.py",
        "delta": [
            delta_case(gen, 1, 70, 2, 8, 16, aligned=False),
            delta_case(gen, 1, 66, 1, 8, 8, aligned=True),
        ],
        "conv": [conv_case(gen, 2, 6, 8, 4), conv_case(gen, 1, 2, 8, 4)],
        "norm": norm_case(gen, 3, 16),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
