"""Deterministic tiny-checkpoint weights: generator + safetensors writer (Python/numpy reference).

The same algorithm is implemented in TypeScript in src/testing/tiny-checkpoint.ts; both must produce
byte-identical model.safetensors files (test/tiny-checkpoint.test.ts checks the sha256 that
tools/oracle/record_qwen2_vl.py records into each golden.json).

THE GENERATOR (defined identically in src/testing/tiny-checkpoint.ts)
  All integer arithmetic is on uint32 with wrap-around (JS: Math.imul and >>> 0; numpy: uint32 arrays).
    lowbias32(x): x ^= x >>> 16; x = imul(x, 0x7feb352d); x ^= x >>> 15; x = imul(x, 0x846ca68b); x ^= x >>> 16
    fnv1a32(name): h = 0x811c9dc5; for each UTF-8 byte b of name: h ^= b; h = imul(h, 0x01000193)
  For the tensor `name` of a spec with `seed`:
    seedT = lowbias32(seed ^ fnv1a32(name))
  For flat element index i (row-major, 0 <= i < prod(shape)):
    h = lowbias32(i ^ seedT)
    u = (h >>> 8) / 2**24                                   in [0, 1), exact in float64
    v = offset + scale * (2 * u - 1)                        float64, evaluated in exactly this order
    f = float32(v)                                          round to nearest even (numpy astype / Math.fround)
    bf16 = (bits(f) + 0x7FFF + ((bits(f) >>> 16) & 1)) >>> 16   round to nearest even on the bit pattern
  Stored dtype is BF16 (little-endian uint16 bit patterns).
  A tensor with a `source` {"name": S, "start": k} is a slice of another (virtual) tensor: seedT is computed from S
  instead of `name`, and its element i is element k + i of S (so h = lowbias32((k + i) ^ seedT)). This writes the
  same values under another layout, e.g. per-expert tensors `experts.{j}.gate_proj.weight` equal to the rows of a
  fused `experts.gate_up_proj` (tools/oracle/record_qwen3_5_moe.py).

THE WEIGHT SPEC (weights.json in a fixture folder)
  { "seed": N, "dtype": "BF16", "tensors": [ { "name", "shape", "offset", "scale"[, "source"] }, ... ] }
  Tensors are listed sorted by name (byte order of the ASCII names).

THE SAFETENSORS BYTE LAYOUT (both writers produce exactly this)
  - 8 bytes: little-endian uint64 N = length of the header in bytes.
  - N bytes: compact JSON (no whitespace) object with one entry per tensor, sorted by name; each entry is
    {"dtype":"BF16","shape":[...],"data_offsets":[begin,end]} with keys in exactly that order; no
    "__metadata__". The JSON is padded at the end with ASCII spaces so that N is a multiple of 8.
  - the tensor data, in the same sorted-name order, contiguous (data_offsets are relative to the end of
    the header; the first tensor begins at 0, each next one where the previous ended).
ADDED TOKENS (a fixture's tokenizer_added_tokens.json; both materializers apply it)
  {"added_tokens": [{"id": N, "content": "<tok>", "special": true|false}, ...]} (other keys are ignored).
  tokenizer.json is the base tokenizer.json's text with each token inserted, in the listed order, as the last entries
  of its top-level "added_tokens" array (before the first "\n  ]," that follows `"added_tokens": [`), each written as
    ",\n    {\n      \"id\": N,\n      \"content\": \"<tok>\",\n      \"single_word\": false,\n      \"lstrip\": false,\n
      \"rstrip\": false,\n      \"normalized\": false,\n      \"special\": true\n    }"
  (the base file's own formatting). Contents must be printable ASCII without '"' or '\\'; ids must be new and above
  every id already in the array. Without the file, tokenizer.json is the base file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import BinaryIO, Iterable, Iterator

import numpy as np

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
# Elements generated per numpy batch: bounds memory for big tensors.
_CHUNK = 1 << 22


def lowbias32_int(x: int) -> int:
    """Scalar lowbias32 on a Python int (uint32 semantics)."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def fnv1a32(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def tensor_seed(seed: int, name: str) -> int:
    return lowbias32_int((seed ^ fnv1a32(name)) & 0xFFFFFFFF)


def _lowbias32_np(x: np.ndarray) -> np.ndarray:
    # x: uint32 array; numpy uint32 multiplication wraps modulo 2**32.
    x = x ^ (x >> np.uint32(16))
    x = x * _M1
    x = x ^ (x >> np.uint32(15))
    x = x * _M2
    x = x ^ (x >> np.uint32(16))
    return x


