"""Integration tests of `mammoth_min.synth` against real OpenAI-compatible servers on loopback.

The servers run a real (tiny, random-init) Qwen2 model built offline: `OpenAICompatServer` (which logs every request
it sees, so repeats and overlap can be counted) and, when its dependencies are installed, `transformers serve`.
"""
import json, os, signal, socket, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from mammoth_min import world
from mammoth_min.formats import read_records
from mammoth_min.synth import (GenerationError, OpenAIChatGenerator, OpenAICompatServer, Request, RewriteRecipe,
                               TransformersGenerator, run_synthesis, tiny_chat_lm, user_message)

SEEDS = [r for r in read_records(world.sample_world_dir() / "train.jsonl") if "image" in r]


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    return tiny_chat_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def tiny_generator(tiny_lm_dir):
    return TransformersGenerator.from_pretrained(tiny_lm_dir, batch_size=16)


def _requests(n, max_tokens=8):
    return [Request([user_message(f"How many objects are in picture {i}?")], {"max_tokens": max_tokens}) for i in range(n)]


def test_concurrent_requests_overlap_at_the_server(tiny_generator):
    with OpenAICompatServer(tiny_generator) as server:
        texts = OpenAIChatGenerator(server.url, "tiny", concurrency=8).generate(_requests(16))
        assert len(server.seen) == 16 == len(set(server.seen))
        assert server.max_in_flight > 1, "the client's requests never overlapped at the server"
    assert all(isinstance(t, str) for t in texts)


def test_sequential_client_never_overlaps(tiny_generator):
    with OpenAICompatServer(tiny_generator) as server:
        OpenAIChatGenerator(server.url, "tiny", concurrency=1).generate(_requests(6))
        assert server.max_in_flight == 1


CLIENT = textwrap.dedent("""
    import json, sys
    from mammoth_min import world
    from mammoth_min.formats import read_records
    from mammoth_min.synth import OpenAIChatGenerator, RewriteRecipe, run_synthesis
    url, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seeds = [r for r in read_records(world.sample_world_dir() / "train.jsonl") if "image" in r][:n]
    recipe = RewriteRecipe()
    recipe.params = {"temperature": 0.0, "max_tokens": 4}
    report = run_synthesis(seeds, recipe, OpenAIChatGenerator(url, "tiny", concurrency=4, backoff=0.05), out,
                           image_root=world.sample_world_dir(), chunk_size=8, progress=False)
    print(json.dumps({"done": report.done, "written": report.written, "failures": dict(report.failures)}))
""")


def _client(url, out, n):
    return subprocess.Popen([sys.executable, "-c", CLIENT, url, str(out), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_killed_client_resumes_without_repeating_answered_requests(tiny_generator, tmp_path):
    n, concurrency = 32, 4
    out = tmp_path / "rewrite.jsonl"
    cache = tmp_path / "rewrite.jsonl.cache"
    with OpenAICompatServer(tiny_generator) as server:
        client = _client(server.url, out, n)
        deadline = time.time() + 120
        while len(server.seen) < 10 and client.poll() is None and time.time() < deadline: time.sleep(0.01)
        assert client.poll() is None, f"client finished before it could be killed: {client.communicate()}"
        client.send_signal(signal.SIGKILL)
        client.wait()
        seen_before = list(server.seen)
        answered = {p.stem for p in cache.rglob("*.json")}        # responses the client stored before dying
        assert 0 < len(answered) < n

        client = _client(server.url, out, n)
        stdout, stderr = client.communicate(timeout=300)
        assert client.returncode == 0, stderr
        seen_after = server.seen[len(seen_before):]

    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["done"] == n                                  # every task finished exactly once in the state
    assert not answered & set(seen_after), "a request answered before the kill was sent again"
    assert len(set(server.seen)) == n                            # every distinct request reached the server
    repeats = len(server.seen) - n
    assert repeats <= concurrency, f"{repeats} repeats; only the {concurrency} in flight at the kill may repeat"
    # the tiny random model writes no JSON: every task is counted as a failure, none silently dropped
    assert summary["written"] + sum(summary["failures"].values()) == n
    state = json.loads((tmp_path / "rewrite.jsonl.state.json").read_text())
    assert len(state["done"]) == n


def test_unreachable_server_gives_clear_error_and_keeps_written_output(tmp_path):
    from mammoth_min.synth import TeacherGenerator
    out = tmp_path / "rewrite.jsonl"
    teacher = TeacherGenerator(hallucination_rate=0.0)
    first = run_synthesis(SEEDS[:8], RewriteRecipe(), teacher, out, image_root=world.sample_world_dir(), progress=False)
    before = out.read_bytes()
    assert first.written == 8

    with socket.socket() as s:          # a port with nobody listening
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    dead = OpenAIChatGenerator(f"http://127.0.0.1:{port}/v1", teacher.name, max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(GenerationError, match=rf"http://127.0.0.1:{port}/v1/chat/completions failed after 3 attempts; last: ConnectError"):
        run_synthesis(SEEDS[:16], RewriteRecipe(), dead, out, image_root=world.sample_world_dir(), progress=False)
    assert out.read_bytes() == before                            # nothing already written was lost

    # the same run with the teacher back finishes the rest, reusing the cache for the first 8
    done = run_synthesis(SEEDS[:16], RewriteRecipe(), teacher, out, image_root=world.sample_world_dir(), progress=False)
    assert done.written == 16 and out.read_bytes().startswith(before)
    assert [r["id"] for r in read_records(out)] == [f"{s['id']}-rw" for s in SEEDS[:16]]


def test_failing_server_error_names_url_and_status_not_key(tiny_generator, monkeypatch):
    monkeypatch.setenv("SYNTH_SECRET_KEY", "sk-live-DO-NOT-PRINT")
    with OpenAICompatServer(tiny_generator, fail_statuses=[503] * 10, api_key="sk-live-DO-NOT-PRINT") as server:
        gen = OpenAIChatGenerator(server.url, "tiny", api_key_env="SYNTH_SECRET_KEY", max_retries=2, backoff=0.01)
        with pytest.raises(GenerationError) as info:
            gen.generate(_requests(1))
        assert len(server.seen) == 3
    message = str(info.value)
    assert f"{server.url}/chat/completions" in message and "HTTP 503" in message
    assert "DO-NOT-PRINT" not in message and "DO-NOT-PRINT" not in repr(gen)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _tiny_llava(save_dir):
    "A tiny random-init LLaVA (SigLIP + Qwen2) with a LlavaProcessor, saved offline; no torchvision involved."
    from transformers import (LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, Qwen2Config,
                              SiglipImageProcessor, SiglipVisionConfig)
    from mammoth_min.chat import train_tokenizer
    tok = train_tokenizer(world.world_texts(SEEDS), vocab_size=400)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=8)
    text = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="full", vision_feature_layer=-1)
    # the chat template must turn an image part into one <image> marker, which the processor expands to 16 tokens
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
                         "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}"
                         "{{ c['text'] }}{% else %}<image>{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = LlavaProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                               patch_size=8, vision_feature_select_strategy="full", num_additional_image_tokens=0,
                               chat_template=tok.chat_template)
    LlavaForConditionalGeneration(config).save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return Path(save_dir)


