#!/usr/bin/env python3
"""Writes the small hand-made tokenizer.json files used by tests/test_tokenizer_components.cpp.

Only the inputs are generated here (vocabularies spelled out from the format's rules, merges, component
settings); every expected id and string lives in the test, worked out by hand from the Hugging Face
tokenizers documentation. Run from this folder: python3 make_tiny.py
"""
import json
import os


def gpt2_byte_chars():
    """GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the other bytes
    take the code points from U+0100 upwards in byte order."""
    direct = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in direct:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def write(name, obj):
    os.makedirs(name, exist_ok=True)
    with open(os.path.join(name, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def added(id_, content, special=True, normalized=None, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


BL = gpt2_byte_chars()
# Byte-level vocabulary: the byte value is the id; merged tokens follow from 256 in merge order.
byte_vocab = {BL[b]: b for b in range(256)}
byte_merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("e", "ll"), ("h", "ell"), ("hell", "o"),
               ("Ġ", "hello")]
for i, (a, b) in enumerate(byte_merges):
    byte_vocab[a + b] = 256 + i

# GPT-2 style: ByteLevel pre-tokenizer with prefix space and regex, ByteLevel post-processor trimming
# offsets, ByteLevel decoder; merges in the "a b" string form.
write("bytelevel_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(300, "<|endoftext|>")],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": byte_vocab, "merges": [a + " " + b for a, b in byte_merges]},
})

# Llama-3 style: Split with the Llama-3 regex, ByteLevel without regex, ignore_merges, BOS through
# TemplateProcessing inside a post-processor Sequence.
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
write("llama3_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(300, "<|begin_of_text|>"), added(301, "<|end_of_text|>")],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [300],
                                                  "tokens": ["<|begin_of_text|>"]}}}]},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
              "vocab": byte_vocab, "merges": [[a, b] for a, b in byte_merges]},
})

# SentencePiece-converted BPE (Llama-2 / Mistral): <unk> <s> </s>, the 256 byte tokens, then pieces.
spm_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    spm_vocab["<0x%02X>" % b] = 3 + b
for piece in ["▁", "a", "b", "c", "▁a", "bc", "▁abc"]:
    spm_vocab[piece] = len(spm_vocab)
spm_merges = [["▁", "a"], ["b", "c"], ["▁a", "bc"]]
spm_added = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
bos_template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
spm_model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
             "vocab": spm_vocab, "merges": spm_merges}

# Llama-2 legacy layout: Prepend + Replace normalizer, no pre-tokenizer, sentencepiece-style decoder.
write("llama_legacy_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": spm_added,
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None,
    "post_processor": bos_template,
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": spm_model,
})

# Newer layout: Metaspace pre-tokenizer (prepend_scheme first, split) and Metaspace decoder.
write("metaspace_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": spm_added,
    "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
    "post_processor": bos_template,
    "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
    "model": spm_model,
})

# NFKC + Lowercase normalizer, Split on spaces (Removed) then Digits, unknown token without fusing,
# no decoder (tokens are joined with spaces).
write("nfkc_digits_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, "[UNK]")],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": False},
        {"type": "Digits", "individual_digits": True}]},
    "post_processor": None,
    "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": {"[UNK]": 0, "a": 1, "b": 2, "c": 3, "1": 4, "2": 5, "3": 6, "fi": 7, "f": 8, "i": 9,
                        "ab": 10, "x": 11},
              "merges": ["a b", "f i"]},
})

# One token per printable ASCII char (id = code - 32), no merges: the ids spell the text, which makes
# added-token, normalizer and decoder behaviour easy to read off. Tests add components to it.
write("chars_tiny", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [],
    "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": {chr(c): c - 32 for c in range(32, 127)}, "merges": []},
})
