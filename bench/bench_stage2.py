"""Stage-2 settings against their blind runs and against no stage 2, over several worlds: a learning experiment on finished quickstarts.

Each setting re-runs a quickstart's own stage 2 (its `train/stage2/run.json`: the model it starts from, its data,
rates and seed), changed as the setting says, in a scratch folder. It scores the run's held-out test as the quickstart
does (the scorable test questions, 128 new tokens) with the image and blind (the eval chapter's mid-gray blank) and
reports, on the questions with a picture, model, blind and model - blind with a 95% paired-bootstrap interval, per run
and pooled over the runs given; with `none` among the settings, each other one also minus `none`. Settings:

- none: no stage 2, the model the run's stage 2 starts from scored as it is (the shipped connector, or a
  `--start pretrained` or `scratch` run's stage-1 model);
- own: the run's own stage-2 rates (from the connector: language model 5e-4, projector 1e-3);
- defaults: the training chapter's stage-2 rates (language model 2e-3, projector 2e-4);
- slower: language model 5e-4, projector 1e-3 (bench_binding.py: the rate at which the tiny LM learns to bind);
- projector: the projector alone at 1e-3, the language model frozen;
- a rate name then /N: those rates divided by N (`own/5`);
- no-synth: without the judged synthetic share (the quickstart's `synth_single.jsonl`);
- short-N: with N draws per train image of the world's own record writers added, keeping their short-answer and
  multiple-choice questions, one single-turn question per record (LLaVA-1.5's academic VQA share, in kind);
- Kep: K epochs instead of one.
A setting names the rates first, then any of the changes in this order: `own/5`, `own-no-synth`, `slower-2ep`,
`defaults-short-4`.

Draw worlds with other seeds for more runs: `mammoth-min quickstart --seed 1 --out runs/qs-seed1`.
Usage: python bench/bench_stage2.py --runs runs/quickstart [runs/qs-seed1 ...] --settings none own own/5
       [--jobs 2] [--max-steps N --eval-limit N] (a smoke run with those caps is not a measurement: not appended)
"""
import argparse, dataclasses, json, multiprocessing, random, re, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from _common import append_section, finished_quickstart, image_scenes, print_table
from mammoth_min import train as mt
from mammoth_min import world as tw
from mammoth_min.eval import EvalResult, evaluate, paired_bootstrap
from mammoth_min.formats import read_records, write_records
from mammoth_min.model import MammothForConditionalGeneration, MammothProcessor
from mammoth_min.quickstart import QuickstartConfig, scored_test, with_picture

SLOWER = {"language_model": 5e-4, "multi_modal_projector": 1e-3}
PROJECTOR = {"multi_modal_projector": 1e-3}  # the language model frozen
WRITERS = {"objects": tw.object_records, "text": tw.text_records, "chart": tw.chart_records,
           "expression": tw.math_records, "polygon": tw.math_records}  # by the scene's kind
SHORT_TASKS = ("vqa", "mc", "ocr", "chart", "math")
SETTING = re.compile(r"none|(own|defaults|slower|projector)(?:/(\d+))?(-no-synth)?(?:-short-(\d+))?(?:-(\d+)ep)?")  # rates, divisor, synthetic share, added questions, epochs


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


def setting_config(run: Path, own: mt.StageConfig, setting: str, work: Path) -> mt.StageConfig:
    "The run's own stage-2 config `own`, changed as `setting` says, writing to `work`."
    rate, divisor, no_synth, draws, epochs = SETTING.fullmatch(setting).groups()
    lr = {"own": own.lr, "defaults": mt.load_config("stage2").lr, "slower": SLOWER, "projector": PROJECTOR}[rate]
    data = [f for f in own.data if not (no_synth and Path(f).name == "synth_single.jsonl")]
    if draws: data.append(str(write_records(short_questions(run / "world", int(draws)), work / "short.jsonl")))
    return dataclasses.replace(own, lr={k: v / int(divisor or 1) for k, v in lr.items()}, data=data,
                               epochs=int(epochs or own.epochs), out_dir=str(work / "stage2"), resume=False)


def run_setting(run: Path, setting: str, max_steps: int | None, eval_limit: int | None) -> dict:
    "Train (unless `none`) and score one setting on one run in a scratch folder, on one thread (the tiny model is dispatch-bound)."
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        own = mt.load_config(json.loads((run / "train" / "stage2" / "run.json").read_text())["config"])
        if setting == "none": model_dir, steps, seconds, records = own.init_from, 0, 0.0, ""
        else:
            cfg = setting_config(run, own, setting, work)
            if max_steps: cfg = dataclasses.replace(cfg, max_steps=max_steps)
            start = time.perf_counter()
            trained = mt.train(cfg)
            model_dir, steps, seconds = trained["model_dir"], trained["last"]["step"], time.perf_counter() - start
            records = sum(len(Path(path).read_text().splitlines()) for path in cfg.data)  # JSONL: one record per line
        model, processor = MammothForConditionalGeneration.from_pretrained(model_dir), MammothProcessor.from_pretrained(model_dir)
        test = scored_test(run / "world", eval_limit)
        scored = {name: evaluate(model, processor, test, str(run / "world"), out_dir=work / name, blind=name == "blind",
                                 max_new_tokens=QuickstartConfig().eval_tokens, progress=False)
                  for name in ("model", "blind")}
    return {"records": records, "steps": steps, "seconds": seconds, "test": test, **scored}


