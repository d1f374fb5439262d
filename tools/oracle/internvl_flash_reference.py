"""InternVL3.5-Flash (Visual Resolution Router) reference, reproducing the released custom code step by step.

Spec and sources: docs/internvl-flash-reference.md. Two sources are cited below:
  R  the released Flash `modeling_internvl_chat.py` (hub repos OpenGVLab/InternVL3_5-*-Flash, class InternVLChatModel);
     cited by class / function name;
  L  InternLM/lmdeploy lmdeploy/pytorch/models/internvl.py at 1263d5cd889b7ad500e85b8eb20401327a4516ab, the same
     algorithm statement for statement; cited by line.
What is identical to plain InternVL comes from transformers 4.57.6 (`models/internvl`): the vision tower
(InternVLVisionModel; R's InternVisionModel with the qkv split into q/k/v), pixel_shuffle (InternVLModel.pixel_shuffle,
ps_version v2), and the LLM (Qwen3ForCausalLM, which R instantiates itself). Only the Flash parts are written here:
`mlp2`, `CrossAttentionPooling` (with R's attn2 x 3 quirk), `Gating`, the decision rule, the prompt compaction.

The checkpoint is read in the ORIGINAL (GitHub / custom-code) format: config.json with `llm_config` and
`vision_config`, tensors `vision_model.*`, `mlp1.*`, `mlp2.*`, `pooling_before_gating.*`, `gating.*`,
`language_model.model.*`, `language_model.lm_head.weight`. Everything runs in float32 on CPU, eval mode (dropout off).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import Qwen3Config, Qwen3ForCausalLM
from transformers.models.internvl.configuration_internvl import InternVLVisionConfig
from transformers.models.internvl.modeling_internvl import InternVLModel, InternVLVisionModel

IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN = "<img>", "</img>", "<IMG_CONTEXT>"
# InternVL3.5's tokens added after Qwen3's </think> (151668), in InternVL's usual order (docs §8).
INTERNVL_ADDED_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
FIRST_ADDED_ID = 151669
IMG_START_ID, IMG_END_ID, IMG_CONTEXT_ID = 151669, 151670, 151671
BLOCK = 256  # R compress_visual_tokens_in_sentence / L 572-582: placeholder blocks are hard-coded 256 long
KEEP = 64  # R / L 588: a compressed block keeps its first 64 placeholders
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# conversation.py template `internvl2_5` (OpenGVLab/InternVL c981100b, internvl_chat/internvl/conversation.py 394-402)
SYSTEM_MESSAGE = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


def pixel_shuffle(x: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """R `pixel_shuffle` (ps_version v2) / L 527-537 == transformers InternVLModel.pixel_shuffle (self unused)."""
    return InternVLModel.pixel_shuffle(None, x, scale_factor=scale_factor)


class Gating(nn.Module):
    """R `Gating` / L 26-61: 4 residual blocks x + LN(Linear(GELU(Linear(x)))), then LN -> Linear(D, 2) -> softmax.

    Sequential indices as in R (0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout, 5 LayerNorm) so the checkpoint's
    names `gating.block{k}.{0,3,5}.*`, `gating.gate.{0,1}.*` load unchanged. Dropout(0.1) is inactive in eval.
    """

    def __init__(self, hidden_size: int, expansion_factor: int = 4, dropout: float = 0.1):
        super().__init__()
        mid_dim = hidden_size * expansion_factor

        def mlp_block(in_dim, out_dim):
            return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(out_dim, in_dim),
                                 nn.Dropout(dropout), nn.LayerNorm(in_dim))

        self.block1 = mlp_block(hidden_size, mid_dim)
        self.block2 = mlp_block(hidden_size, mid_dim)
        self.block3 = mlp_block(hidden_size, mid_dim)
        self.block4 = mlp_block(hidden_size, mid_dim)
        self.gate = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, 2))

    def forward(self, x: torch.Tensor, return_logits: bool = False):
        # R Gating.forward (use_checkpoint only changes autograd): four residual blocks, gate, softmax over 2.
        x = x + self.block1(x)
        x = x + self.block2(x)
        x = x + self.block3(x)
        x = x + self.block4(x)
        logits = self.gate(x)  # [T, 2]
        probs = torch.softmax(logits, dim=-1)
        return (probs, logits) if return_logits else probs


class CrossAttentionPooling(nn.Module):
    """R `CrossAttentionPooling` / L 64-134. num_heads is hard-coded 16 (not the ViT's head count).

    THE QUIRK (R and L): forward runs attn1/norm1 once, then attn2/norm2 three times; attn3/norm3/attn4/norm4 exist
    (and are in the checkpoint) but are never called. No residual connections.
    """

    def __init__(self, dim: int, num_heads: int = 16):
        super().__init__()
        self.query_token = nn.Parameter(torch.zeros(1, dim))  # [1, D]
        self.attn1 = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.attn2 = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.attn3 = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.norm3 = nn.LayerNorm(dim)
        self.attn4 = nn.MultiheadAttention(embed_dim=dim, num_heads=num_heads, batch_first=True)
        self.norm4 = nn.LayerNorm(dim)

    def forward(self, batched_tokens: list[torch.Tensor]) -> torch.Tensor:
        # 1. Padding (R; all Flash samples are one tile of 1024 tokens, so the mask is all False in practice)
        b = len(batched_tokens)
        d = batched_tokens[0].shape[-1]
        max_len = max(t.shape[0] for t in batched_tokens)
        padded = torch.zeros(b, max_len, d, dtype=self.query_token.dtype)
        padding_mask = torch.ones(b, max_len, dtype=torch.bool)
        for i, t in enumerate(batched_tokens):
            padded[i, :t.shape[0]] = t
            padding_mask[i, :t.shape[0]] = False
        # 2. Query token: [B, 1, D]
        query = self.query_token.unsqueeze(0).expand(b, -1, -1)
        # 3. attn1/norm1, then attn2/norm2 three times (R verbatim in effect)
        out1, _ = self.attn1(query, padded, padded, key_padding_mask=padding_mask)
        out1 = self.norm1(out1)
        out2, _ = self.attn2(out1, padded, padded, key_padding_mask=padding_mask)
        out2 = self.norm2(out2)
        out3, _ = self.attn2(out2, padded, padded, key_padding_mask=padding_mask)
        out3 = self.norm2(out3)
        out4, _ = self.attn2(out3, padded, padded, key_padding_mask=padding_mask)
        out4 = self.norm2(out4)
        return out4.squeeze(1)  # [B, D]


def mlp1_module(vit_hidden: int, llm_hidden: int, downsample_ratio: float) -> nn.Sequential:
    """R `self.mlp1` (L 471-478): LN(4Dv) -> Linear(4Dv, Dl) -> GELU -> Linear(Dl, Dl); = transformers'
    InternVLMultiModalProjector with R's Sequential names (mlp1.0, mlp1.1, mlp1.3)."""
    c = vit_hidden * int(1 / downsample_ratio) ** 2
    return nn.Sequential(nn.LayerNorm(c), nn.Linear(c, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden))


def mlp2_module(vit_hidden: int, llm_hidden: int, downsample_ratio: float) -> nn.Sequential:
    """R `self.mlp2` (L 489-497): LN(16Dv) -> Linear(16Dv, 2Dl) -> GELU -> Dropout -> Linear(2Dl, 2Dl) -> GELU ->
    Dropout -> Linear(2Dl, Dl). Names mlp2.0, mlp2.1, mlp2.4, mlp2.7."""
    c = vit_hidden * int(1 / downsample_ratio) ** 4
    return nn.Sequential(nn.LayerNorm(c), nn.Linear(c, llm_hidden * 2), nn.GELU(), nn.Dropout(0.1),
                         nn.Linear(llm_hidden * 2, llm_hidden * 2), nn.GELU(), nn.Dropout(0.1),
                         nn.Linear(llm_hidden * 2, llm_hidden))


def vision_config_from_original(vc: dict) -> InternVLVisionConfig:
    """The original InternViT `vision_config` as transformers' InternVLVisionConfig (same math, docs §1)."""
    return InternVLVisionConfig(
        hidden_size=vc["hidden_size"], num_hidden_layers=vc["num_hidden_layers"],
        num_attention_heads=vc["num_attention_heads"], intermediate_size=vc["intermediate_size"],
        attention_bias=vc.get("qkv_bias", True), use_qk_norm=vc.get("qk_normalization", False),
        hidden_act=vc.get("hidden_act", "gelu"), norm_type=vc.get("norm_type", "layer_norm"),
        layer_norm_eps=vc.get("layer_norm_eps", 1e-6), image_size=vc["image_size"], patch_size=vc["patch_size"],
        num_channels=vc.get("num_channels", 3), use_mean_pooling=True,  # R's InternVisionModel has no final norm
        use_absolute_position_embeddings=True, attn_implementation="eager")


def vision_state_from_original(sd: dict, num_layers: int) -> dict:
    """R's `vision_model.*` names -> transformers InternVLVisionModel names (as H's convert_keys_to_hf does)."""
    out = {
        "embeddings.cls_token": sd["vision_model.embeddings.class_embedding"],
        "embeddings.patch_embeddings.projection.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["vision_model.embeddings.patch_embedding.bias"],
        "embeddings.position_embeddings": sd["vision_model.embeddings.position_embedding"],
    }
    for i in range(num_layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[src + f"attn.qkv.{kind}"].chunk(3, dim=0)
            out[dst + f"attention.q_proj.{kind}"], out[dst + f"attention.k_proj.{kind}"] = q, k
            out[dst + f"attention.v_proj.{kind}"] = v
            out[dst + f"attention.projection_layer.{kind}"] = sd[src + f"attn.proj.{kind}"]
            out[dst + f"layernorm_before.{kind}"] = sd[src + f"norm1.{kind}"]
            out[dst + f"layernorm_after.{kind}"] = sd[src + f"norm2.{kind}"]
            out[dst + f"mlp.fc1.{kind}"] = sd[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.fc2.{kind}"] = sd[src + f"mlp.fc2.{kind}"]
        out[dst + "lambda_1"], out[dst + "lambda_2"] = sd[src + "ls1"], sd[src + "ls2"]
    return out


class InternVLFlashReference(nn.Module):
    """R InternVLChatModel restricted to inference: vision tower, mlp1, mlp2, ViR gate, LLM."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        vc, lc = config["vision_config"], config["llm_config"]
        self.downsample_ratio = config["downsample_ratio"]
        image_size = config.get("force_image_size") or vc["image_size"]
        self.num_image_token = int((image_size // vc["patch_size"]) ** 2 * self.downsample_ratio ** 2)  # R __init__
        assert config.get("select_layer", -1) == -1 and config.get("ps_version", "v2") == "v2"
        self.flash_mode = config.get("flash_mode", False)
        self.flash_relative_threshold = config["flash_relative_threshold"]
        self.flash_absolute_threshold = config["flash_absolute_threshold"]
        self.vision_model = InternVLVisionModel(vision_config_from_original(vc))
        self.language_model = Qwen3ForCausalLM(Qwen3Config(**{**lc, "attn_implementation": "eager"}))
        dv, dl = vc["hidden_size"], lc["hidden_size"]
        self.mlp1 = mlp1_module(dv, dl, self.downsample_ratio)
        self.mlp2 = mlp2_module(dv, dl, self.downsample_ratio)
        self.pooling_before_gating = CrossAttentionPooling(dim=dv)
        self.gating = Gating(hidden_size=dv)

    @classmethod
    def from_original(cls, checkpoint: Path) -> "InternVLFlashReference":
        config = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
        model = cls(config).float().eval()
        sd = {k: v.float() for k, v in load_file(str(Path(checkpoint) / "model.safetensors")).items()}
        used = set()

        def load(module: nn.Module, state: dict, keys: list[str]):
            module.load_state_dict(state, strict=True)  # raises on any missing / unexpected / mis-shaped tensor
            used.update(keys)

        vkeys = [k for k in sd if k.startswith("vision_model.")]
        load(model.vision_model, vision_state_from_original(sd, config["vision_config"]["num_hidden_layers"]), vkeys)
        for name in ("mlp1", "mlp2", "pooling_before_gating", "gating"):
            keys = [k for k in sd if k.startswith(name + ".")]
            load(getattr(model, name), {k[len(name) + 1:]: sd[k] for k in keys}, keys)
        lkeys = [k for k in sd if k.startswith("language_model.")]
        load(model.language_model, {k[len("language_model."):]: sd[k] for k in lkeys}, lkeys)
        assert used == set(sd), f"unused tensors: {sorted(set(sd) - used)}"
        return model

    # --- R extract_feature_flash / L 640-666 ----------------------------------------------------------------------
    def vit_1024(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.vision_model(pixel_values=pixel_values).last_hidden_state  # [T, 1+N, Dv] (R: no select_layer)
        x = x[:, 1:, :]  # drop CLS
        h = w = int(x.shape[1] ** 0.5)
        return x.reshape(x.shape[0], h, w, -1)  # [T, 32, 32, Dv]

    def extract_feature_flash(self, pixel_values: torch.Tensor, lengths: list[int]) -> dict:
        x = self.vit_1024(pixel_values)
        # split_and_merge (R; L 625-638): one sample per tile, its 1024 tokens in row-major order.
        samples = [s.reshape(-1, s.shape[-1]) for s in torch.split(x, lengths, dim=0)]
        pooled = self.pooling_before_gating(samples)  # [T, Dv]
        probs, logits = self.gating(pooled, return_logits=True)  # [T, 2]
        v64 = pixel_shuffle(x, self.downsample_ratio ** 2)
        v64 = self.mlp2(v64.reshape(v64.shape[0], -1, v64.shape[-1]))  # [T, 64, Dl]
        v256 = pixel_shuffle(x, self.downsample_ratio)
        v256 = self.mlp1(v256.reshape(v256.shape[0], -1, v256.shape[-1]))  # [T, 256, Dl]
        return {"vit": x, "pooled": pooled, "gate_logits": logits, "gate": probs, "v64": v64, "v256": v256}

    # --- R generate_flash (decision) / L 679-681 --------------------------------------------------------------------
    @staticmethod
    def decide(p0: torch.Tensor, relative: float, absolute: float) -> tuple[torch.Tensor, float]:
        rq = torch.quantile(p0.to(torch.float32), relative)  # linear interpolation over all tiles of the call
        return (p0 > rq) & (p0 >= absolute), float(rq)

    # --- R compress_visual_tokens_in_sentence / L 552-608 -----------------------------------------------------------
    @staticmethod
    def placeholder_runs(input_ids: torch.Tensor) -> list[tuple[int, int]]:
        """R get_image_num_per_sample: (start, length) of each contiguous IMG_CONTEXT run."""
        sel = (input_ids == IMG_CONTEXT_ID).int()
        diff = torch.diff(torch.cat([torch.tensor([0]), sel, torch.tensor([0])]))
        starts = (diff == 1).nonzero(as_tuple=True)[0].tolist()
        ends = (diff == -1).nonzero(as_tuple=True)[0].tolist()
        return [(s, e - s) for s, e in zip(starts, ends)]

    @classmethod
    def keep_mask(cls, input_ids: torch.Tensor, compress: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(input_ids.shape[0], dtype=torch.bool)
        flag = 0
        for s, n in cls.placeholder_runs(input_ids):
            if n % BLOCK != 0:
                raise ValueError(f"l % 256 != 0, l = {n}")
            for i in range(n // BLOCK):
                start = s + i * BLOCK
                if bool(compress[flag]):
                    keep[start + KEEP:start + BLOCK] = False  # the first 64 of the block's 256 stay
                flag += 1
        assert flag == compress.shape[0]
        return keep

    @torch.no_grad()
    def prepare_flash(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, relative: float | None = None,
                      absolute: float | None = None) -> dict:
        """R generate_flash up to the language model call: everything the LLM is fed, plus the intermediates."""
        relative = self.flash_relative_threshold if relative is None else relative
        absolute = self.flash_absolute_threshold if absolute is None else absolute
        ids = input_ids.reshape(-1)
        n_tiles = sum(n for _, n in self.placeholder_runs(ids)) // BLOCK  # R: lengths = count / 256, then ones
        feats = self.extract_feature_flash(pixel_values, [1] * n_tiles)
        p0 = feats["gate"][:, 0]
        compress, rq = self.decide(p0, relative, absolute)
        vit_embeds = torch.cat([feats["v64"][i] if compress[i] else feats["v256"][i] for i in range(n_tiles)], 0)
        keep = self.keep_mask(ids, compress)
        embeds = self.language_model.get_input_embeddings()(ids)[keep].clone()
        new_ids = ids[keep]
        selected = new_ids == IMG_CONTEXT_ID
        assert int(selected.sum()) == vit_embeds.shape[0]
        embeds[selected] = vit_embeds
        return {**feats, "p0": p0, "compress": compress, "relative_quantile_value": rq, "relative": relative,
                "absolute": absolute, "keep": keep, "input_ids": new_ids, "inputs_embeds": embeds[None],
                "vit_embeds": vit_embeds,
                # no position_ids are passed to generate: transformers derives 0..N'-1 from the all-ones mask
                "position_ids": torch.arange(new_ids.shape[0])}

    @torch.no_grad()
    def generate_flash(self, prepared: dict, generation_config) -> object:
        """R generate_flash's call: language_model.generate(inputs_embeds, attention_mask=ones(1, N'))."""
        emb = prepared["inputs_embeds"]
        return self.language_model.generate(inputs_embeds=emb, attention_mask=torch.ones(1, emb.shape[1]),
                                            generation_config=generation_config, use_cache=True,
                                            output_logits=True, return_dict_in_generate=True)


# --- the model card's preprocessing and R chat()'s prompt -------------------------------------------------------------
def build_transform(input_size: int):
    """Model card build_transform: RGB -> Resize((s, s), BICUBIC) -> ToTensor -> Normalize(ImageNet)."""
    import torchvision.transforms as T
    from torchvision.transforms.functional import InterpolationMode
    return T.Compose([T.Lambda(lambda img: img.convert("RGB") if img.mode != "RGB" else img),
                      T.Resize((input_size, input_size), interpolation=InterpolationMode.BICUBIC),
                      T.ToTensor(), T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])


def chat_query(question: str, num_patches_list: list[int], num_image_token: int,
               system_message: str = SYSTEM_MESSAGE) -> tuple[str, str]:
    """R chat(): template internvl2_5 (MPT style) prompt, then each <image> -> <img> + IMG_CONTEXT * 256*tiles + </img>.
    Returns (prompt with <image> markers, expanded query)."""
    prompt = (f"<|im_start|>system\n{system_message}<|im_end|>\n"
              f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    query = prompt
    for num_patches in num_patches_list:
        query = query.replace("<image>", IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token * num_patches
                              + IMG_END_TOKEN, 1)
    return prompt, query


def video_question(num_frames: int, text: str) -> str:
    """Model card video usage: 'Frame{i}: <image>\\n' per frame, then the question."""
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(num_frames)) + text
