"""The README's main job, timed: `mammoth-min quickstart --fresh` in a temporary folder, as a user runs it (a
subprocess through the console script), then its wall time per step and held-out accuracy per category next to the
blind baseline, the answer prior and chance, appended to bench/results.md. The issue's target: the whole quickstart
within 10 minutes on the project's 2-core machine, accuracy far above chance, the blind baseline near chance.

Usage: python bench/bench_quickstart.py [--n-images N]  (default: the quickstart's own)
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

from _common import append_section, print_table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=None)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "quickstart"
    cli = Path(sys.executable).with_name("mammoth-min")
    start = time.perf_counter()
    sized = ["--n-images", str(args.n_images)] if args.n_images else []
    subprocess.run([str(cli), "quickstart", "--fresh", "--out", str(out), *sized], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    steps = {p.name.removesuffix(".done.json"): json.loads(p.read_text())["seconds"] for p in sorted(out.glob("*.done.json"))}
    from mammoth_min.quickstart import PICTURE_ROW, results_table
    table = results_table(out / "world", [str(out / "eval" / "model"), str(out / "eval" / "blind")])
    columns = ["step", "seconds"]
    rows = [[name, f"{seconds:.0f}"] for name, seconds in steps.items()] + [["whole command", f"{wall:.0f}"]]
    print_table(columns, rows)
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    slots = json.loads((out / "world" / "world.json").read_text()).get("n_images", args.n_images)
    def scores(row: str) -> str:
        a = table.loc[row]
        return (f"({a['n']} questions): model {a['model']:.3f}, blind {a['blind']:.3f}, "
                f"answer prior {a['answer prior']:.3f}, chance {a['chance']:.3f}")
    append_section(f"bench_quickstart: `mammoth-min quickstart --fresh`, {slots} image slots", columns, rows,
                   f"Held-out overall accuracy {scores('overall')}; on the questions with a picture {scores(PICTURE_ROW)}. "
                   "The run's results.md (per category; model - blind and blind - chance with paired-bootstrap intervals; "
                   "the image-swap test):\n\n" + (out / "results.md").read_text())


if __name__ == "__main__":
    main()
