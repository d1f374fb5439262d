"""Creates models/videolm-demo before training: the byte-level BPE tokenizer (trained on the generator's
question/answer text, Qwen-VL special tokens kept), the Qwen2-VL chat template, config.json with token ids
taken from that tokenizer, processor configs, and a seeded random initialisation (model.safetensors) that the
trainer starts from.

Usage: .venv-oracle/bin/python tools/demo/init_checkpoint.py <corpus.txt> [out_dir=models/videolm-demo] [seed=1234]
(corpus.txt from `npx tsx tools/demo/corpus.mts corpus.txt`).
"""
import json
import os
import sys

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

corpus = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "models/videolm-demo"
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1234
os.makedirs(out, exist_ok=True)

# Qwen2 special tokens, in Qwen's order (ids 0..13 here).
SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
VOCAB_SIZE = 384
# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2-VL-2B-Instruct).
QWEN2_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

tok = Tokenizer(models.BPE())
tok.normalizer = normalizers.NFC()
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
])
tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train([corpus], trainer)
tok.save(os.path.join(out, "tokenizer.json"))
ids = {t: tok.token_to_id(t) for t in SPECIALS}
assert [ids[t] for t in SPECIALS] == list(range(len(SPECIALS))), ids
vocab = tok.get_vocab_size()

CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def dump(name, obj):
    with open(os.path.join(out, name), "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


dump("chat_template.json", {"chat_template": CHAT_TEMPLATE})
dump("tokenizer_config.json", {
    "add_bos_token": False,
    "add_prefix_space": False,
    "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True} for t, i in ids.items()},
    "additional_special_tokens": SPECIALS[1:],
    "bos_token": None,
    "clean_up_tokenization_spaces": False,
    "eos_token": "<|im_end|>",
    "errors": "replace",
    "model_max_length": 1024,
    "pad_token": "<|endoftext|>",
    "split_special_tokens": False,
    "tokenizer_class": "Qwen2Tokenizer",
    "unk_token": None,
})
SPAN_PATTERN = r"from \d+\.\d to \d+\.\d seconds"
TEXT_PATTERN = "the [a-z]+(?: [a-z]+)*"
QUERY_NOTE = ("one object as '<colour> <shape>', lower case, no article: colour red, green, blue, yellow, white or purple; "
              "shape square, circle or triangle (e.g. 'red circle'; a change scene's object under either colour)")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
# Images: the hub default floor, at most 112x112 pixels. Videos: 4 fps, at most 112x112 pixels per frame.
dump("preprocessor_config.json", {
    "min_pixels": 3136, "max_pixels": 12544, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": MEAN, "image_std": STD, "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
})
dump("video_preprocessor_config.json", {
    "fps": 4.0, "do_sample_frames": True, "min_frames": 4, "max_frames": 64, "min_pixels": 3136, "max_pixels": 12544,
    "size": {"shortest_edge": 3136, "longest_edge": 12544}, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": MEAN, "image_std": STD, "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor",
    # videolm's own namespaced defaults (qwen-vl-utils names): real hub checkpoints carry the transformers fields above
    # with other values that qwen-vl-utils ignores, so videolm reads only this block.
    "videolm_sampling": {"fps": 4.0, "min_pixels": 3136, "max_pixels": 12544, "min_frames": 4, "max_frames": 64},
    # The demo's own events phrasing (src/synth/events.ts, docs/demo-model.md "Events"), read by src/events/prompts.ts:
    # the grounding and dense-caption questions it was trained on, what {query} takes, and its answers' formats
    # (regular expressions for constrained decoding; equal to GROUNDING_ANSWER_PATTERN / DENSE_ANSWER_PATTERN).
    "videolm_events": {
        "grounding": "when is the {query} visible?",
        "dense": "list the events.",
        "query": QUERY_NOTE,
        "groundingFormat": {"type": "regex", "pattern": SPAN_PATTERN},
        "denseFormat": {"type": "regex", "pattern": f"{SPAN_PATTERN}: {TEXT_PATTERN}(?:\\n{SPAN_PATTERN}: {TEXT_PATTERN})*"},
    },
})
dump("generation_config.json", {
    "bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]], "pad_token_id": ids["<|endoftext|>"],
    "do_sample": False, "max_new_tokens": 16, "transformers_version": "4.57.6",
})

config = Qwen2VLConfig(
    text_config=dict(
        vocab_size=vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, hidden_act="silu", max_position_embeddings=1024, rms_norm_eps=1e-6, rope_theta=10000.0,
        rope_scaling={"type": "mrope", "mrope_section": [8, 4, 4]}, tie_word_embeddings=True, use_sliding_window=False,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    ),
    vision_config=dict(depth=2, embed_dim=64, hidden_size=128, num_heads=2, mlp_ratio=2, hidden_act="quick_gelu",
                       in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
    image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
    vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    tie_word_embeddings=True,
)
torch.manual_seed(seed)
model = Qwen2VLForConditionalGeneration(config)
model.save_pretrained(out, safe_serialization=True)
n = sum(p.numel() for p in model.parameters())
print(f"vocab {vocab}, params {n}, specials {ids}")
