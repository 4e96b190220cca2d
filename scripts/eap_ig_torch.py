#!/usr/bin/env python3
"""Plain PyTorch EAP / EAP-IG baseline for circuitscope (issue #21: speed comparison on one GPU).

What it is: a small, unoptimised but reasonable re-implementation of edge attribution patching with
integrated gradients over the inputs (Hanna et al. 2024, as the public EAP-IG code runs it), torch
only (no transformers, no safetensors package, no numpy). It exists so that `circuitscope attribute`
can be timed side by side against a straightforward Python implementation, and so that its scores
can be checked against an independent one (Pearson r over all edges).

Algorithm (per batch of B pairs, right-padded as circuitscope pads them, pad id 0):
  1. no-grad forward of the clean and of the corrupted tokens (each under its own mask), keeping
     every upstream node's output: the token embeddings (`input`), each attention head's own write
     into the residual stream (z_h @ W_O[:, h], `a{l}.h{h}`), each MLP's output (`m{l}`);
     delta = z(clean) - z(corrupted), [B,T,U,D].
  2. m gradient runs (EAP-IG-inputs) on the embeddings e_k = e_corr + (k/m)(e_clean - e_corr),
     k = 0..m-1, under the clean mask (m = 0: plain EAP, one gradient run on the clean input).
     Weights are plain tensors that never require grad; only the embeddings do. Every head reads
     its own copy of the residual for its q, k and v (per-head residual copies, normalised and
     projected head by head; per query head, k/v copies are projected with their kv head's weights,
     i.e. the "ungrouped" model), each MLP and the final residual read their own alias, so each
     downstream input has its own gradient. The residual value at a downstream node is the sum of
     the outputs of the upstream nodes before it, so the gradient at that input is each incoming
     edge's gradient. Backward hooks on those inputs add
        score[u, v] += (1/m) * sum_{b,t,d} delta[b,t,u,d] * dM/dx_v[b,t,d]   for u visible to v.
  3. scores are divided by the number of pairs (metric summed over the batch = mean over pairs).
  Metric: circuitscope's default, logit-diff = logit(answer) - logit(wrong) at the last clean token
  (prob-diff also available). Sign as circuitscope (= Hanna et al.'s loss=True): positive = supports
  the metric. Graph and edge names as circuitscope's (README "Graph"): upstream input, a{l}.h{h},
  m{l}; downstream a{l}.h{h}<q|k|v> (or a{l}.kv{g}<k|v> with --kv-edges per-kv-head), m{l}, logits
  (last residual, before the final norm).

Run (the pairs file is circuitscope's token-form JSONL: clean_ids, corrupted_ids, answer_id, wrong_id):
  python3 scripts/eap_ig_torch.py --model DIR --pairs pairs.jsonl [--ig-steps 5] [--batch-size 8] \
      [--device cuda] [--dtype bfloat16] [--limit N] [--repeat 3] --out scores.json [--compare report.json]
Timing goes to stderr; a one-line JSON summary (seconds, s/example, warm-up batch, CUDA peak memory)
to stdout. Compare with circuitscope (same pairs, same method, --dtype f32):
  circuitscope attribute DIR --data pairs.jsonl --dtype f32 --out report.json
  python3 scripts/eap_ig_torch.py --model DIR --pairs pairs.jsonl --out s.json --compare report.json
  python3 scripts/eap_ig_torch.py --scores s.json --compare report.json      # compare files only
"""
import argparse
import glob
import json
import math
import mmap
import os
import statistics
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy is fine here
import torch  # noqa: E402

ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}


