"""The chat demo in a real browser: headless Chromium driven by Playwright.

Uploads a held-out tiny-world image, asks its question, waits for the streamed answer to appear in the chat, asks a
follow-up (the first image stays in the conversation), and saves a screenshot: to $MAMMOTH_DEMO_SCREENSHOT if set
(`MAMMOTH_DEMO_SCREENSHOT=nbs/images/demo.png` makes the picture the demo chapter shows), else to pytest's tmp dir.
$MAMMOTH_DEMO_CKPT runs it against an existing checkpoint instead of a freshly trained tiny one.

Needs Debian's chromium (`apt-get update && apt-get install -y chromium`); Playwright's own browser download is not
used (no network).
"""
import os, re, shutil, time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get update && apt-get install -y chromium")
sync_api = pytest.importorskip("playwright.sync_api")

import torch
from PIL import Image

from mammoth_min import world
from mammoth_min.demo import launch_demo, tiny_demo_checkpoint
from mammoth_min.formats import IMAGE_TOKEN, read_records
from mammoth_min.model import generate

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MAX_NEW_TOKENS = 128  # the app's default setting
TRAIN_STEPS = 40  # enough for the tiny model to learn one record's answers, so the page shows words
ANSWER_TIMEOUT_MS = 90_000


def two_turn_record() -> dict:
    "Two held-out questions about one tiny-world image as one conversation: what the test asks in the browser."
    by_image = {}
    for r in read_records(world.sample_world_dir() / "test.jsonl"):
        if isinstance(r.get("image"), str): by_image.setdefault(r["image"], []).append(r)
    image, (a, b) = next((image, rs[:2]) for image, rs in by_image.items() if len(rs) >= 2)
    return {"id": "browser-test", "image": image, "conversations": a["conversations"] + [
        {"from": "human", "value": b["conversations"][0]["value"].replace(IMAGE_TOKEN, "").strip()}, b["conversations"][1]]}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    torch.set_num_threads(1)  # a tiny model on a shared machine: one thread is fastest
    ckpt = os.environ.get("MAMMOTH_DEMO_CKPT") or tiny_demo_checkpoint(
        tmp_path_factory.mktemp("demo") / "checkpoint", steps=TRAIN_STEPS, records=[two_turn_record()])
    demo = launch_demo(ckpt, block=False)
    yield demo
    demo.close()


@pytest.fixture
def page(app):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        yield page
        browser.close()


def _words(text: str) -> str:
    "Text as the chat shows it, without the markup and spacing Markdown rendering may change."
    return " ".join(re.findall(r"\w+", text))


def _expected(app, conversation: list[dict], image: str) -> str:
    chat = app.chat_fn
    answer = generate(chat.model, chat.processor, conversation, [Image.open(image).convert("RGB")], max_new_tokens=MAX_NEW_TOKENS)
    return answer or "(the model ended its answer without any text)"


def _send(page, text: str, files: list[str] = ()) -> None:
    if files: page.locator("input[type=file]").first.set_input_files(list(files))
    page.get_by_role("textbox").first.fill(text)
    page.keyboard.press("Enter")


def _wait_for_answer(page, n: int, expected: str) -> list[str]:
    "Wait until the n-th assistant message shows `expected`; return the texts it showed on the way."
    bot = page.locator(".bot-row").nth(n - 1)
    bot.wait_for(timeout=ANSWER_TIMEOUT_MS)
    seen, deadline = [], time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = bot.inner_text()
        if not seen or seen[-1] != text: seen.append(text)
        if _words(text) == _words(expected): return seen
        page.wait_for_timeout(50)
    raise AssertionError(f"assistant message {n} never showed {expected!r}; it showed {seen!r}")


def test_upload_ask_follow_up_and_screenshot(app, page, tmp_path):
    record = two_turn_record()
    image = str(world.sample_world_dir() / record["image"])
    question = record["conversations"][0]["value"].replace(IMAGE_TOKEN, "").strip()
    follow_up = record["conversations"][2]["value"]
    page.goto(app.local_url)
    page.get_by_role("textbox").first.wait_for()
    turns = [{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}]
    first = _expected(app, turns, image)
    assert _words(first), f"the checkpoint answers {first!r}: no words to look for in the page"
    _send(page, question, [image])
    shown = _wait_for_answer(page, 1, first)
    print(f"the first answer grew through {len(shown)} texts, from {shown[0]!r} to {shown[-1]!r}")
    assert page.locator(".user-row img").count() >= 1, "the uploaded image is not shown in the chat"

    turns += [{"from": "gpt", "value": first}, {"from": "human", "value": follow_up}]
    second = _expected(app, turns, image)
    _send(page, follow_up)
    _wait_for_answer(page, 2, second)
    sync_api.expect(page.get_by_role("textbox").first).to_be_editable(timeout=ANSWER_TIMEOUT_MS)  # ready for the next message

    shot = Path(os.environ.get("MAMMOTH_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 0
