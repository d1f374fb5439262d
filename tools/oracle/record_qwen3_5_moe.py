"""Records the golden fixtures for a tiny random Qwen3.5-MoE checkpoint (reference: transformers 5.18.0).

Run from the repository root (a minute or two on 2 cores), with the transformers 5.18 oracle venv:
    ../shared/tools/make-oracle-venv.sh .venv-oracle-5 5.18.0      # once
    .venv-oracle-5/bin/python tools/oracle/record_qwen3_5_moe.py

`qwen3_5_moe` (Qwen3_5MoeForConditionalGeneration; Qwen3.6 and the Qwen3.5 MoE sizes) is the dense Qwen3.5 of
record_qwen3_5.py with a sparse MoE block instead of the dense MLP in every layer (docs/qwen3_5-reference.md §1, §2,
§10). The tiny checkpoint has the dense fixture's text/vision shape (hidden 64, layers [linear x3, full], Gated
DeltaNet Hk 2 dk 32 Hv 4 dv 48, attention 4/2 heads of 64, vision as Qwen3-VL tiny without DeepStack, mtp.* tensors)
and per layer: router `mlp.gate.weight [E, h]`, fused experts `mlp.experts.gate_up_proj [E, 2*Im, h]` (gate rows
first, then up) and `mlp.experts.down_proj [E, h, Im]`, a shared expert `mlp.shared_expert.{gate,up,down}_proj` and
its gate `mlp.shared_expert_gate.weight [1, h]`; E 8, top-k 2, Im 32, shared Is 48.

Two fixture folders under test/fixtures/qwen3_5_moe/ (media/ shared, the same PNGs as the dense fixture's):
  - qwen3_5_moe-tiny/             fused expert tensors (the layout the 5.18 modules hold);
  - qwen3_5_moe-tiny-per-expert/  the SAME weights written with per-expert tensors
                                  `mlp.experts.{j}.{gate,up,down}_proj.weight` ([Im, h], [Im, h], [h, Im]), the layout
                                  5.18 fuses on load (conversion_mapping.py `qwen2_moe` converter, which
                                  `qwen3_5_moe_text` includes). Its weights.json entries carry a `source`
                                  {name: <fused tensor>, start: <flat offset>}: the generator (tools/oracle/tiny_weights.py,
                                  src/testing/tiny-checkpoint.ts) makes each a slice of the fused tensor, so the two
                                  checkpoints hold bit-identical parameters. The recorder asserts that 5.18 loads the
                                  per-expert file into exactly the fused parameters, and records the full golden again
                                  from that model (logits equal to the fused fixture's: `per_expert_layout` in golden.json).

golden.json: format `videolm-golden-qwen3_5_moe/1` = the dense `videolm-golden-qwen3_5/1` (tools/oracle/README.md),
without `gated_delta_rule` (recorded by the dense fixture), plus per case `router` (top-k expert ids/weights per
layer for every prompt token, expert counts, distinct experts, and the smallest gap between the k-th and (k+1)-th
router logit over every routing decision of the case, prompt, cached decode steps and full forward, so a
tie cannot flip an engine's selection), `checkpoint.expert_layout`, and top-level `moe_block` (layer 0's MoE block
alone on random inputs: a unit case for an engine's MoE block). Golden values come from
`experts_implementation="eager"` (the per-expert loop in modeling_qwen3_5_moe.py:856-881); the default "grouped_mm"
path is checked to give the same logits (`reference.default_experts_max_abs_diff`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_weights  # noqa: E402
import record_qwen3_5 as rq  # noqa: E402
from moe_common import RouterTap, moe_block_spec, record_moe_block, record_router  # noqa: E402
from record_qwen2_vl import sha256_file, write_json  # noqa: E402
from record_qwen3_vl import GENERATION_CONFIG, INSTRUCT_TEMPLATE, PREPROCESSOR_CONFIG, VIDEO_PREPROCESSOR_CONFIG  # noqa: E402

import transformers  # noqa: E402
from transformers import AutoProcessor, Qwen3_5MoeForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "qwen3_5_moe"
NAME = "qwen3_5_moe-tiny"
NAME_PER_EXPERT = "qwen3_5_moe-tiny-per-expert"
SEED = int(os.environ.get("QWEN3_5_MOE_SEED", "20260321"))
# The dense recorder's media and case helpers read their fixture root from module globals: point them here.
rq.FIXTURES = FIXTURES
rq.MEDIA = FIXTURES / "media"

MIN_ROUTER_GAP = 1e-3


def model_config() -> dict:
    """Hub-style nested Qwen3.5-MoE config.json (cf. Qwen/Qwen3.5-35B-A3B), shrunk to the dense tiny fixture's shape."""
    cfg = rq.model_config()
    tc = dict(cfg["text_config"])
    del tc["intermediate_size"]  # absent in Qwen3_5MoeTextConfig: every layer is MoE
    tc.update({
        "model_type": "qwen3_5_moe_text",
        "moe_intermediate_size": 32,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "router_aux_loss_coef": 0.001,
        "shared_expert_intermediate_size": 48,
    })
    vc = dict(cfg["vision_config"], model_type="qwen3_5_moe_vision")
    return {**cfg, "architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
            "text_config": dict(sorted(tc.items())), "vision_config": vc}