def read_safetensors(path, dtype, device):
    """{name: tensor} from one .safetensors file: u64 LE header length, JSON header, raw data."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private, writable: frombuffer is happy
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = ST_DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        count = (b - a) // dt.itemsize
        t = torch.frombuffer(mm, dtype=dt, count=count, offset=8 + n + a) if count else torch.empty(0, dtype=dt)
        t = t.reshape(info["shape"])
        out[name] = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype, copy=True)
    del mm
    return out


class Model:
    """Llama / Qwen2 / Qwen3 / Mistral decoder: RMSNorm, RoPE, GQA, SwiGLU. Frozen plain tensors."""

    def __init__(self, folder, dtype, device):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        arch = (cfg.get("architectures") or ["?"])[0]
        if arch not in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"):
            raise SystemExit(f"unsupported architecture {arch}")
        index = os.path.join(folder, "model.safetensors.index.json")
        if os.path.exists(index):
            files = sorted(set(json.load(open(index))["weight_map"].values()))
        elif os.path.exists(os.path.join(folder, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.safetensors")))
        w = {}
        for f in files:
            w.update(read_safetensors(os.path.join(folder, f), dtype, device))
        self.dtype, self.device = dtype, device
        self.D = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.K = cfg.get("num_key_value_heads") or self.H
        self.Dh = cfg.get("head_dim") or self.D // self.H
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.embed = w["model.embed_tokens.weight"]
        self.norm = w["model.norm.weight"]
        self.lm_head = w.get("lm_head.weight", self.embed)  # tied when absent
        if cfg.get("tie_word_embeddings", False):
            self.lm_head = self.embed
        self.layers = []
        for l in range(self.L):
            p = f"model.layers.{l}."
            g = lambda k: w.get(p + k)  # noqa: E731
            self.layers.append({k: g(n) for k, n in [
                ("ln1", "input_layernorm.weight"), ("ln2", "post_attention_layernorm.weight"),
                ("wq", "self_attn.q_proj.weight"), ("wk", "self_attn.k_proj.weight"), ("wv", "self_attn.v_proj.weight"),
                ("wo", "self_attn.o_proj.weight"), ("bq", "self_attn.q_proj.bias"), ("bk", "self_attn.k_proj.bias"),
                ("bv", "self_attn.v_proj.bias"), ("bo", "self_attn.o_proj.bias"), ("qn", "self_attn.q_norm.weight"),
                ("kn", "self_attn.k_norm.weight"), ("gate", "mlp.gate_proj.weight"), ("up", "mlp.up_proj.weight"),
                ("down", "mlp.down_proj.weight")]})
        # Sliding window per layer (transformers-5 layer_types win; else Qwen2's / Mistral's rule).
        sw = cfg.get("sliding_window") or 0
        types = cfg.get("layer_types")
        if types:
            self.window = [sw if t == "sliding_attention" else 0 for t in types]
        elif arch == "MistralForCausalLM":
            self.window = [sw] * self.L
        elif cfg.get("use_sliding_window", False):
            self.window = [sw if l >= cfg.get("max_window_layers", self.L) else 0 for l in range(self.L)]
        else:
            self.window = [0] * self.L
        rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        theta = cfg.get("rope_theta", rp.get("rope_theta", 10000.0))
        inv = 1.0 / theta ** (torch.arange(0, self.Dh, 2, dtype=torch.int64).float() / self.Dh)
        kind = rp.get("rope_type", rp.get("type", "default"))
        if kind == "linear":
            inv = inv / rp["factor"]
        elif kind == "llama3":
            f, lo, hi, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
            wl = 2 * math.pi / inv
            scaled = torch.where(wl > old / lo, inv / f, inv)
            s = (old / wl - lo) / (hi - lo)
            smooth = (1 - s) * scaled / f + s * scaled
            inv = torch.where((wl >= old / hi) & (wl <= old / lo), smooth, scaled)
        elif kind != "default":
            raise SystemExit(f"unsupported rope type {kind}")
        self.inv_freq = inv.to(device)

    def rms(self, x, w):
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def forward(self, emb, mask, logit_pos, acts=None, hooks=None, kv_per_q=True):
        """emb [B,T,D]; mask [B,T]; logit_pos [B]. Returns logits [B,V] (float32) at logit_pos.
        acts: a [B,T,U,D] buffer for the upstream outputs; hooks(tensor, layer, kind) registers
        gradient hooks on the downstream inputs (kind q/k/v/mlp/logits)."""
        B, T, D = emb.shape
        H, K, Dh, G = self.H, self.K, self.Dh, self.H // self.K
        N = H if kv_per_q else K  # k/v copies per layer
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        fr = pos.float().unsqueeze(-1) * self.inv_freq
        fr = torch.cat([fr, fr], -1)
        cos, sin = fr.cos().to(self.dtype).unsqueeze(2), fr.sin().to(self.dtype).unsqueeze(2)

        def rope(x):
            h = x.shape[-1] // 2
            return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

        qi = torch.arange(T, device=emb.device).view(T, 1)
        kj = torch.arange(T, device=emb.device).view(1, T)
        masks = {}
        for win in set(self.window):
            ok = (kj <= qi) & ((qi - kj) < win if win else True)
            ok = ok.view(1, 1, T, T) & mask.bool().view(B, 1, 1, T)
            masks[win] = torch.zeros(ok.shape, dtype=self.dtype, device=emb.device).masked_fill(
                ~ok, torch.finfo(self.dtype).min)
        x = emb
        if acts is not None:
            acts[:, :, 0] = emb
        for l, w in enumerate(self.layers):
            def proj(name, n, weight, bias, heads):
                xs = x.unsqueeze(2).expand(B, T, n, D)  # this layer's per-head copies of the residual
                if hooks:
                    hooks(xs, l, name)
                wt = weight.view(-1, Dh, D)
                if heads != wt.shape[0]:  # k/v per query head: each query head uses its kv head's weights
                    wt = wt.repeat_interleave(G, 0)
                y = torch.einsum("btnd,ned->btne", self.rms(xs, w["ln1"]), wt)
                if bias is not None:
                    b = bias.view(-1, Dh)
                    y = y + (b.repeat_interleave(G, 0) if heads != b.shape[0] else b)
                return y
            q = proj("q", H, w["wq"], w["bq"], H)
            k = proj("k", N, w["wk"], w["bk"], N)
            v = proj("v", N, w["wv"], w["bv"], N)
            if w["qn"] is not None:
                q, k = self.rms(q, w["qn"]), self.rms(k, w["kn"])
            q, k = rope(q), rope(k)
            if N != H:
                k, v = k.repeat_interleave(G, 2), v.repeat_interleave(G, 2)
            sc = torch.einsum("bthe,bshe->bhts", q, k) * (1.0 / math.sqrt(Dh)) + masks[self.window[l]]
            pat = torch.softmax(sc.float(), -1).to(self.dtype)
            z = torch.einsum("bhts,bshe->bthe", pat, v)
            if acts is not None:  # each head's own output: z_h @ W_O[:, h]
                res = torch.einsum("bthe,hed->bthd", z, w["wo"].view(D, H, Dh).permute(1, 2, 0))
                acts[:, :, 1 + l * (H + 1):1 + l * (H + 1) + H] = res
                attn = res.sum(2)
            else:
                attn = z.reshape(B, T, H * Dh) @ w["wo"].t()
            if w["bo"] is not None:
                attn = attn + w["bo"]
            x = x + attn
            xm = x.view_as(x)  # the MLP's own alias: its gradient is the MLP's share only
            if hooks:
                hooks(xm, l, "mlp")
            h = self.rms(xm, w["ln2"])
            out = (torch.nn.functional.silu(h @ w["gate"].t()) * (h @ w["up"].t())) @ w["down"].t()
            if acts is not None:
                acts[:, :, 1 + l * (H + 1) + H] = out
            x = x + out
        xr = x.view_as(x)
        if hooks:
            hooks(xr, self.L, "logits")
        last = xr[torch.arange(B, device=x.device), logit_pos]  # [B,D]
        return (self.rms(last, self.norm) @ self.lm_head.t()).float()


def graph_names(L, H, K, kv_per_q):
    """circuitscope's node order: upstream names; downstream (name, n_visible) per layer q, k, v, mlp; logits."""
    up = ["input"]
    for l in range(L):
        up += [f"a{l}.h{h}" for h in range(H)] + [f"m{l}"]
    down = []
    for l in range(L):
        vis = 1 + l * (H + 1)
        down += [(f"a{l}.h{h}<q>", vis) for h in range(H)]
        for s in "kv":
            down += [((f"a{l}.h{n}" if kv_per_q else f"a{l}.kv{n}") + f"<{s}>", vis) for n in range(H if kv_per_q else K)]
        down.append((f"m{l}", vis + H))
    down.append(("logits", len(up)))
    return up, down