def f32_to_bf16_bits(f: np.ndarray) -> np.ndarray:
    """float32 array -> uint16 bf16 bit patterns, round to nearest even (NaN not handled)."""
    bits = f.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def generate_chunks(seed: int, t: dict, chunk: int = _CHUNK) -> Iterator[np.ndarray]:
    """Yields the bf16 bit patterns (uint16) of tensor spec `t` in flat order, chunk by chunk."""
    n = int(np.prod(t["shape"], dtype=np.int64)) if len(t["shape"]) else 1
    src = t.get("source")
    base = int(src["start"]) if src else 0
    assert base >= 0 and base + n <= 2**32, f"{t['name']}: too many elements for the uint32 index"
    seed_t = np.uint32(tensor_seed(seed, src["name"] if src else t["name"]))
    offset = float(t["offset"])
    scale = float(t["scale"])
    for start in range(0, n, chunk):
        idx = np.arange(base + start, base + min(n, start + chunk), dtype=np.uint32)
        h = _lowbias32_np(idx ^ seed_t)
        u = (h >> np.uint32(8)).astype(np.float64) / float(2**24)
        v = offset + scale * (2.0 * u - 1.0)
        yield f32_to_bf16_bits(v.astype(np.float32))


def generate_tensor(seed: int, t: dict) -> np.ndarray:
    """The whole tensor as uint16 bf16 bits with shape t['shape']."""
    parts = list(generate_chunks(seed, t))
    flat = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
    return flat.reshape(t["shape"])


def safetensors_header(tensors: Iterable[dict]) -> bytes:
    """The 8-byte length prefix + padded JSON header for BF16 tensors in the given (sorted) order."""
    parts = []
    pos = 0
    for t in tensors:
        name = t["name"]
        assert all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in name), f"unsupported tensor name {name!r}"
        n = int(np.prod(t["shape"], dtype=np.int64)) if len(t["shape"]) else 1
        shape = ",".join(str(int(d)) for d in t["shape"])
        parts.append(f'"{name}":{{"dtype":"BF16","shape":[{shape}],"data_offsets":[{pos},{pos + 2 * n}]}}')
        pos += 2 * n
    header = ("{" + ",".join(parts) + "}").encode("ascii")
    header += b" " * ((8 - len(header) % 8) % 8)
    return struct.pack("<Q", len(header)) + header


def check_spec(spec: dict) -> None:
    assert spec["dtype"] == "BF16", "only BF16 weight specs are supported"
    names = [t["name"] for t in spec["tensors"]]
    assert names == sorted(names), "weight spec tensors must be sorted by name"
    assert len(set(names)) == len(names), "duplicate tensor names in weight spec"


def write_safetensors(spec: dict, path: str) -> str:
    """Writes model.safetensors for `spec` to `path`; returns the file's sha256 (hex)."""
    check_spec(spec)
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        _write(f, sha, safetensors_header(spec["tensors"]))
        for t in spec["tensors"]:
            for chunk in generate_chunks(spec["seed"], t):
                _write(f, sha, chunk.astype("<u2").tobytes())
    return sha.hexdigest()


def _write(f: BinaryIO, sha, data: bytes) -> None:
    f.write(data)
    sha.update(data)


def load_spec(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    check_spec(spec)
    return spec


ADDED_TOKENS_FILE = "tokenizer_added_tokens.json"


def add_tokens_to_tokenizer_json(base: bytes, added: list[dict]) -> bytes:
    """The base tokenizer.json bytes with `added` inserted at the end of its added_tokens array (see ADDED TOKENS)."""
    text = base.decode("utf-8")
    head = text.index('"added_tokens": [')
    end = text.index("\n  ],", head)
    existing = [int(m) for m in __import__("re").findall(r'"id": (\d+)', text[head:end])]
    last = max(existing) if existing else -1
    parts = []
    for t in added:
        content, tid, special = t["content"], int(t["id"]), bool(t["special"])
        assert all(0x20 <= ord(ch) < 0x7F and ch not in '"\\' for ch in content), f"unsupported token {content!r}"
        assert tid > last, f"added token {content} id {tid} must exceed {last}"
        last = tid
        parts.append(
            ",\n    {\n"
            f'      "id": {tid},\n      "content": "{content}",\n      "single_word": false,\n'
            '      "lstrip": false,\n      "rstrip": false,\n      "normalized": false,\n'
            f'      "special": {"true" if special else "false"}\n    }}'
        )
    return (text[:end] + "".join(parts) + text[end:]).encode("utf-8")


def write_tokenizer_json(base_path, fixture_dir, out_path) -> None:
    """tokenizer.json of a materialized checkpoint: the base file, plus the fixture's added tokens if it has any."""
    from pathlib import Path
    base = Path(base_path).read_bytes()
    spec = Path(fixture_dir) / ADDED_TOKENS_FILE
    if spec.exists():
        base = add_tokens_to_tokenizer_json(base, json.loads(spec.read_text(encoding="utf-8"))["added_tokens"])
    Path(out_path).write_bytes(base)
