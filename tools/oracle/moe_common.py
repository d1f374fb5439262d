"""MoE pieces shared by record_qwen3_5_moe.py (transformers 5.18) and record_qwen3_vl_moe.py (transformers 4.57.6):
the MoE block's weight spec and router taps. Imports nothing version-specific from transformers.

Weight-spec formulas (ported to TypeScript as moeBlockSpec() in src/testing/tiny-checkpoint.ts): uniform noise of
half-width gain * sqrt(3 / fan_in) around 0, fan_in = h for the router and gate/up projections, Im for down.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Router gain 2: logits spread over a few units, so different tokens pick different experts (routing not degenerate).
MOE_GAIN = {"router": 2.0, "experts_gate_up": 1.0, "experts_down": 1.5, "shared_expert_gate": 2.0}
# The shared expert is a dense SwiGLU MLP: the dense MLP gains (record_qwen2_vl.LINEAR_GAIN).
SHARED_GAIN = {"gate_proj": 1.0, "up_proj": 1.0, "down_proj": 1.5}


def _scale(gain: float, fan_in: int) -> float:
    return gain * math.sqrt(3 / fan_in)  # as linear_scale() in record_qwen2_vl.py (Math.sqrt in TS)


def moe_block_spec(pre: str, h: int, tc: dict, per_expert: bool = False, transposed: bool = False,
                   shared: bool = True) -> list[dict]:
    """The MoE tensors of one decoder layer `pre` (hub names), unsorted.
    - router `mlp.gate.weight` [E, h];
    - experts, fused: 5.x `experts.gate_up_proj` [E, 2*Im, h] (rows: gate then up) and `experts.down_proj` [E, h, Im]
      (nn.functional.linear layout); `transposed` (Qwen3-VL-MoE, 4.57 x @ W layout): [E, h, 2*Im] and [E, Im, h];
    - `per_expert`: `experts.{j}.{gate,up}_proj.weight` [Im, h] and `experts.{j}.down_proj.weight` [h, Im] whose values
      are slices of the fused tensors (`source`: tools/oracle/tiny_weights.py), i.e. the same weights;
    - `shared`: `shared_expert.{gate,up}_proj.weight` [Is, h], `shared_expert.down_proj.weight` [h, Is],
      `shared_expert_gate.weight` [1, h] (Qwen3.5-MoE only)."""
    E, im = tc["num_experts"], tc["moe_intermediate_size"]
    out = [{"name": f"{pre}.mlp.gate.weight", "shape": [E, h], "offset": 0.0, "scale": _scale(MOE_GAIN["router"], h)}]
    gu = {"name": f"{pre}.mlp.experts.gate_up_proj", "shape": [E, h, 2 * im] if transposed else [E, 2 * im, h],
          "offset": 0.0, "scale": _scale(MOE_GAIN["experts_gate_up"], h)}
    dn = {"name": f"{pre}.mlp.experts.down_proj", "shape": [E, im, h] if transposed else [E, h, im],
          "offset": 0.0, "scale": _scale(MOE_GAIN["experts_down"], im)}
    if not per_expert:
        out += [gu, dn]
    else:
        assert not transposed, "per-expert slices are defined for the 5.x (linear) layout only"
        for j in range(E):
            ex = f"{pre}.mlp.experts.{j}"
            for k, proj in enumerate(("gate_proj", "up_proj")):
                out.append({"name": f"{ex}.{proj}.weight", "shape": [im, h], "offset": 0.0, "scale": gu["scale"],
                            "source": {"name": gu["name"], "start": (2 * j + k) * im * h}})
            out.append({"name": f"{ex}.down_proj.weight", "shape": [h, im], "offset": 0.0, "scale": dn["scale"],
                        "source": {"name": dn["name"], "start": j * h * im}})
    if shared:
        si = tc["shared_expert_intermediate_size"]
        out += [
            {"name": f"{pre}.mlp.shared_expert.down_proj.weight", "shape": [h, si], "offset": 0.0,
             "scale": _scale(SHARED_GAIN["down_proj"], si)},
            {"name": f"{pre}.mlp.shared_expert.gate_proj.weight", "shape": [si, h], "offset": 0.0,
             "scale": _scale(SHARED_GAIN["gate_proj"], h)},
            {"name": f"{pre}.mlp.shared_expert.up_proj.weight", "shape": [si, h], "offset": 0.0,
             "scale": _scale(SHARED_GAIN["up_proj"], h)},
            {"name": f"{pre}.mlp.shared_expert_gate.weight", "shape": [1, h], "offset": 0.0,
             "scale": _scale(MOE_GAIN["shared_expert_gate"], h)},
        ]
    return out


def r7(x) -> list:
    """Flat float32 values rounded to 7 significant digits (compact JSON)."""
    return [float(f"{v:.7g}") for v in np.asarray(x, dtype=np.float32).reshape(-1).tolist()]


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.detach().reshape(-1, logits.shape[-1]).float()


class RouterTap:
    """Forward hooks on every decoder layer's router (`layer.mlp.gate`; layers without one are skipped): the router
    logits [T, E] of each call. `logits_of(output)` takes them from the module's output (5.18's router returns
    (logits, scores, ids); 4.57's is an nn.Linear)."""

    def __init__(self, layers, top_k: int, logits_of):
        self.top_k = top_k
        self.calls: list[tuple[int, torch.Tensor]] = []
        self.handles = []
        self.num_routed_layers = 0
        for i, layer in enumerate(layers):
            gate = getattr(layer.mlp, "gate", None)
            if gate is None:
                continue
            self.num_routed_layers += 1
            self.handles.append(gate.register_forward_hook(
                lambda _m, _inp, out, i=i: self.calls.append((i, _flat(logits_of(out))))))

    def clear(self) -> None:
        self.calls = []

    def remove(self) -> None:
        for hd in self.handles:
            hd.remove()

    def _gaps(self, logits: torch.Tensor) -> torch.Tensor:
        vals = logits.topk(self.top_k + 1, dim=-1).values
        return vals[:, self.top_k - 1] - vals[:, self.top_k]

    def min_gap(self) -> float:
        """Smallest (k-th - (k+1)-th) router logit over every token of every recorded call."""
        return min(float(self._gaps(c).min()) for _, c in self.calls)

    def summary(self, num_experts: int) -> dict:
        """Per layer, for calls recorded by one full-prompt forward: top-k ids and renormalised weights per token
        (softmax in fp32 -> top-k -> divide by their sum, as both references do), expert counts, smallest gap."""
        layers = []
        union: set[int] = set()
        for i, logits in self.calls:
            w, ids = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
            w = w / w.sum(-1, keepdim=True)
            counts = torch.bincount(ids.reshape(-1), minlength=num_experts).tolist()
            union |= set(ids.reshape(-1).tolist())
            layers.append({"layer": i, "topk_ids": ids.tolist(), "topk_weights": [r7(r) for r in w],
                           "expert_counts": counts, "distinct": int(sum(1 for c in counts if c)),
                           "min_topk_gap": float(self._gaps(logits).min())})
        return {"top_k": self.top_k, "num_experts": num_experts, "layers": layers, "distinct_experts": len(union)}