# ---------------------------------------------------------------------------------------------------------------
# Weight spec (ported to TypeScript as qwen3_5MoeWeightSpec() in src/testing/tiny-checkpoint.ts, same formulas).
# The dense spec without its decoder MLP tensors, plus one MoE block per decoder layer and in the mtp layer.
# ---------------------------------------------------------------------------------------------------------------
DENSE_MLP = re.compile(r"\.mlp\.(gate|up|down)_proj\.weight$")


def qwen3_5_moe_weight_spec(cfg: dict, seed: int, per_expert: bool = False) -> dict:
    tc = cfg["text_config"]
    h = tc["hidden_size"]
    # The dense spec needs an MLP width; its MLP tensors are dropped, so any value does.
    dense = rq.qwen3_5_weight_spec({**cfg, "text_config": {**tc, "intermediate_size": 1}}, seed)
    out = [t for t in dense["tensors"] if not DENSE_MLP.search(t["name"])]
    layers = [f"model.language_model.layers.{i}" for i in range(len(tc["layer_types"]))] + ["mtp.layers.0"]
    for pre in layers:
        out += moe_block_spec(pre, h, tc, per_expert)
    out.sort(key=lambda t: t["name"].encode("ascii"))
    return {"seed": seed, "dtype": "BF16", "tensors": out}


def processor_inputs(processor, messages):
    prompt = processor.apply_chat_template(rq.template_messages(messages), tokenize=False, add_generation_prompt=True)
    images, videos, metadata = rq.media_inputs(messages)
    kwargs = {"do_resize": False}
    if videos:
        kwargs.update(do_sample_frames=False, video_metadata=metadata)
    return processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt", **kwargs)


def load(ckpt: Path, experts_impl: str | None = "eager"):
    kw = {} if experts_impl is None else {"experts_implementation": experts_impl}
    model, info = Qwen3_5MoeForConditionalGeneration.from_pretrained(
        ckpt, dtype=torch.float32, attn_implementation="eager", output_loading_info=True, **kw)
    model.eval()
    for k in ("missing_keys", "mismatched_keys", "error_msgs"):
        assert not info[k], f"{ckpt.name}: {k}: {info[k]}"
    unexpected = sorted(info["unexpected_keys"])
    assert all(u.startswith("mtp.") for u in unexpected), f"unexpected keys: {unexpected}"
    return model, unexpected


FIXTURE_FILES = rq.FIXTURE_FILES


