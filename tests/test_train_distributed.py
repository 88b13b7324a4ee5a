"""mammoth_min.train under torchrun: FSDP2 on 2 CPU processes matches 1 process, and kill -9 + resume continues exactly.

Each test launches real processes (`python -m mammoth_min.train` / `torchrun --nproc_per_node 2 -m mammoth_min.train`)
with OMP_NUM_THREADS=1 on the shipped tiny world, so they exercise the same code a GPU node runs (gloo instead of NCCL).
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from mammoth_min.train import read_log, world_stages

REPO = Path(__file__).resolve().parents[1]
WORLD = REPO / "data_samples" / "tiny_world"
STEPS = 6


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _config(tmp: Path, name: str, **fields) -> Path:
    "A stage-2 config on the tiny world, small enough for seconds per step: 8 records per step, 2 per micro batch."
    stage2 = world_stages(WORLD, tmp / "mix")[2]
    cfg = {"stage": "stage2", "data": stage2.data, "image_root": stage2.image_root, "init_from": "tiny",
           "out_dir": str(tmp / name), "global_batch": 8, "micro_batch": 2, "max_steps": STEPS, "max_length": 384,
           "save_every": 2, "warmup_ratio": 0.2, **fields}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _command(config: Path, nproc: int, *overrides: str) -> list[str]:
    launcher = [sys.executable, "-m", "mammoth_min.train"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        "-m", "mammoth_min.train"]
    return launcher + [str(config), *overrides]


def _run(config: Path, nproc: int, *overrides: str) -> list[dict]:
    proc = subprocess.run(_command(config, nproc, *overrides), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return read_log(Path(yaml.safe_load(config.read_text())["out_dir"]) / "log.jsonl")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    "The uninterrupted reference: 2 ranks, FSDP2, 6 steps, a checkpoint every 2."
    tmp = tmp_path_factory.mktemp("fsdp")
    config = _config(tmp, "two")
    return tmp, _run(config, 2), json.loads((tmp / "two" / "run.json").read_text())


def test_fsdp_matches_one_process(two_process_run):
    tmp, two, info = two_process_run
    one = _run(_config(tmp, "one"), 1)
    print("\nstep  loss 1 process    loss 2 ranks FSDP2   grad-norm 1 / 2")
    for a, b in zip(one, two):
        print(f"{a['step']:>4}  {a['loss']:.8f}       {b['loss']:.8f}        {a['grad_norm']:.5f} / {b['grad_norm']:.5f}")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-4 * max(1, a["grad_norm"])
    assert one[-1]["loss"] < one[0]["loss"]  # it learns
    total, per_rank = info["parameters"], info["parameters_per_rank"]
    print("parameters:", total, "per rank:", per_rank)
    assert info["world_size"] == 2 and all(abs(n - total / 2) < 0.01 * total for n in per_rank)


def test_fsdp_stage0_contrastive_matches_one_process(tmp_path):
    "Stage 0's two losses (next-token + SigLIP sigmoid on the LLM's pooled states) under FSDP2 equal 1 process's."
    stage0 = world_stages(WORLD, tmp_path / "mix")[0]
    logs = {}
    for nproc in (1, 2):
        config = _config(tmp_path, f"stage0-{nproc}", stage="stage0", data=stage0.data, max_steps=3, max_length=256,
                         lr=dict(stage0.lr), template="plain", save_every=0)
        logs[nproc] = _run(config, nproc)
    print("\nstep  LM loss 1 / 2 processes       contrastive 1 / 2 processes")
    for a, b in zip(logs[1], logs[2]):
        print(f"{a['step']:>4}  {a['loss']:.7f} / {b['loss']:.7f}   {a['contrastive']:.7f} / {b['contrastive']:.7f}")
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["contrastive"] - b["contrastive"]) < 1e-5
    assert len(logs[1]) == 3 and all(r["contrastive"] > 0 for r in logs[1])


def test_kill_and_resume_continues_identically(two_process_run):
    tmp, reference, _ = two_process_run
    config = _config(tmp, "killed")
    latest = tmp / "killed" / "checkpoints" / "latest"
    proc = subprocess.Popen(_command(config, 2), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 300
    while not latest.exists() and proc.poll() is None and time.time() < deadline: time.sleep(0.05)
    still_running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)  # the whole session: torchrun and both ranks, no chance to clean up
    proc.wait()
    assert still_running and latest.exists(), "the run ended before its first checkpoint could be interrupted"
    logged_at_kill = read_log(tmp / "killed" / "log.jsonl")
    assert len(logged_at_kill) < STEPS
    print(f"\nkilled after checkpoint {latest.read_text()} with {len(logged_at_kill)} steps logged")
    resumed = _run(config, 2, "resume=true")
    assert json.loads((tmp / "killed" / "run.json").read_text())["world_size"] == 2
    print("step  uninterrupted   killed + resumed")
    for a, b in zip(reference, resumed): print(f"{a['step']:>4}  {a['loss']:.8f}      {b['loss']:.8f}")
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for a, b in zip(reference, resumed):
        assert abs(a["loss"] - b["loss"]) < 1e-6 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-5 * max(1, a["grad_norm"])
    assert (tmp / "killed" / "model" / "model.safetensors").exists()
