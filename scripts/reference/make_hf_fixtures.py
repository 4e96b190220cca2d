#!/usr/bin/env python3
"""Makes tiny random checkpoints for the architecture paths the shared fixtures do not cover
(Qwen3, Llama-3 rope scaling, linear rope scaling, Mistral sliding window, Qwen2 sliding window,
sharded files, BF16 and F16 storage) and records what the real Hugging Face `transformers`
implementation outputs for them.

Run on a machine with torch + transformers (not needed by the build or the tests):
    python3 make_hf_fixtures.py OUT_DIR
Each model folder gets config.json, generation_config.json, safetensors weights and
reference.safetensors (float32 outputs, int64 ids), plus PROVENANCE.json with the versions used.
"""
import copy, json, os, sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM
from safetensors.torch import save_file

OUT = sys.argv[1]
COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=128, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6, initializer_range=0.2)

MODELS = {
    # name: (model_type, extra config, stored dtype, max_shard_size or None)
    "qwen3-tiny": ("qwen3", dict(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                  rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False), torch.float32, None),
    "llama3-rope-tiny": ("llama", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rope_theta=500000.0,
                                        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                          high_freq_factor=4.0, original_max_position_embeddings=32),
                                        tie_word_embeddings=False), torch.bfloat16, None),
    "llama-linear-tiny": ("llama", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                         rope_scaling=dict(rope_type="linear", factor=4.0), tie_word_embeddings=False),
                          torch.float32, None),
    "mistral-tiny": ("mistral", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                      sliding_window=8, tie_word_embeddings=False), torch.float16, None),
    "qwen2-window-sharded": ("qwen2", dict(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                            use_sliding_window=True, sliding_window=8, max_window_layers=1,
                                            tie_word_embeddings=False), torch.float32, "150KB"),
}


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, (mtype, extra, stored, shard)) in enumerate(MODELS.items()):
        cfg = AutoConfig.for_model(mtype, **COMMON, **extra)
        cfg._attn_implementation = "eager"
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
        randomize(model, 100 + i)
        # Round to the stored dtype so the float32 reference sees exactly the stored weights.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(stored).to(torch.float32))
        model.eval()
        d = os.path.join(OUT, name)
        save_kwargs = dict(safe_serialization=True)
        if shard:
            save_kwargs["max_shard_size"] = shard
        # Save a converted copy: casting the live model would also round its float32 RoPE buffers.
        copy.deepcopy(model).to(stored).save_pretrained(d, **save_kwargs)

        g = torch.Generator().manual_seed(7 + i)
        ref = {}
        samples = {"seq": torch.randint(3, 512, (1, 40), generator=g), "batch": torch.randint(3, 512, (2, 12), generator=g)}
        with torch.no_grad():
            for s, ids in samples.items():
                out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
                ref[f"{s}.input_ids"] = ids
                ref[f"{s}.logits"] = out.logits.float()
                for l, a in enumerate(out.attentions):
                    ref[f"{s}.attn.{l}"] = a.float()
                ref[f"{s}.hidden.0"] = out.hidden_states[0].float()
            prompt = samples["seq"][:, :7]
            gen = model.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0)
            ref["greedy.prompt"] = prompt
            ref["greedy.ids"] = gen
            # Left-padded batch of two prompts of different lengths.
            p1, p2 = samples["batch"][0, :9], samples["batch"][1, :5]
            ids = torch.zeros((2, 9), dtype=torch.long)
            mask = torch.zeros((2, 9), dtype=torch.long)
            ids[0] = p1
            mask[0] = 1
            ids[1, 4:] = p2
            mask[1, 4:] = 1
            gen2 = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
            ref["padded.input_ids"] = ids
            ref["padded.attention_mask"] = mask
            ref["padded.output_ids"] = gen2
        save_file({k: v.contiguous().clone() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))
        prov = {
            "made_by": "scripts/reference/make_hf_fixtures.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "attn_implementation": "eager",
            "reference_dtype": "float32 on CPU, weights rounded to the stored dtype first",
            "stored_dtype": str(stored),
            "seed": 100 + i,
        }
        with open(os.path.join(d, "PROVENANCE.json"), "w") as f:
            json.dump(prov, f, indent=2)
        print(name, "->", sorted(os.listdir(d)))


if __name__ == "__main__":
    main()