def write_fixture_folder(d: Path, cfg: dict, spec: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", GENERATION_CONFIG)
    write_json(d / "preprocessor_config.json", dict(PREPROCESSOR_CONFIG))
    write_json(d / "video_preprocessor_config.json", dict(VIDEO_PREPROCESSOR_CONFIG))
    write_json(d / "tokenizer_config.json", rq.tokenizer_config(INSTRUCT_TEMPLATE))
    write_json(d / "chat_template.json", {"chat_template": INSTRUCT_TEMPLATE})
    write_json(d / "weights.json", spec, indent=1)


def build_checkpoint(d: Path, tmp: Path, spec: dict) -> tuple[Path, str]:
    ckpt = tmp / d.name
    ckpt.mkdir()
    for f in FIXTURE_FILES:
        shutil.copyfile(d / f, ckpt / f)
    shutil.copyfile(rq.TOKENIZER_DIR / "tokenizer.json", ckpt / "tokenizer.json")
    sha = tiny_weights.write_safetensors(spec, str(ckpt / "model.safetensors"))
    return ckpt, sha


def record_golden(name: str, d: Path, ckpt: Path, sha: str, spec: dict, model, processor, cases: dict, layout: str,
                  extra_reference: dict) -> dict:
    tc = model.config.text_config
    tap = RouterTap(model.model.language_model.layers, tc.num_experts_per_tok, lambda out: out[0])
    golden = {
        "format": "videolm-golden-qwen3_5_moe/1",
        "checkpoint": {
            "name": name,
            "expert_layout": layout,
            "model_safetensors_sha256": sha,
            "model_safetensors_bytes": (ckpt / "model.safetensors").stat().st_size,
            "weights_json_sha256": sha256_file(d / "weights.json"),
            "num_parameters": int(sum(int(np.prod(t["shape"])) for t in spec["tensors"])),
            "ignored_on_load": [t["name"] for t in spec["tensors"] if t["name"].startswith("mtp.")],
        },
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "model_class": type(model).__name__,
            "dtype": "float32",
            "attn_implementation": "eager",
            "experts_implementation": "eager",
            "processor": type(processor).__name__,
            "image_processor": type(processor.image_processor).__name__,
            "video_processor": type(processor.video_processor).__name__,
            "tokenizer": type(processor.tokenizer).__name__,
            "processor_call": "processor(text=[apply_chat_template(messages, tokenize=False, "
                              "add_generation_prompt=True)], images=[HWC uint8], videos=[(T,H,W,C) uint8, "
                              "padded to even T as qwen-vl-utils 0.0.14], video_metadata=[{fps: sample_fps, "
                              "frames_indices: range(T), total_num_frames: T}], do_resize=False, "
                              "do_sample_frames=False, return_tensors='pt')",
            "generate": "greedy, 12 new tokens, eos_token_id=None (never stops early), raw logits",
            "decoder_state": "model(**inputs, use_cache=True).past_key_values after the full prompt",
            "router": "per case, the prompt forward's router (mlp.gate) per layer: softmax(fp32) -> top-k -> "
                      "renormalised; min_topk_gap_all_calls also covers the decode steps and the full forward",
            **extra_reference,
        },
        "moe_block": record_moe_block(model.model.language_model.layers[0].mlp, 0, tc.hidden_size,
                                      tc.num_experts_per_tok),
        "cases": {},
    }
    for case, messages in cases.items():
        tap.clear()
        rec = rq.record_case(model, processor, case, messages)
        gap_all = tap.min_gap()
        inputs = processor_inputs(processor, messages)
        assert inputs["input_ids"][0].tolist() == rec["input_ids"]
        router = record_router(lambda: model(**inputs), tap, tc.num_experts, gap_all)
        assert gap_all >= MIN_ROUTER_GAP, f"{name} {case}: router near tie ({gap_all}); pick another seed"
        assert router["distinct_experts"] >= 3, f"{name} {case}: routing is degenerate: {router['distinct_experts']}"
        rec["router"] = router
        golden["cases"][case] = rec
        g = rec["greedy"]
        print(f"  {name} {case}: {rec['num_tokens']} tokens, greedy {g['new_tokens']} "
              f"({g['distinct']} distinct, margin {g['min_top1_margin']:.3g}), experts per layer "
              f"{[l['distinct'] for l in router['layers']]}, router gap {gap_all:.3g}")
    tap.remove()
    return golden