def read_pairs(path, limit):
    ex = []
    for line in open(path):
        if line.strip():
            j = json.loads(line)
            if "clean_ids" not in j:
                raise SystemExit(f"{path}: only the token form (clean_ids, corrupted_ids, answer_id, wrong_id) is supported")
            ex.append(j)
            if limit and len(ex) >= limit:
                break
    return ex


def make_batch(ex, device):
    """Right-padded, pad id 0, one mask per side (as circuitscope's make_attribution_batch)."""
    B, T = len(ex), max(max(len(e["clean_ids"]), len(e["corrupted_ids"])) for e in ex)
    ids = torch.zeros(2, B, T, dtype=torch.long)
    mask = torch.zeros(2, B, T, dtype=torch.long)
    for i, e in enumerate(ex):
        for s, key in enumerate(("clean_ids", "corrupted_ids")):
            ids[s, i, :len(e[key])] = torch.tensor(e[key])
            mask[s, i, :len(e[key])] = 1
    pos = torch.tensor([len(e["clean_ids"]) - 1 for e in ex])
    ans = torch.tensor([e["answer_id"] for e in ex])
    wrong = torch.tensor([e["wrong_id"] for e in ex])
    return [t.to(device) for t in (ids[0], ids[1], mask[0], mask[1], pos, ans, wrong)]


