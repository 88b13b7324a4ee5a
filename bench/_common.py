"""What every bench script shares: the machine line (with the load average), versions, and appending to results.md."""
import datetime, os, platform, socket
from pathlib import Path

from mammoth_min.core import atomic_write

RESULTS = Path(__file__).parent / "results.md"


def machine() -> str:
    "Host, architecture, core count and 1-minute load average: the cores are shared, so every figure carries its load."
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{socket.gethostname()} ({platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f})"


def versions() -> str:
    import torch, transformers
    return (f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"{torch.get_num_threads()} torch thread(s) in this process")


def now() -> str: return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def append_section(title: str, columns: list[str], rows: list[list], notes: str = "") -> Path:
    "Append `## title` with versions, a markdown table of `rows` and a notes paragraph to bench/results.md (atomically)."
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = [f"\n## {title}\n", f"{now()}, {machine()}, {versions()}\n",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if notes: lines += ["", notes.strip()]
    with atomic_write(RESULTS) as f: f.write(old.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")
    return RESULTS


def print_table(columns: list[str], rows: list[list]):
    widths = [max(len(str(x)) for x in [c, *(r[i] for r in rows)]) for i, c in enumerate(columns)]
    for r in [columns, *rows]: print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


# The learning benches (bench_skill_budget, bench_stage2) re-run stage 2 from a finished quickstart. Their imports stay
# inside the functions so that the speed benches do not pay for them.

def finished_quickstart(run: str | Path, needs: str = "train/stage1/model") -> Path:
    "The folder of a finished quickstart (world/ and `needs`), or exit saying how to make one."
    run = Path(run)
    if not (run / needs).exists():
        raise SystemExit(f"{run}: no {needs}; run `mammoth-min quickstart --out {run}` first")
    return run


def image_scenes(world: Path, split: str) -> dict[str, dict]:
    "The scene graph of each distinct single image in a world's split, by image path, in the split's order."
    from mammoth_min.formats import read_records
    scenes = {}
    for r in read_records(world / f"{split}.jsonl"):
        scene = r.get("metadata", {}).get("scene")
        if isinstance(r.get("image"), str) and isinstance(scene, dict): scenes.setdefault(r["image"], scene)
    return scenes


def retrain_stage2(run: Path, data: list[str], out_dir: Path, **overrides) -> dict:
    "Stage 2 (its defaults, changed by `overrides`) from the run's stage-1 model on `data`: steps, seconds, model, processor."
    import time
    from mammoth_min import train as mt
    from mammoth_min.model import MammothForConditionalGeneration, MammothProcessor
    cfg = mt.load_config("stage2", data=data, image_root=str(run / "world"), out_dir=str(out_dir),
                         init_from=str(run / "train" / "stage1" / "model"), seed=0, **overrides)
    start = time.perf_counter()
    trained = mt.train(cfg)
    seconds, model_dir = time.perf_counter() - start, trained["model_dir"]
    return {"steps": trained["last"]["step"], "seconds": seconds,
            "model": MammothForConditionalGeneration.from_pretrained(model_dir),
            "processor": MammothProcessor.from_pretrained(model_dir)}
