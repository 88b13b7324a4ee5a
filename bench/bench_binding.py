"""Can the tiny language model learn to find the object a question names? A symbolic-image experiment.

The quickstart's language model (the `tiny` Qwen2: 4 layers, width 128) is given perfect image tokens: one token per
grid cell of a 3 x 3 scene, built from the cell's (shape, colour, size) or "empty". Nothing has to be seen, so what
is measured is only the binding the connector recipe asks of the language model: read a question, find the one image
token it points at, answer with that token's attribute. Each arm trains from scratch on fresh scenes (batch 16,
AdamW, 100 warm-up steps, then a constant rate) and is scored on 600 held-out questions per kind:

- colour: "what colour is the <shape> ?" (the shape occurs once),
- shape at: "what shape is at the <place> ?" (needs the token's grid position),
- exists: "is there a <colour> <shape> ?",
- count: "how many <shape> ?".

Arms: the interface is either a learnable embedding per attribute ("learnable") or frozen random attribute
embeddings through the package's `mlp2x_gelu` projector at stage 1's rate, 1e-3 ("projector"); the language model's
rate is swept. Prints a table and appends it to results.md.

Usage: python bench/bench_binding.py [--quick] [--steps 1500]
"""
import argparse, random, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoModel

from _common import append_section, print_table
from mammoth_min.model import MammothProjector, build_config
from mammoth_min.world import COLORS, POSITIONS, SHAPES, SIZES

PLACES = [p for row in POSITIONS for p in row]
COLOR_NAMES, SIZE_NAMES = list(COLORS), list(SIZES)
KINDS = ("colour", "shape at", "exists", "count")
WORDS = ["<bos>", "what", "colour", "shape", "is", "the", "at", "there", "a", "how", "many", "?", "yes", "no",
         *SHAPES, *COLOR_NAMES, *(p.replace(" ", "_") for p in PLACES), *map(str, range(10))]
VOCAB = {w: i for i, w in enumerate(WORDS)}
EMPTY = (len(SHAPES), len(COLOR_NAMES), len(SIZE_NAMES))  # the attribute ids of an empty cell


def scene(rng: random.Random) -> dict[int, tuple[int, int, int]]:
    "1 to 6 objects in distinct cells: cell -> (shape, colour, size) ids."
    return {cell: (rng.randrange(len(SHAPES)), rng.randrange(len(COLOR_NAMES)), rng.randrange(len(SIZE_NAMES)))
            for cell in rng.sample(range(9), rng.randint(1, 6))}


def question(rng: random.Random, objects: dict, kind: str) -> tuple[list[str], str] | None:
    "(question words, answer word) of `kind` about `objects`, or None when the scene cannot pose it."
    shapes = [o[0] for o in objects.values()]
    if kind == "colour":
        unique = sorted(s for s in set(shapes) if shapes.count(s) == 1)
        if not unique: return None
        s = rng.choice(unique)
        return ["what", "colour", "is", "the", SHAPES[s], "?"], COLOR_NAMES[next(o[1] for o in objects.values() if o[0] == s)]
    if kind == "shape at":
        cell = rng.choice(sorted(objects))
        return ["what", "shape", "is", "at", "the", PLACES[cell].replace(" ", "_"), "?"], SHAPES[objects[cell][0]]
    if kind == "exists":
        present = sorted({o[:2] for o in objects.values()})
        s, c = rng.choice(present) if rng.random() < 0.5 else (rng.randrange(len(SHAPES)), rng.randrange(len(COLOR_NAMES)))
        return ["is", "there", "a", COLOR_NAMES[c], SHAPES[s], "?"], "yes" if (s, c) in present else "no"
    s = rng.choice(shapes) if rng.random() < 0.75 else rng.randrange(len(SHAPES))
    return ["how", "many", SHAPES[s], "?"], str(shapes.count(s))