def tagged(result: EvalResult, tag: str) -> list[dict]:
    return [{**s, "id": f"{tag}/{s['id']}"} for s in result.samples]


def formatted(gap) -> str:
    "A paired-bootstrap row as its difference and 95% interval."
    return f"{gap['difference']:+.3f} ({gap['low']:+.3f}, {gap['high']:+.3f})"


def interval(a: EvalResult, b: EvalResult) -> str:
    "a - b over their questions, with its 95% paired-bootstrap interval."
    return formatted(paired_bootstrap(a, b).loc["overall"])


def row_cells(got: dict, none: dict | None) -> list:
    "Scores on the questions with a picture (model, blind, model - blind, minus `none`), then the model over all."
    model, blind = (with_picture(got[name], got["test"]) for name in ("model", "blind"))
    versus = interval(model, with_picture(none["model"], none["test"])) if none else ""
    return [f"{model.overall:.3f}", f"{blind.overall:.3f}", interval(model, blind), versus, f"{got['model'].overall:.3f}"]


def pooled(results: list[tuple[str, dict]]) -> dict:
    "One run's worth of results made of several runs' questions, each id tagged with its run."
    return {"test": [{**r, "id": f"{run}/{r['id']}"} for run, got in results for r in got["test"]],
            **{name: EvalResult([s for run, got in results for s in tagged(got[name], run)], name) for name in ("model", "blind")}}


def category_rows(settings: list[str], runs: list[Path], results: dict) -> list[list]:
    "Each trained setting minus `none` per category, over all the runs' questions."
    none = pooled([(str(run), results["none", run]) for run in runs])["model"]
    rows = []
    for setting in settings:
        if setting == "none": continue
        gaps = paired_bootstrap(pooled([(str(run), results[setting, run]) for run in runs])["model"], none, by="category")
        rows += [[setting, category, int(g["n"]), formatted(g)] for category, g in gaps.iterrows()]
    return rows


CATEGORY_COLUMNS = ["setting", "category", "questions", "minus none (95% interval)"]
COLUMNS = ["setting", "run", "records", "steps", "train s", "model", "blind", "model - blind (95% interval)",
           "minus none (95% interval)", "model, all questions"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["runs/quickstart"], help="finished quickstarts (world/, train/)")
    ap.add_argument("--settings", nargs="+", default=["none", "own"])
    ap.add_argument("--jobs", type=int, default=1, help="(run, setting) pairs trained at once, one process each")
    ap.add_argument("--max-steps", type=int, help="cap on stage-2 steps (smoke runs)")
    ap.add_argument("--eval-limit", type=int, help="score only the first N test questions (smoke runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in every training process (run_setting), so the results line states it
    runs = [finished_quickstart(r, needs="train/stage2/run.json") for r in args.runs]
    for setting in args.settings:
        if not SETTING.fullmatch(setting): raise SystemExit(f"unknown setting {setting!r}; see the module docstring")
    pairs = [(setting, run) for setting in args.settings for run in runs]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pair: pool.submit(run_setting, pair[1], pair[0], args.max_steps, args.eval_limit) for pair in pairs}
    results = {pair: future.result() for pair, future in futures.items()}
    def none_of(run, setting): return results.get(("none", run)) if setting != "none" else None
    rows = []
    for setting in args.settings:
        for run in runs:
            got = results[setting, run]
            rows.append([setting, str(run), got["records"], got["steps"], round(got["seconds"]),
                         *row_cells(got, none_of(run, setting))])
        if len(runs) > 1:
            both = pooled([(str(run), results[setting, run]) for run in runs])
            nones = [(str(run), none_of(run, setting)) for run in runs]
            rows.append([setting, f"pooled over {len(runs)} runs", "", "", "",
                         *row_cells(both, pooled(nones) if all(n for _, n in nones) else None)])
    print_table(COLUMNS, rows)
    by_category = category_rows(args.settings, runs, results) if "none" in args.settings else []
    if by_category: print_table(CATEGORY_COLUMNS, by_category)
    if args.max_steps is None and args.eval_limit is None:
        append_section(f"Stage-2 settings vs blind and vs no stage 2, {len(runs)} quickstart run(s)", COLUMNS, rows,
                       "Each run's own stage 2 re-run as the setting says, one thread; held-out test of each run's world "
                       "as the quickstart scores it, on the questions with a picture except the last column; blind = the "
                       "mid-gray blank; intervals are 95% paired bootstraps (pooled rows: over all runs' questions).")
        if by_category:
            append_section("Stage-2 settings minus no stage 2, by category, pooled over the runs above", CATEGORY_COLUMNS,
                           by_category, "All questions of each category (Language is text only); 95% paired bootstraps.")


if __name__ == "__main__":
    main()
