"""Throughput of `OpenAIChatGenerator` at concurrency 1 vs 8 (and 16) against the loopback server.

The server (`mammoth_min.synth.OpenAICompatServer`) runs a tiny random-init Qwen2 built offline and batches the
requests that are waiting, as vLLM or SGLang do; so the speed-up measures what a concurrent client buys from a
batching server. Client and server share this machine's cores. Appends a row per setting to bench/results.md.

Usage: python bench/bench_synth_client.py [--requests 32] [--max-tokens 16]
"""
import argparse, datetime, os, platform, socket, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from mammoth_min.core import atomic_write
from mammoth_min.synth import (OpenAIChatGenerator, OpenAICompatServer, Request, TransformersGenerator, tiny_chat_lm,
                               user_message)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    args = ap.parse_args()

    model_dir = tiny_chat_lm(Path(tempfile.mkdtemp()) / "tiny-lm")
    server_model = TransformersGenerator.from_pretrained(model_dir, batch_size=16)
    with OpenAICompatServer(server_model, max_batch=16) as server:
        OpenAIChatGenerator(server.url, "tiny").generate([Request([user_message("warm up")], {"max_tokens": 2})])
        results = {}
        for c in args.concurrency:
            # distinct prompts per setting, same length: no caching anywhere, comparable work
            reqs = [Request([user_message(f"Describe picture number {c:02d}-{i:03d} in detail.")],
                            {"max_tokens": args.max_tokens, "temperature": 0.0}) for i in range(args.requests)]
            start = time.perf_counter()
            OpenAIChatGenerator(server.url, "tiny", concurrency=c).generate(reqs)
            elapsed = time.perf_counter() - start
            results[c] = (args.requests / elapsed, elapsed, server.max_in_flight)
            server.max_in_flight = 0
            print(f"concurrency {c:2d}: {results[c][0]:6.2f} req/s ({elapsed:.2f} s for {args.requests}), "
                  f"max in flight at server {results[c][2]}")
    base = results[min(results)][0]
    for c in results: print(f"speed-up at concurrency {c}: {results[c][0] / base:.2f}x")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = f"{socket.gethostname()} ({platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f})"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path = Path(__file__).parent / "results.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    rows = "".join(f"| {now} | {machine} | synth client, tiny Qwen2 via loopback OpenAICompatServer, "
                   f"{args.requests} req x {args.max_tokens} tok | concurrency {c} | {r[0]:.2f} req/s | "
                   f"{r[0] / base:.2f}x vs concurrency {min(results)} |\n" for c, r in results.items())
    header = "\n| date | machine | bench | setting | throughput | ratio |\n|---|---|---|---|---|---|\n"
    with atomic_write(path) as f: f.write(old.rstrip("\n") + "\n" + header + rows)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
