"""Stage-2 settings against their blind runs, over several worlds: a learning experiment on finished quickstarts.

Each setting re-runs stage 2 from a quickstart's stage-1 model (so a run made with `start="scratch"` and
`pixel_shuffle_factor=2` keeps its 16 image tokens) on the quickstart's own stage-2 data (the world's single-image
and text records plus the synthetic share, as written under train/data/), changed as the setting says. It scores
the run's held-out test with the image and blind (the eval chapter's mid-gray blank) and reports model - blind with a
95% paired-bootstrap interval, per run and pooled over the runs given. Settings:

- defaults: the training chapter's stage 2, as the from-scratch quickstart runs it (language model 2e-3, projector
  2e-4, one epoch);
- slower: language model 5e-4, projector 1e-3 (bench_binding.py: the rate at which the tiny LM learns to bind);
- short-N: with N draws per train image of the world's own record writers added, keeping their short-answer and
  multiple-choice questions, one single-turn question per record (LLaVA-1.5's academic VQA share, in kind);
- Kep: K epochs instead of one.
A setting names the rates first, then either or both changes: `slower-2ep`, `defaults-short-4`, `slower-short-4-3ep`.

Draw worlds with other seeds for more runs: `mammoth-min quickstart --seed 1 --out runs/qs-seed1`.
Usage: python bench/bench_stage2.py --runs runs/quickstart [runs/qs-seed1 ...] --settings defaults slower-2ep
       [--jobs 2] [--max-steps N --eval-limit N] (a smoke run with those caps is not a measurement: not appended)
"""
import argparse, multiprocessing, random, re, tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from _common import append_section, finished_quickstart, image_scenes, print_table, retrain_stage2
from mammoth_min import world as tw
from mammoth_min.eval import EvalResult, evaluate, paired_bootstrap, select_scorable
from mammoth_min.formats import read_records, write_records

SLOWER = {"language_model": 5e-4, "multi_modal_projector": 1e-3}
WRITERS = {"objects": tw.object_records, "text": tw.text_records, "chart": tw.chart_records,
           "expression": tw.math_records, "polygon": tw.math_records}  # by the scene's kind
SHORT_TASKS = ("vqa", "mc", "ocr", "chart", "math")
SETTING = re.compile(r"(defaults|slower)(?:-short-(\d+))?(?:-(\d+)ep)?")  # rates, added questions, epochs


def short_questions(world: Path, draws: int, seed: int = 0) -> list[dict]:
    "`draws` passes of the world's record writers over each train image, keeping each distinct question once."
    out, seen = [], set()
    for image, scene in sorted(image_scenes(world, "train").items()):
        for k in range(draws):
            rng = random.Random(f"dense:{seed}:{image}:{k}")  # the key of the draws the quickstart chapter reports
            for r in WRITERS[scene["kind"]](rng, f"{Path(image).stem}-d{k}", image, scene):
                key = (image, r["conversations"][0]["value"])
                if r["metadata"]["task"] not in SHORT_TASKS or key in seen: continue
                seen.add(key)
                out.append({**r, "id": f"{r['id']}-{len(out)}"})
    return out


def setting_data(run: Path, setting: str, work: Path) -> tuple[list[str], dict]:
    "The quickstart's stage-2 data files and the stage overrides that `setting` names."
    rate, draws, epochs = SETTING.fullmatch(setting).groups()
    data = [str(run / "train" / "data" / name) for name in ("stage2.jsonl", "synth_single.jsonl")]
    if draws: data.append(str(write_records(short_questions(run / "world", int(draws)), work / "short.jsonl")))
    overrides = {"lr": dict(SLOWER)} if rate == "slower" else {}
    if epochs: overrides["epochs"] = int(epochs)
    return data, overrides


def run_setting(run: Path, setting: str, max_steps: int | None, eval_limit: int | None) -> dict:
    "Train and score one setting on one run in a scratch folder, on one thread (the tiny model is dispatch-bound)."
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, overrides = setting_data(run, setting, work)
        got = retrain_stage2(run, data, work / "stage2", max_steps=max_steps, **overrides)
        test = select_scorable(read_records(run / "world" / "test.jsonl"))[:eval_limit]
        scored = {name: evaluate(got["model"], got["processor"], test, str(run / "world"), out_dir=work / name,
                                 blind=name == "blind", max_new_tokens=128) for name in ("model", "blind")}
        records = sum(len(Path(path).read_text().splitlines()) for path in data)  # JSONL: one record per line
    return {"records": records, "steps": got["steps"], "seconds": got["seconds"], **scored}


def tagged(result: EvalResult, tag: str) -> list[dict]:
    return [{**s, "id": f"{tag}/{s['id']}"} for s in result.samples]


def gap_cells(model: EvalResult, blind: EvalResult) -> list:
    gap = paired_bootstrap(model, blind).loc["overall"]
    return [f"{model.overall:.3f}", f"{blind.overall:.3f}",
            f"{gap['difference']:+.3f} ({gap['low']:+.3f}, {gap['high']:+.3f})"]


COLUMNS = ["setting", "run", "records", "steps", "train s", "model", "blind", "model - blind (95% interval)"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["runs/quickstart"], help="finished quickstarts (world/, train/)")
    ap.add_argument("--settings", nargs="+", default=["defaults", "slower-2ep"])
    ap.add_argument("--jobs", type=int, default=1, help="(run, setting) pairs trained at once, one process each")
    ap.add_argument("--max-steps", type=int, help="cap on stage-2 steps (smoke runs)")
    ap.add_argument("--eval-limit", type=int, help="score only the first N test questions (smoke runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in every training process (run_setting), so the results line states it
    runs = [finished_quickstart(r) for r in args.runs]
    for setting in args.settings:
        if not SETTING.fullmatch(setting): raise SystemExit(f"unknown setting {setting!r}; see the module docstring")
    pairs = [(setting, run) for setting in args.settings for run in runs]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pair: pool.submit(run_setting, pair[1], pair[0], args.max_steps, args.eval_limit) for pair in pairs}
    rows = []
    for setting in args.settings:
        pooled = {"model": [], "blind": []}
        for run in runs:
            got = futures[setting, run].result()
            for name in pooled: pooled[name] += tagged(got[name], str(run))
            rows.append([setting, str(run), got["records"], got["steps"], round(got["seconds"]), *gap_cells(got["model"], got["blind"])])
        if len(runs) > 1:
            rows.append([setting, f"pooled over {len(runs)} runs", "", "", "",
                         *gap_cells(EvalResult(pooled["model"], "model"), EvalResult(pooled["blind"], "blind"))])
    print_table(COLUMNS, rows)
    if args.max_steps is None and args.eval_limit is None:
        append_section(f"Stage-2 settings vs blind, {len(runs)} quickstart run(s)", COLUMNS, rows,
                       "Stage 2 re-run from each run's stage-1 model, one thread; held-out test of each run's world, "
                       "blind = the mid-gray blank; intervals are 95% paired bootstraps (pooled rows: over all runs' questions).")


if __name__ == "__main__":
    main()
