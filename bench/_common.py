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