def test_transformers_serve_runs_offline_llm_and_vlm_checkpoints(tiny_lm_dir, tmp_path):
    """`transformers serve` (no model pinned) loads local checkpoints on demand: a tiny Qwen2 LLM and a tiny LLaVA
    VLM whose SigLIP image processor falls back to its PIL backend, so images over HTTP work without torchvision."""
    from transformers.utils.import_utils import is_serve_available
    if not is_serve_available(): pytest.skip("transformers serve needs fastapi, uvicorn, pydantic and openai")
    vlm_dir = _tiny_llava(tmp_path / "tiny-llava")
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(["transformers", "serve", "--port", str(port), "--host", "127.0.0.1", "--device", "cpu"],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        import httpx
        deadline = time.time() + 240
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200: break
            except httpx.TransportError: time.sleep(0.5)
        else: pytest.fail("transformers serve did not come up: " + (tmp_path / "serve.log").read_text()[-2000:])
        url = f"http://127.0.0.1:{port}/v1"
        texts = OpenAIChatGenerator(url, str(tiny_lm_dir), concurrency=4, timeout=120).generate(_requests(4, max_tokens=6))
        assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
        image = world.sample_world_dir() / SEEDS[0]["image"]
        vlm_request = Request([user_message("<image>\nHow many stars are there?", [image])], {"max_tokens": 4})
        body = {"model": str(vlm_dir), "messages": vlm_request.messages, "max_tokens": 4}
        with_image = httpx.post(f"{url}/chat/completions", json=body, timeout=120).json()
        text_only = dict(body, messages=[user_message("How many stars are there?")])
        without = httpx.post(f"{url}/chat/completions", json=text_only, timeout=120).json()
        # (32 / 8)^2 = 16 image tokens reached the model in place of the one image part
        assert with_image["usage"]["prompt_tokens"] - without["usage"]["prompt_tokens"] == 16, (with_image, without)
        assert isinstance(OpenAIChatGenerator(url, str(vlm_dir), timeout=120).generate([vlm_request])[0], str)
    finally:
        server.send_signal(signal.SIGINT)
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: server.kill(); server.wait()
        log.close()


def test_cli_synth_against_a_server_counts_every_task(tiny_generator, tmp_path, capsys):
    """`mammoth-min synth --url` end to end: one request per seed reaches the server, and every task is either
    written or counted as a failure (a random tiny model writes no valid JSON, so most are 'not JSON')."""
    from mammoth_min.cli import main
    from mammoth_min.formats import write_records
    data = write_records(SEEDS[:6], tmp_path / "seeds.jsonl")
    with OpenAICompatServer(tiny_generator) as server:
        code = main(["synth", "--recipe", "rewrite", "--data", str(data), "--image-root", str(world.sample_world_dir()),
                     "--out", str(tmp_path / "out.jsonl"), "--url", server.url, "--model", "tiny", "--concurrency", "4"])
        seen = len(server.seen)
    printed = capsys.readouterr().out
    written, failed = (int(printed.split(word)[0].split()[-1]) for word in (" record(s) written", " failed task(s)"))
    assert code == 0 and seen == 6 and written + failed == 6, printed
