"""How many questions does one image skill need, alone and in the mix? A learning experiment on a quickstart run.

Stage 2 is re-run from a finished quickstart's stage-1 model (the README's main command leaves one in
runs/quickstart) on short-answer questions about the world's object images, one single-turn question per record,
at the stage-2 defaults. The skill measured is the simplest one the world has: naming the background colour (three
colours, a property of every patch). Arms:

- alone: only the background question, one per train image, for 1, 2 and 4 passes;
- in the mix: six questions per train image drawn by the world's own short-answer builders (`VQA_BUILDERS`, as
  `object_records` draws them), of which about one in eight asks for the background, for 1 and 3 passes.

Each arm is scored on the background question of every held-out object image, with the image and blind (the eval
chapter's mid-gray blank); the mix arm also on all its held-out questions. Prints a table and appends it to
results.md.

Usage: python bench/bench_skill_budget.py [--run runs/quickstart] [--quick]
"""
import argparse, random, tempfile
from pathlib import Path

from _common import append_section, finished_quickstart, image_scenes, print_table, retrain_stage2
from mammoth_min.eval import evaluate
from mammoth_min.formats import write_records
from mammoth_min.world import SHORT_SUFFIX, VQA_BUILDERS, first_applicable, make_record


def object_images(world: Path, split: str) -> list[tuple[str, dict]]:
    "(image, scene) of each distinct single object image in the split."
    return [(image, scene) for image, scene in image_scenes(world, split).items() if scene["kind"] == "objects"]


def question(rid: str, image: str, scene: dict, q: str, a: str) -> dict:
    return make_record(rid, [image], f"{q}\n{SHORT_SUFFIX}", a, category="General", task="vqa", answer=a, scene=scene)


def background_records(images, tag: str) -> list[dict]:
    return [question(f"{tag}{i}", img, sc, "What color is the background?", sc["background"]) for i, (img, sc) in enumerate(images)]


def mixed_records(images, per_image: int, rng: random.Random) -> list[dict]:
    "`per_image` questions per image, each drawn from the world's builders as `object_records` draws them."
    return [question(f"mix{i}-{k}", img, sc, *first_applicable(rng, VQA_BUILDERS, sc)[:2])
            for i, (img, sc) in enumerate(images) for k in range(per_image)]


def run_arm(run: Path, data: list[dict], passes: int, work: Path, tests: dict[str, list[dict]]) -> dict:
    "Stage 2 on `data` from the run's stage-1 model; accuracy with the image and blind on each test set."
    path = write_records(data, work / "data.jsonl")
    got = retrain_stage2(run, [str(path)], work / "stage2", epochs=passes)
    scores = {}
    for name, records in tests.items():
        for blind in (False, True):
            res = evaluate(got["model"], got["processor"], records, str(run / "world"), out_dir=work / f"{name}-{blind}",
                           blind=blind, max_new_tokens=6, progress=False)
            scores[name, blind] = res.overall
    return {"seconds": got["seconds"], "steps": got["steps"], **scores}


COLUMNS = ["arm", "records", "background questions", "passes", "background seen", "steps", "train s",
           "background acc", "blind", "mix acc / blind"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/quickstart", help="a finished quickstart (world/ and train/stage1/model)")
    ap.add_argument("--quick", action="store_true", help="the alone arms with 1 and 2 passes only")
    args = ap.parse_args()
    run = finished_quickstart(args.run)
    train_images, test_images = object_images(run / "world", "train"), object_images(run / "world", "test")
    tests = {"background": background_records(test_images, "test-bg")}
    alone = background_records(train_images, "bg")
    arms = [("background alone", alone, passes, tests) for passes in ((1, 2) if args.quick else (1, 2, 4))]
    if not args.quick:
        mixed = mixed_records(train_images, 6, random.Random(0))
        mix_tests = {**tests, "mix": mixed_records(test_images, 3, random.Random(1))}
        arms += [("in the mix", mixed, passes, mix_tests) for passes in (1, 3)]
    rows = []
    for label, data, passes, arm_tests in arms:
        n_bg = sum("background" in r["conversations"][0]["value"] for r in data)
        with tempfile.TemporaryDirectory() as tmp:
            got = run_arm(run, data, passes, Path(tmp), arm_tests)
        mix = f"{got['mix', False]:.2f} / {got['mix', True]:.2f}" if ("mix", False) in got else "-"
        rows.append([label, len(data), n_bg, passes, n_bg * passes, got["steps"], round(got["seconds"]),
                     f"{got['background', False]:.2f}", f"{got['background', True]:.2f}", mix])
        print_table(COLUMNS, rows[-1:])
    print_table(COLUMNS, rows)
    append_section(f"Skill budget: the background colour alone and in the mix ({run}, {len(tests['background'])} "
                   "held-out images)", COLUMNS, rows,
                   "Stage 2 from the run's stage-1 model at the stage-2 defaults, one single-turn question per record. "
                   "Chance on the background is 1/3 (white, black, gray); blind is the mid-gray blank.")


if __name__ == "__main__":
    main()