def record_router(model_call, tap: RouterTap, num_experts: int, min_gap_all_calls: float) -> dict:
    """Runs `model_call()` (one full-prompt forward) with the tap cleared and returns the per-layer summary."""
    tap.clear()
    with torch.no_grad():
        model_call()
    assert len(tap.calls) == tap.num_routed_layers, f"expected one router call per layer, got {len(tap.calls)}"
    out = tap.summary(num_experts)
    out["min_topk_gap_all_calls"] = min_gap_all_calls
    return out


def exact7(shape, rng, lo, hi) -> torch.Tensor:
    """A random float32 tensor whose values are exactly the 7-significant-digit decimals stored in the fixture."""
    x = rng.uniform(lo, hi, size=shape).astype(np.float32)
    return torch.tensor(np.array(r7(x), dtype=np.float32).reshape(shape))


def record_moe_block(block, layer: int, hidden: int, top_k: int, tokens: int = 6, seed: int = 11) -> dict:
    """One MoE block of the checkpoint (decoder layer `layer`) alone, on random inputs [1, tokens, h] (7 significant
    digits, uniform in +-1.7, about the scale of a normed hidden state): output, top-k ids and weights. A unit case
    for an engine's MoE block (test/moe-fixtures.test.ts recomputes it in plain TypeScript from the generated weights)."""
    rng = np.random.default_rng(seed)
    x = exact7([1, tokens, hidden], rng, -1.7, 1.7)
    with torch.no_grad():
        y = block(x)
        y = y[0] if isinstance(y, tuple) else y  # 4.57's block returns (out, router_logits)
        logits = x.reshape(-1, hidden) @ block.gate.weight.T
    w, ids = torch.topk(torch.softmax(logits.float(), dim=-1), top_k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    vals = logits.topk(top_k + 1, dim=-1).values
    gap = float((vals[:, top_k - 1] - vals[:, top_k]).min())
    assert gap >= 1e-3, f"moe_block unit case: router near tie ({gap}); change its seed"
    return {"layer": layer, "shape": [1, tokens, hidden], "seed": seed,
            "note": "input: the stored decimals parsed to float32; output = the layer's mlp(input), float32",
            "input": r7(x), "output": r7(y), "topk_ids": ids.tolist(), "topk_weights": [r7(r) for r in w],
            "min_topk_gap": gap}