def main() -> None:
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    media = rq.write_media()
    cases = rq.build_cases(media)
    cfg = model_config()
    spec = qwen3_5_moe_weight_spec(cfg, SEED)
    spec_pe = qwen3_5_moe_weight_spec(cfg, SEED, per_expert=True)
    d, d_pe = FIXTURES / NAME, FIXTURES / NAME_PER_EXPERT
    write_fixture_folder(d, cfg, spec)
    write_fixture_folder(d_pe, cfg, spec_pe)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, sha = build_checkpoint(d, Path(tmp), spec)
        ckpt_pe, sha_pe = build_checkpoint(d_pe, Path(tmp), spec_pe)
        model, _ = load(ckpt)
        processor = AutoProcessor.from_pretrained(ckpt)

        # The default experts implementation (grouped_mm where it dispatches) gives the same logits.
        default_model, _ = load(ckpt, None)
        default_impl = default_model.config._experts_implementation
        with torch.no_grad():
            diffs = []
            for case in ("text", "image"):
                inp = processor_inputs(processor, cases[case])
                diffs.append(float((default_model(**inp).logits - model(**inp).logits).abs().max()))
        del default_model
        assert max(diffs) < 1e-4, f"default experts implementation differs: {diffs}"

        # The per-expert file loads into exactly the fused parameters (5.18 fuses experts.{j}.* on load).
        model_pe, _ = load(ckpt_pe)
        sd, sd_pe = model.state_dict(), model_pe.state_dict()
        assert sd.keys() == sd_pe.keys()
        unequal = [k for k in sd if not torch.equal(sd[k], sd_pe[k])]
        assert not unequal, f"per-expert checkpoint loads different parameters: {unequal[:5]}"
        processor_pe = AutoProcessor.from_pretrained(ckpt_pe)

        extra = {"default_experts_implementation": default_impl, "default_experts_max_abs_diff": max(diffs)}
        golden = record_golden(NAME, d, ckpt, sha, spec, model, processor, cases, "fused", extra)
        write_json(d / "golden.json", golden, indent=1)
        print(f"  wrote {d.relative_to(REPO)}/golden.json, sha256 {sha}")

        extra_pe = {**extra, "per_expert_layout": {
            "fused_fixture": NAME,
            "loaded_parameters_equal_fused": True,
            "note": "the per-expert tensors are slices of the fused fixture's (weights.json `source`); 5.18 fuses "
                    "mlp.experts.{j}.{gate,up}_proj.weight into experts.gate_up_proj (stack over j, cat on dim 1) "
                    "and experts.{j}.down_proj.weight into experts.down_proj on load (conversion_mapping.py, "
                    "qwen2_moe converter)"}}
        golden_pe = record_golden(NAME_PER_EXPERT, d_pe, ckpt_pe, sha_pe, spec_pe, model_pe, processor_pe, cases,
                                  "per_expert", extra_pe)
        for case, rec in golden_pe["cases"].items():
            ref = golden["cases"][case]
            same = {k: rec[k] == ref[k] for k in ("input_ids", "position_ids", "logits", "greedy", "router",
                                                  "decoder_state")}
            assert all(same.values()), f"per-expert {case} differs from fused: {same}"
        assert golden_pe["moe_block"] == golden["moe_block"]
        write_json(d_pe / "golden.json", golden_pe, indent=1)
        print(f"  wrote {d_pe.relative_to(REPO)}/golden.json, sha256 {sha_pe}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
