"""The real training loop on one GPU: `mammoth_min.train.train` with `fsdp: true` (FSDP2 on a one-rank group, bf16
parameters, fp32 gradient reduction, bf16 autocast), on the tiny world's stage-2 data, for a random-init model of a
named size (default `small`: SigLIP-base/16 + SmolLM2-135M shapes, 222 M parameters).

Unlike `bench_mfu.py --gpu` (a fixed synthetic batch), this runs everything a user's run does: JSONL records, image
loading and preprocessing, tokenization with the template's masks, packing, the sharded bf16 step, the sharded
checkpoint and the consolidated save. It then reloads the saved model and generates on the GPU. Prints and appends
to bench/results.md: tokens/s over steps 3.., s/step, the loss at the first and last step, peak GPU memory, the
attention implementation the model chose (flash_attention_2 needs the optional flash-attn package, else sdpa).

Usage: python bench/bench_gpu_train.py [--config small] [--steps 30] [--micro 16] [--global-batch 64]
"""
import argparse, dataclasses, json, os, statistics, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from _common import append_section, print_table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="small")
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--global-batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    if not torch.cuda.is_available(): raise SystemExit("bench_gpu_train needs a CUDA GPU")

    from mammoth_min.model import MammothForConditionalGeneration, MammothProcessor, generate
    from mammoth_min.train import read_log, train, world_stages
    from mammoth_min.world import build_world
    from mammoth_min.formats import read_records

    tmp = Path(tempfile.mkdtemp())
    build_world(tmp / "world", n_images=args.images, seed=0)
    stage2 = world_stages(tmp / "world", tmp / "runs")[2]
    cfg = dataclasses.replace(stage2, init_from=args.config, out_dir=str(tmp / "runs" / "gpu"), fsdp=True,
                              max_steps=args.steps, micro_batch=args.micro, global_batch=args.global_batch,
                              lr={m: args.lr for m in ("language_model", "multi_modal_projector", "vision_tower")})  # all of the model learns
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(cfg, progress=False)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    run = json.loads((Path(cfg.out_dir) / "run.json").read_text())
    rows = read_log(result["log"])
    timed = rows[2:]  # steps 1-2: CUDA context, kernel selection, allocator warm-up
    tokens_per_s = statistics.mean(r["tokens_per_s"] for r in timed)
    s_per_step = statistics.mean(r["tokens"] / r["tokens_per_s"] for r in timed)

    model = MammothForConditionalGeneration.from_pretrained(result["model_dir"], dtype=torch.bfloat16).cuda()
    processor = MammothProcessor.from_pretrained(result["model_dir"])
    test = [r for r in read_records(tmp / "world" / "test.jsonl") if isinstance(r.get("image"), str)][:8]
    replies = generate(model, processor, test, image_root=tmp / "world", max_new_tokens=16)
    print("replies after", args.steps, "steps:", replies[:3])

    gpu = torch.cuda.get_device_name()
    columns = ["config", "device", "parameters", "path", "attention", "batch (global/micro)", "tokens/s", "s/step",
               "loss step 1 -> last", "peak GPU memory GiB", "wall s (incl. saves)"]
    row = [args.config, gpu, f"{run['parameters'] / 1e6:.0f} M", f"train() fsdp=true, {run['world_size']} rank, bf16",
           run["attention"], f"{args.global_batch}/{args.micro}", f"{tokens_per_s:.0f}", f"{s_per_step:.2f}",
           f"{rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}", f"{peak:.1f}", f"{wall:.0f}"]
    print_table(columns, [row])
    append_section(f"bench_gpu_train: the training loop on one GPU ({args.steps} steps, tiny-world stage-2 data)",
                   columns, [row],
                   "Throughput over steps 3..N, including the loop's own data work (JSONL records, PIL image loading "
                   "and preprocessing, tokenization, packing) done in the training process between steps, so it is "
                   "below the synthetic-batch figure of bench_mfu --gpu. The model is random-init: the loss is the "
                   "sanity check that the sharded bf16 step learns, not a quality figure. After training the "
                   "consolidated checkpoint was reloaded in bf16 and generated on the GPU.")


if __name__ == "__main__":
    main()
