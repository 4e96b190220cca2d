#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/data/fuzz/<target>/seeds/) from the repository's
own fixtures; see README.md for where each seed comes from. Deterministic: a rerun rewrites the same
bytes. The report seeds are not made here (they are `circuitscope` output; README.md has the commands).

    python3 tests/data/fuzz/make_seeds.py
"""
import json
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
FUZZ = os.path.join(DATA, "fuzz")
SEP = b"\n\x01\n"  # fuzz/targets.hpp: kTokenizerSeparator
MAX_SEED = 8192    # a few KB each


def read(*parts):
    with open(os.path.join(ROOT, *parts), "rb") as f:
        return f.read()


def write_seeds(target, seeds):
    d = os.path.join(FUZZ, target, "seeds")
    os.makedirs(d, exist_ok=True)  # other files there (the toy-lab seeds of README.md) are kept
    for name, data in seeds:
        assert len(data) <= MAX_SEED, (target, name, len(data))
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    assert len(os.listdir(d)) <= 20, f"{target}: at most 20 seeds"
    print(f"{target}: {len(seeds)} seeds")


def config_seeds():
    out = []
    for group in ("hf-tiny", "hf-ref"):
        for model in sorted(os.listdir(os.path.join(DATA, group))):
            p = os.path.join(DATA, group, model, "config.json")
            if os.path.exists(p):
                out.append((f"{model}.json", read("tests", "data", group, model, "config.json")))
    return out


def tokenizer_seeds():
    text = "Hello, world! 12345 <|endoftext|> caf\u00e9 \u4f60\u597d\n\tthe cat  <s> </s> <|begin_of_text|>".encode()
    out = []
    d = os.path.join(DATA, "tokenizers")
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name, "tokenizer.json")
        if name.endswith("_tiny") and os.path.exists(p):
            out.append((f"{name}", read("tests", "data", "tokenizers", name, "tokenizer.json") + SEP + text))
    # The byte-level one once more with other text: digits, NFKC-relevant characters, invalid UTF-8.
    bl = read("tests", "data", "tokenizers", "bytelevel_tiny", "tokenizer.json")
    out.append(("bytelevel_tiny_digits", bl + SEP + "x\uff11\uff12 3.14e-5 \ufb01 ==> \r\n".encode() + b"\xff\xfe"))
    return out


def chat_template_seeds():
    out = []
    d = os.path.join(DATA, "chat", "templates")
    for name in sorted(os.listdir(d)):
        out.append((name, read("tests", "data", "chat", "templates", name)))
    cfg = json.loads(read("tests", "data", "chat", "qwen3", "tokenizer_config.json"))
    out.append(("qwen3.jinja", cfg["chat_template"].encode()))
    # Engine features, from the Jinja2-generated reference rows.
    wanted = ["macro_recursive", "namespace", "loop_vars", "loop_prev_next_cycle", "filter_select_map",
              "filter_sort_unique_reverse", "str_format_method", "tojson_options", "range_dict_joiner_cycler",
              "set_block", "generation_tag", "tests_values"]
    rows = {}
    for line in read("tests", "data", "chat", "engine_reference.jsonl").decode().split("\n"):
        if line.strip():
            r = json.loads(line)
            rows[r["name"]] = r["template"]
    for name in wanted:
        out.append((f"engine_{name}.jinja", rows[name].encode()))
    return out


def dataset_line_seeds():
    lines = [
        # tests/test_dataset.cpp
        ("token_form", '{"clean_ids": [1, 2, 3], "corrupted_ids": [1, 4], "answer_id": 5, "wrong_id": 6}'),
        ("token_form_crlf", '{"clean_ids": [7], "corrupted_ids": [8, 9], "answer_id": 5, "wrong_id": 6}\r'),
        ("token_continuation", '{"clean_ids": [1, 2], "corrupted_ids": [3], "clean_continuation_ids": [4, 5], '
                               '"corrupted_continuation_ids": [6]}'),
        ("text_answer", '{"id": 7, "clean": "hello the cat", "corrupted": "hello a dog", "answer": "the", '
                        '"wrong": "hello"}'),
        ("text_continuation", '{"clean": "the cat", "corrupted": "the dog", "clean_continuation": "hello the", '
                              '"corrupted_continuation": "the end", "problem": "ignored"}'),
        ("text_same_first_token", '{"clean": "a", "corrupted": "b", "answer": "92", "wrong": "95"}'),
        ("text_mixed_forms", '{"clean": "a", "corrupted": "b", "clean_ids": [1], "answer": "x", "wrong": "y"}'),
        # tests/test_sweep.cpp (pairs_text)
        ("sweep_pair", '{"clean_ids": [5, 20, 30, 40, 9], "corrupted_ids": [5, 21, 30, 43, 9], "answer_id": 40, '
                       '"wrong_id": 43}'),
        # The documented forms (include/circuitscope/dataset.hpp), with special tokens and Unicode.
        ("text_special_unicode", '{"clean": "<|begin_of_text|>What is 17*3? caf\\u00e9", "corrupted": '
                                 '"What is 17*4?", "answer": " 51", "wrong": " 68", '
                                 '"clean_continuation": "<think>", "corrupted_continuation": ""}'),
    ]
    return [(name, line.encode()) for name, line in lines]


def safetensors_file(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)]; laid out as circuitscope's writer does (8-aligned)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset, blobs = 0, []
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    hs = json.dumps(header, separators=(",", ":")).encode()
    while (8 + len(hs)) % 8:
        hs += b" "
    return struct.pack("<Q", len(hs)) + hs + b"".join(blobs)


def safetensors_seeds():
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    mixed = safetensors_file([
        ("f64", "F64", [2], struct.pack("<2d", 1.5, -2.25)),
        ("f32", "F32", [2, 3], f32(0, 1, -1, 3.5, 1e-8, 65504)),
        ("f16", "F16", [4], struct.pack("<4e", 1.0, -0.5, 65504.0, 6e-5)),
        ("bf16", "BF16", [2, 2], bytes.fromhex("803f00c0807f0000")),
        ("i64", "I64", [3], struct.pack("<3q", -1, 0, 2**62)),
        ("i32", "I32", [1, 2], struct.pack("<2i", 7, -7)),
        ("i16", "I16", [2], struct.pack("<2h", 300, -300)),
        ("i8", "I8", [3], struct.pack("<3b", -128, 0, 127)),
        ("u8", "U8", [4], bytes([0, 1, 128, 255])),
        ("bool", "BOOL", [5], bytes([0, 1, 1, 0, 1])),
    ], metadata={"format": "pt"})
    edge = safetensors_file([
        ("empty", "F32", [0, 4], b""),
        ("scalar", "F32", [], f32(42.0)),
        ("zero_dims", "BF16", [3, 0, 2], b""),
    ])
    # Real tensors: the smallest ones of the hf-tiny Qwen2 checkpoint, with their bytes.
    model = read("tests", "data", "hf-tiny", "qwen2-tiny", "model.safetensors")
    n = struct.unpack("<Q", model[:8])[0]
    h = json.loads(model[8:8 + n])
    data = model[8 + n:]
    real = []
    for name in ("model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.k_proj.bias"):
        b, e = h[name]["data_offsets"]
        real.append((name, h[name]["dtype"], h[name]["shape"], data[b:e]))
    qwen = safetensors_file(real, metadata={"format": "pt"})
    # The same, unpadded header and tensors out of order (valid: offsets need not follow the header).
    hs = json.dumps({"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                     "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    unordered = struct.pack("<Q", len(hs)) + hs + f32(1, 2, 3, 4)
    return [("mixed_dtypes.safetensors", mixed), ("empty_and_scalar.safetensors", edge),
            ("qwen2_tiny_norms.safetensors", qwen), ("unordered.safetensors", unordered)]


def sweep_spec_seeds():
    # Paths are those of the fixture folder fuzz/targets.cpp builds (SweepFixture).
    docs_example = """// The Thinking Sparks construction on an SFT run (docs/sweeps.md, paths of the fuzz fixture).
{
  "base": "base",                                      // or {"path": ..., "name": ...}; name defaults to "base"
  "checkpoints": "run/checkpoint-*",                   // or a list of folders, globs and {"path", "step", "name"}
  "data": {
    "prompts": "prompts.jsonl",                        // pairs built per checkpoint, inside its units
    "generation": {"think": "on", "max_new_tokens": 64, "batch_size": 16}
  },
  "chunk_size": 64,                                    // pairs (with "prompts": prompts) per unit
  "attribute": {"config": "configs/thinking-sparks.json", "chat": true, "think": "on",
                "metric": "seq-logprob", "dtype": "bf16", "device": "cuda", "batch_size": 8},
  "log": "log.jsonl"                                   // optional: the reward overlay ({"path", "key"})
}
"""
    test_sweep_sh = """// The Thinking Sparks construction on the toy lab: each checkpoint's opening against the base's.
{
  "base": "toy/base/final",
  "checkpoints": "toy/sft/checkpoint-*",
  "data": {"prompts": "problems.jsonl", "generation": {"think": "on", "max_new_tokens": 24}},
  "chunk_size": 8,
  "attribute": {"config": "configs/thinking-sparks.json", "chat": true, "think": "on",
                "metric": "seq-logprob", "simplify": 0.02, "batch_size": 4},
  "log": "toy/sft/train_log.jsonl"
}
"""
    study_toy_sh = """// Study sweep: the grpo checkpoints of seed 1 against its base (written by scripts/study_toy.sh).
{
  "base": "toy/base/final",
  "checkpoints": "toy/grpo/checkpoint-*",
  "data": {"prompts": "problems.jsonl", "generation": {"think": "on"}},
  "chunk_size": 24,
  "attribute": {"chat": true, "think": "on", "metric": "seq-logprob", "method": "eap-ig-inputs", "ig_steps": 5,
                "top_n": 5000, "simplify": 0.02},
  "log": "toy/grpo/rewards.jsonl"
}
"""
    # tests/test_sweep.cpp: SweepFixture::spec_json, and variants its tests use.
    test_sweep_cpp = json.dumps({"base": "base", "checkpoints": "run/checkpoint-*", "data": {"pairs": "pairs.jsonl"},
                                 "chunk_size": 3, "attribute": {"top_n": 12, "ig_steps": 3}})
    listed = json.dumps({
        "schema_version": 1,
        "base": {"path": "base", "name": "base"},
        "checkpoints": ["run/checkpoint-10", {"path": "other/checkpoint-7", "name": "other", "step": 7},
                        {"path": "run/checkpoint-5-tmp", "step": 5}],
        "data": {"pairs": "pairs.jsonl"},
        "chunk_size": 2,
        "attribute": {"top-n": 40, "threshold": 0.5, "method": "eap", "kv-edges": "per-kv-head", "level": "node"},
        "log": {"path": "log.jsonl", "key": "reward"}}, indent=1)
    config_file = json.dumps({"base": "base", "checkpoints": ["run/checkpoint-*"],
                              "data": {"prompts": "prompts.jsonl",
                                       "generation": {"greedy": False, "temperature": 0.6, "top_p": 0.95, "top_k": 20,
                                                      "seed": 7, "keep_identical": True, "system": "Be brief."}},
                              "attribute": "attribute.json"})
    resolved = json.dumps({  # the form `sweep plan` writes as DIR/sweep.json (explicit everything)
        "schema_version": 1, "base": {"path": "base", "name": "base"},
        "checkpoints": [{"path": "run/checkpoint-10", "name": "checkpoint-10", "step": 10},
                        {"path": "run/checkpoint-20", "name": "checkpoint-20", "step": 20}],
        "data": {"pairs": "pairs.jsonl"}, "chunk_size": 64,
        "attribute": {"method": "eap-ig-inputs", "ig_steps": 5, "top_n": 5000, "simplify": 0.1, "sizes": [10, 100],
                      "intervention": "mean", "mean_source": "corrupted", "signed": True, "skip_bad": True}})
    return [("docs_sweeps_md.jsonc", docs_example.encode()), ("test_sweep_sh.jsonc", test_sweep_sh.encode()),
            ("study_toy_sh.jsonc", study_toy_sh.encode()), ("test_sweep_cpp.json", test_sweep_cpp.encode()),
            ("listed_checkpoints.json", listed.encode()), ("attribute_config_file.json", config_file.encode()),
            ("resolved.json", resolved.encode())]


def main():
    write_seeds("config", config_seeds())
    write_seeds("tokenizer", tokenizer_seeds())
    write_seeds("chat_template", chat_template_seeds())
    write_seeds("dataset_line", dataset_line_seeds())
    write_seeds("safetensors", safetensors_seeds())
    write_seeds("sweep_spec", sweep_spec_seeds())
    for target in ("config", "tokenizer", "chat_template", "dataset_line", "safetensors", "sweep_spec", "report"):
        reg = os.path.join(FUZZ, target, "regressions")
        os.makedirs(reg, exist_ok=True)
        keep = os.path.join(reg, ".gitkeep")
        if not os.path.exists(keep):
            open(keep, "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