def batch(rng: random.Random, n: int, kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    "(cells [n, 9, 3], left-padded question ids [n, L], answer ids [n]) of `kind`, or of random kinds."
    cells, questions, answers = [], [], []
    while len(questions) < n:
        objects = scene(rng)
        qa = question(rng, objects, kind or rng.choice(KINDS))
        if qa is None: continue
        cells.append([objects.get(c, EMPTY) for c in range(9)])
        questions.append([VOCAB[w] for w in qa[0]]); answers.append(VOCAB[qa[1]])
    width = max(map(len, questions))  # left padding keeps the answer slot last
    return (torch.tensor(cells), torch.tensor([[VOCAB["<bos>"]] * (width - len(q)) + q for q in questions]),
            torch.tensor(answers))


class SymbolicVLM(nn.Module):
    "The tiny Qwen2 reading [bos, 9 image tokens, question] and predicting the answer word at the last position."
    def __init__(self, interface: str):
        super().__init__()
        config = build_config("tiny")  # the quickstart's language model and projector, with this toy's vocabulary
        config.text_config.vocab_size = len(WORDS)
        self.lm = AutoModel.from_config(config.text_config)
        dim = config.text_config.hidden_size
        self.attributes = nn.ModuleList(nn.Embedding(k + 1, dim) for k in EMPTY)  # +1: the "empty" id
        self.projector = None
        if interface == "projector":  # frozen random features, as a frozen tower gives, through the real connector
            for table in self.attributes: table.weight.requires_grad_(False)
            self.projector = MammothProjector(config)  # tiny's tower width equals its language model's: 128 -> 128

    def interface_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.attributes, self.projector) if m is not None for p in m.parameters() if p.requires_grad]

    def forward(self, cells: torch.Tensor, question_ids: torch.Tensor) -> torch.Tensor:
        image = sum(table(cells[..., k]) for k, table in enumerate(self.attributes))
        if self.projector is not None: image = self.projector(image)
        embed = self.lm.get_input_embeddings()
        bos = embed(torch.full((len(cells), 1), VOCAB["<bos>"]))
        hidden = self.lm(inputs_embeds=torch.cat([bos, image, embed(question_ids)], 1)).last_hidden_state[:, -1]
        return hidden @ embed.weight.T


def train_arm(interface: str, lm_lr: float, steps: int, batch_size: int = 16, interface_lr: float = 1e-3,
              seed: int = 0) -> dict:
    "Train one arm; accuracy per kind at every tenth of the run, and the first example count with colour >= 0.9."
    torch.manual_seed(seed)
    model, rng = SymbolicVLM(interface), random.Random(seed)
    # learnable attribute tables are word embeddings in all but name, so they learn at the language model's rate
    interface_rate = interface_lr if interface == "projector" else lm_lr
    optimizer = torch.optim.AdamW([{"params": list(model.lm.parameters()), "lr": lm_lr},
                                   {"params": model.interface_parameters(), "lr": interface_rate}], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100))
    tests = {kind: batch(random.Random(1000 + i), 600, kind) for i, kind in enumerate(KINDS)}
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        cells, q, a = batch(rng, batch_size)
        loss = F.cross_entropy(model(cells, q), a)
        optimizer.zero_grad(); loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(); schedule.step()
        if step % max(1, steps // 10) == 0:
            with torch.no_grad():
                acc = {k: (model(c, qq).argmax(-1) == aa).float().mean().item() for k, (c, qq, aa) in tests.items()}
            curve.append((step * batch_size, acc))
    first = next((n for n, acc in curve if acc["colour"] >= 0.9), None)
    return {"final": curve[-1][1], "colour_0.9_at": first, "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 steps per arm")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 300 if args.quick else args.steps
    arms = [("learnable", 2e-3), ("learnable", 5e-4), ("projector", 2e-3), ("projector", 5e-4), ("projector", 2e-4)]
    columns = ["interface", "LM lr", *KINDS, "colour >= 0.9 after", "s"]
    rows = []
    for interface, lm_lr in arms:
        r = train_arm(interface, lm_lr, steps)
        rows.append([interface, f"{lm_lr:g}", *(f"{r['final'][k]:.2f}" for k in KINDS),
                     f"{r['colour_0.9_at']:,} examples" if r["colour_0.9_at"] else "not reached", f"{r['seconds']:.0f}"])
        print_table(columns, rows[-1:])
    print_table(columns, rows)
    append_section(f"bench_binding: tiny LM binding with perfect symbolic image tokens, {steps} steps x 16", columns, rows,
                   "Chance: colour 1/6, shape at 1/5, exists and count are answer-prior questions (about 0.5). One seed "
                   "per arm; accuracy is read at every tenth of the run, so the crossing point is that coarse.")


if __name__ == "__main__":
    main()
