"""Per-rank memory of parameters, gradients and AdamW state under FSDP2 full sharding, estimated on the meta device.

No weight is allocated: `build_model(name, device="meta")` gives shapes only. The layout is the one
`mammoth_min.train.apply_fsdp` sets up on a GPU (`MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`):
each rank keeps a 1/N shard of the fp32 parameters (the master copy the optimizer updates), a 1/N shard of fp32
gradients and AdamW's two fp32 moments: 16 bytes per parameter / N. During forward and backward a unit's parameters
are all-gathered in bf16 (2 bytes per parameter): the root (embeddings, lm_head, projector), the vision encoder
(kept whole from forward to backward) and about two decoder blocks at once (the current one and the prefetched one).
Activations are left out (they depend on sequence length, micro batch and activation checkpointing).
Stage 2 trains every module, so every parameter has gradients and optimizer state.

Usage: python bench/bench_memory.py [--configs mammoth-8b small] [--gpus 8 64]
"""
import argparse, os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from _common import append_section, print_table
from mammoth_min.model import build_model, parameter_counts
from mammoth_min.train import decoder_blocks

GIB = 2**30


def units(name: str) -> dict[str, int]:
    "Parameter counts: total, one decoder block, the vision encoder, and the FSDP root (everything else)."
    model = build_model(name, device="meta")
    total = parameter_counts(model)["total"]
    block = sum(p.numel() for p in decoder_blocks(model)[0].parameters())
    n_blocks = len(decoder_blocks(model))
    vision = sum(p.numel() for p in model.vision_tower.encoder.parameters())
    return {"total": total, "block": block, "n_blocks": n_blocks, "vision": vision, "root": total - n_blocks * block - vision}


def per_rank(u: dict, n_gpus: int) -> dict[str, float]:
    "GiB per rank: fp32 param shard, fp32 grad shard, AdamW m+v shard, and the bf16 all-gather peak."
    shard = u["total"] / n_gpus
    gathered = 2 * (u["root"] + u["vision"] + 2 * u["block"]) if n_gpus > 1 else 0  # unsharded bf16 copies
    out = {"params fp32 (master)": 4 * shard / GIB, "grads fp32": 4 * shard / GIB, "AdamW m+v fp32": 8 * shard / GIB}
    out["sharded total"] = sum(out.values())
    out["bf16 all-gather peak"] = gathered / GIB
    out["total excl. activations"] = out["sharded total"] + out["bf16 all-gather peak"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["mammoth-8b", "small"])
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    args = ap.parse_args()
    keys = ["params fp32 (master)", "grads fp32", "AdamW m+v fp32", "sharded total", "bf16 all-gather peak",
            "total excl. activations"]
    rows = []
    for name in args.configs:
        u = units(name)
        print(f"{name}: {u['total'] / 1e9:.3f} B parameters; root {u['root'] / 1e6:.0f} M, vision encoder "
              f"{u['vision'] / 1e6:.0f} M, {u['n_blocks']} decoder blocks of {u['block'] / 1e6:.1f} M")
        for n in args.gpus:
            m = per_rank(u, n)
            rows.append([name, f"{u['total'] / 1e9:.3f} B", n, *(f"{m[k]:.2f}" for k in keys)])
    columns = ["config", "parameters", "GPUs", *(f"{k} GiB/rank" for k in keys)]
    print_table(columns, rows)
    append_section(
        "bench_memory: parameters + gradients + AdamW per rank, FSDP2 full sharding (meta-device estimate)", columns, rows,
        "Estimated from shapes on the meta device (no weights allocated), not measured on a GPU. Assumption: FSDP2 "
        "with bf16 compute params and fp32 reduction, as `apply_fsdp` sets up on CUDA: each rank holds 1/N of the fp32 "
        "master parameters, fp32 gradients and AdamW's two fp32 moments (16 B/parameter/N); the bf16 all-gather peak "
        "is the root unit (embeddings + lm_head + projector), the vision encoder (kept unsharded from forward to "
        "backward) and two decoder blocks (current + prefetched). Activations are not included. With 1 GPU there is no "
        "sharding and no gather buffer (compute would cast from the fp32 weights).")


if __name__ == "__main__":
    main()