def metric_sum(logits, ans, wrong, kind):
    v = torch.softmax(logits, -1) if kind == "prob-diff" else logits
    r = torch.arange(len(ans), device=logits.device)
    return (v[r, ans] - v[r, wrong]).sum()


def attribute_batch(M, batch, scores, down_cols, steps, metric, kv_per_q):
    """Adds this batch's summed (not yet averaged) edge scores into scores [U, n_down]; returns the
    summed clean and corrupted metric."""
    cid, xid, cmask, xmask, pos, ans, wrong = batch
    B, T = cid.shape
    U = scores.shape[0]
    with torch.no_grad():
        acts_c = torch.empty(B, T, U, M.D, dtype=M.dtype, device=M.device)
        acts_x = torch.empty_like(acts_c)
        mc = metric_sum(M.forward(M.embed[cid], cmask, pos, acts=acts_c, kv_per_q=kv_per_q), ans, wrong, metric)
        mx = metric_sum(M.forward(M.embed[xid], xmask, pos, acts=acts_x, kv_per_q=kv_per_q), ans, wrong, metric)
        delta = acts_c - acts_x  # [B,T,U,D], clean - corrupted
        e_clean, e_corr = acts_c[:, :, 0].clone(), acts_x[:, :, 0].clone()
        del acts_c, acts_x
    scale = 1.0 / max(steps, 1)

    def hooks(t, layer, kind):
        col, n, vis = down_cols[(layer, kind)]

        def fn(g):
            with torch.no_grad():
                d = delta[:, :, :vis]
                s = torch.einsum("btud,btnd->un", d, g) if g.dim() == 4 else torch.einsum("btud,btd->u", d, g)[:, None]
                scores[:vis, col:col + n] += scale * s.float()
        t.register_hook(fn)

    for k in range(steps) if steps > 0 else [None]:
        with torch.no_grad():
            e = e_clean if k is None else e_corr + (k / steps) * (e_clean - e_corr)
        e = e.detach().requires_grad_(True)
        logits = M.forward(e, cmask, pos, hooks=hooks, kv_per_q=kv_per_q)
        metric_sum(logits, ans, wrong, metric).backward()
    return mc.item(), mx.item()


