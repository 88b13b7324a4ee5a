"""Data-path throughput in records/s: validation with images, tokenization, full processor encoding; and the synth
client figure from bench_synth_client.py (reused from results.md, not rerun).

Records: the shipped tiny world's train split (64x64 PNGs). Validation is `formats.validate_records` with the image
root (every image opened and checked). Tokenization is `chat.encode_conversation` (text only, image-token counts
from the processor), and `MammothProcessor([record])` (load + preprocess the image + tokenize), one record at a time
as the training loop calls it. Appends to bench/results.md.

Usage: python bench/bench_data.py [--quick] [--records 2000]  (records handled, in passes over the 261)
"""
import argparse, os, re, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from _common import RESULTS, append_section, print_table
from mammoth_min import chat, formats
from mammoth_min.model import MammothProcessor, build_config
from mammoth_min.train import record_text

WORLD = Path(__file__).resolve().parents[1] / "data_samples" / "tiny_world"


def timed(fn, records, at_least: int) -> tuple[float, int]:
    "(seconds, records) over as many passes over `records` as it takes to handle `at_least` records."
    n, start = 0, time.perf_counter()
    while n < at_least: n += fn(records)
    return time.perf_counter() - start, n


def synth_figure() -> str:
    "The newest concurrency-8 row of bench_synth_client.py in results.md, as 'X req/s (date)'."
    rows = [line for line in RESULTS.read_text().splitlines() if "| synth client" in line and "| concurrency 8 |" in line]
    if not rows: return "not recorded"
    cells = [c.strip() for c in rows[-1].split("|")]
    where = re.sub(r"^.*\((.*)\)$", r"\1", cells[2])  # the "(x86_64, 2 CPUs, load ...)" part
    return f"{cells[5]} at concurrency 8 ({cells[1]}, {where})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", type=int, default=2000)
    args = ap.parse_args()
    records = formats.read_records(WORLD / "train.jsonl")  # 261 records; timed over repeated passes
    at_least = 300 if args.quick else args.records
    n_images = sum(len(r["image"]) if isinstance(r.get("image"), list) else int("image" in r) for r in records)
    tokenizer = chat.train_tokenizer([record_text(r) for r in records[:500]], vocab_size=512)
    processor = MammothProcessor.from_config(build_config("tiny", tokenizer), tokenizer)
    per_crop = processor.image_processor.tokens_per_crop

    def validate(recs): return len(formats.validate_records(recs, WORLD)[0])
    def tokenize(recs):
        for r in recs: chat.encode_conversation(r, tokenizer, "qwen_2_5", per_crop)
        return len(recs)
    def process(recs):
        for r in recs: processor([r], WORLD)
        return len(recs)

    rows = []
    for label, fn in (("formats.validate_records (images opened and checked)", validate),
                      ("chat.encode_conversation (text, qwen_2_5)", tokenize),
                      ("MammothProcessor: load + preprocess image + tokenize", process)):
        seconds, n = timed(fn, records, at_least)
        print(f"{label}: {n} records in {seconds:.2f} s = {n / seconds:.0f} records/s")
        rows.append([label, f"{n} ({n // len(records)} passes)", n_images * (n // len(records)), f"{seconds:.2f}",
                     f"{n / seconds:.0f}"])
    rows.append(["synth client (reused from bench_synth_client.py)", "-", "-", "-", synth_figure()])
    columns = ["stage", "records", "images", "seconds", "records/s"]
    print_table(columns, rows)
    append_section(
        "bench_data: validation, tokenization, processor (tiny world train split), 1 process", columns, rows,
        "Single process, one record at a time, on 2 shared cores: these are pure-Python paths (JSON checks, PIL "
        "decode of a 64x64 PNG, BPE tokenization of short turns), so they scale with processes (dataloader workers), "
        "not with threads. The synth client figure is a loopback server generating 16 tokens per request with a tiny "
        "model on the same cores, so it measures server batching, not the client.")


if __name__ == "__main__":
    main()
