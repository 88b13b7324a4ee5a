"""The chat demo served on loopback and driven through its named API with `gradio_client`.

A real tiny checkpoint (trained a few steps on the shipped tiny world) behind the real Gradio server: twenty clients at
once all get the answer they would get alone, one model call at a time; refused uploads get a clear message and the
app keeps serving.
"""
import os, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
import torch
from gradio_client import Client, handle_file
from PIL import Image

from mammoth_min.demo import DEMO_MAX_PIXELS, check_upload, demo_examples, launch_demo, tiny_demo_checkpoint
from mammoth_min.formats import IMAGE_TOKEN
from mammoth_min.model import generate

MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    torch.set_num_threads(1)  # a tiny model on a shared machine: one thread is fastest
    ckpt = tiny_demo_checkpoint(tmp_path_factory.mktemp("demo") / "checkpoint", steps=0)  # random init: the plumbing, not the quality, is under test
    demo = launch_demo(ckpt, block=False)
    yield demo
    demo.close()


def _client(url: str) -> Client:
    return Client(url, verbose=False, httpx_kwargs={"timeout": 120})  # a loaded CI machine can be slow to answer


def _ask(client: Client | str, message: dict) -> str:
    client = _client(client) if isinstance(client, str) else client
    files = [handle_file(f) for f in message["files"]]
    return client.predict(message={"text": message["text"], "files": files}, api_name="/chat", max_new_tokens=MAX_NEW_TOKENS)


def _alone(app, message: dict) -> str:
    "The greedy answer the model gives to `message` called directly, without the server."
    chat = app.chat_fn
    images = [Image.open(f).convert("RGB") for f in message["files"]]
    turn = {"from": "human", "value": f"{IMAGE_TOKEN}\n" * len(images) + message["text"]}
    return generate(chat.model, chat.processor, [turn], images, max_new_tokens=MAX_NEW_TOKENS) or \
        "(the model ended its answer without any text)"


def test_twenty_concurrent_clients_all_answered_one_model_call_at_a_time(app):
    examples = demo_examples()
    messages = [{"text": f"{examples[i % 4]['text']} ({i})", "files": examples[i % 4]["files"]} for i in range(20)]
    expected = [_alone(app, m) for m in messages]
    clients = [_client(app.local_url) for _ in messages]
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(_ask, clients, messages))
    assert answers == expected
    assert app.chat_fn.max_in_flight == 1


def test_non_image_uploads_get_a_message_and_the_app_keeps_serving(app, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a picture")
    fake_png = tmp_path / "fake.png"  # a name that says image, bytes that do not
    fake_png.write_bytes(b"hello, I am text")
    for path in (text_file, fake_png):
        reply = _ask(app.local_url, {"text": "What is this?", "files": [str(path)]})
        assert reply == check_upload(path) == f"Cannot use the upload {path.name!r}: not an image: PIL cannot identify {path.name!r}."
    good = demo_examples()[0]
    assert _ask(app.local_url, good) == _alone(app, good)


def test_too_many_pixels_gets_a_message_and_the_app_keeps_serving(app, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (3000, 2000), "white").save(huge)  # small on disk, 6 megapixels
    reply = _ask(app.local_url, {"text": "Describe it", "files": [str(huge)]})
    assert reply == (f"Cannot use the upload 'huge.png': image is 3000x2000 = 6000000 pixels, over the limit of "
                     f"{DEMO_MAX_PIXELS} (decompression bomb?).")
    good = demo_examples()[1]
    assert _ask(app.local_url, good) == _alone(app, good)


def test_oversized_upload_is_refused_and_the_app_keeps_serving(app, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(6 * 1024 * 1024))  # over MAX_FILE_SIZE (5 MB)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 5242880 bytes"):  # gradio_client checks first
        _ask(app.local_url, {"text": "Describe it", "files": [str(big)]})
    # a client that does not check is refused by the server
    refused = httpx.post(f"{app.local_url}gradio_api/upload", files={"files": ("big.png", big.read_bytes(), "image/png")}, timeout=120)
    assert (refused.status_code, refused.text) == (413, "File size exceeded maximum allowed size of 5242880 bytes.")
    good = demo_examples()[2]
    assert _ask(app.local_url, good) == _alone(app, good)