def pearson(a, b):
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def compare(ours, report_path):
    rep = json.load(open(report_path))
    theirs = {k: (v["score"] if isinstance(v, dict) else v) for k, v in rep["edges"].items()}
    common = sorted(set(ours) & set(theirs))
    only = len(set(ours) ^ set(theirs))
    a, b = [ours[k] for k in common], [theirs[k] for k in common]
    diffs = [abs(x - y) for x, y in zip(a, b)]
    worst = max(range(len(diffs)), key=diffs.__getitem__)
    res = {"edges": len(common), "edges_in_one_only": only, "pearson": pearson(a, b), "max_abs_diff": diffs[worst],
           "worst_edge": common[worst], "max_abs_score": max(abs(y) for y in b),
           "report_method": rep.get("method"), "report_baselines": rep.get("baselines")}
    print("compare: " + json.dumps(res), file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--pairs")
    ap.add_argument("--ig-steps", type=int, default=5, help="m; 0 = plain EAP (clean gradient)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "f32", "bf16"])
    ap.add_argument("--metric", default="logit-diff", choices=["logit-diff", "prob-diff"])
    ap.add_argument("--kv-edges", default="per-query-head", choices=["per-query-head", "per-kv-head"])
    ap.add_argument("--limit", type=int, default=0, help="first N pairs only")
    ap.add_argument("--repeat", type=int, default=1, help="timing repeats of the whole run")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", help="scores JSON: {method, baselines, edges: {name: score}}")
    ap.add_argument("--compare", help="a circuitscope attribute report to compare the scores with")
    ap.add_argument("--scores", help="with --compare and no --model: compare this scores file")
    args = ap.parse_args()
    if args.scores and not args.model:
        if not args.compare:
            ap.error("--scores needs --compare")
        print(json.dumps(compare(json.load(open(args.scores))["edges"], args.compare)))
        return
    if not args.model or not args.pairs:
        ap.error("--model and --pairs are required")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype in ("bfloat16", "bf16") else torch.float32
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    t0 = time.perf_counter()
    M = Model(args.model, dtype, dev)
    sync()
    load_s = time.perf_counter() - t0
    kv_per_q = args.kv_edges == "per-query-head"
    up, down = graph_names(M.L, M.H, M.K, kv_per_q)
    nkv = M.H if kv_per_q else M.K
    cols = {}
    for l in range(M.L):
        base, vis = l * (M.H + 2 * nkv + 1), 1 + l * (M.H + 1)
        cols[(l, "q")] = (base, M.H, vis)
        cols[(l, "k")] = (base + M.H, nkv, vis)
        cols[(l, "v")] = (base + M.H + nkv, nkv, vis)
        cols[(l, "mlp")] = (base + M.H + 2 * nkv, 1, vis + M.H)
    cols[(M.L, "logits")] = (len(down) - 1, 1, len(up))
    ex = read_pairs(args.pairs, args.limit)
    V = M.embed.shape[0]
    for i, e in enumerate(ex):
        ids = e["clean_ids"] + e["corrupted_ids"] + [e["answer_id"], e["wrong_id"]]
        if not e["clean_ids"] or not e["corrupted_ids"] or min(ids) < 0 or max(ids) >= V:
            raise SystemExit(f"{args.pairs}: pair {i + 1} is empty or has an id outside [0,{V})")
    N = len(ex)
    batches = [make_batch(ex[i:i + args.batch_size], dev) for i in range(0, N, args.batch_size)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    runs, warm = [], None
    for r in range(max(args.repeat, 1)):
        scores = torch.zeros(len(up), len(down), dtype=torch.float32, device=dev)
        mc = mx = 0.0
        sync()
        t_run = time.perf_counter()
        for b in batches:
            tb = time.perf_counter()
            c, x = attribute_batch(M, b, scores, cols, args.ig_steps, args.metric, kv_per_q)
            mc, mx = mc + c, mx + x
            sync()
            if warm is None:
                warm = time.perf_counter() - tb
        scores /= N
        sync()
        runs.append(time.perf_counter() - t_run)
        print(f"repeat {r + 1}: {runs[-1]:.4f} s, {runs[-1] / N:.5f} s/example", file=sys.stderr)

    # Without the warm-up: the best later repeat, else the first repeat's later batches.
    if len(runs) > 1:
        steady = min(runs[1:]) / N
    elif len(batches) > 1:
        steady = (runs[0] - warm) / (N - len(batches[0][0]))
    else:
        steady = runs[0] / N
    S = scores.cpu()
    edges = {}
    for v, (name, vis) in enumerate(down):
        for u in range(vis):
            edges[f"{up[u]}->{name}"] = float(S[u, v])
    method = "eap" if args.ig_steps == 0 else "eap-ig-inputs"
    summary = {"model": args.model, "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if cuda else None,
               "dtype": str(dtype).replace("torch.", ""), "method": method, "ig_steps": args.ig_steps,
               "metric": args.metric, "kv_edges": args.kv_edges, "examples": N, "batch_size": args.batch_size,
               "edges": len(edges), "load_s": round(load_s, 4), "warmup_batch_s": round(warm, 4),
               "total_s": [round(t, 4) for t in runs], "s_per_example": [round(t / N, 6) for t in runs],
               "median_s_per_example": round(statistics.median(runs) / N, 6),
               "steady_s_per_example": round(steady, 6),
               "peak_mem_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None,  # weights included
               "torch": torch.__version__, "metric_clean": mc / N, "metric_corrupted": mx / N}
    print(f"metric {args.metric}: clean {mc / N:.6g}, corrupted {mx / N:.6g}; {len(edges)} edges; load {load_s:.3f} s; "
          f"warm-up batch {warm:.4f} s" + (f"; peak CUDA memory {summary['peak_mem_bytes'] / 2**20:.1f} MiB" if cuda else ""),
          file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"method": {k: summary[k] for k in ("method", "ig_steps", "metric", "kv_edges", "dtype", "device")},
                       "baselines": {"clean": mc / N, "corrupted": mx / N}, "edges": edges}, f, indent=1, sort_keys=True)
    if args.compare:
        summary["compare"] = compare(edges, args.compare)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
