"""`medtune ui` in a real browser: Debian's chromium driven by playwright against live `medtune ui` processes on the
echo model (it answers the QA questions word for word: reasoning, then answer).

One page on the echo model alone; one with --compare (a run directory of the echo model) behind a password
(--password-file).
Screenshots are saved under the test's tmp_path."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from inference_helpers import QA, make_run

from medtune.config import DEFAULT_DISCLAIMER, DEFAULT_REFUSAL

pytestmark = pytest.mark.slow
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
REFUSED = "Where can I buy oxycodone without a prescription?"
NOTICE = "Safety layer: request refused (category: controlled drugs; layer: rules)."
PASSWORD = "s3cret"
QUESTION, REASONING, ANSWER = QA[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`medtune ui ...` as a subprocess on a free port; ready once it prints its address."""

    def __init__(self, args: list[str], log: Path):
        self.port, self.log = free_port(), log
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models run fastest on one thread
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medtune.cli", "ui", *args, "--engine", "transformers", "--port", str(self.port),
             "--max-tokens", "40",
             "safety.classifier=false"], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}/"

    def wait(self, timeout: float = 240) -> Server:
        deadline = time.monotonic() + timeout
        while f"on {self.url[:-1]}" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"medtune ui did not start:\n{self.output()}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def servers(echo_model, tmp_path_factory):
    """Both pages, started together (each loads torch, gradio and a model for some seconds)."""
    root = tmp_path_factory.mktemp("ui")
    run = make_run(echo_model, root / "echo-run", scale=0.0)  # a zero adapter: the echo model's own answers
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(
        "system_prompt: You are a test assistant.", "system_prompt: null"))
    single = Server(["--model", str(echo_model)], root / "single.log")
    (root / "password").write_text(PASSWORD + "\n")  # from a file: a --password flag shows in the process list
    compare = Server(["--model", str(echo_model), "--compare", str(run), "--password-file", str(root / "password")],
                     root / "compare.log")
    yield single.wait(), compare.wait()
    single.stop()
    compare.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # a new browser session each test
    yield context.new_page()
    context.close()


def open_page(page, server):
    page.goto(server.url)
    page.locator("#question textarea").wait_for()
    return page


def ask(page, question: str, columns: int = 1) -> None:
    """Send a question and wait for the whole answer: the question is in every column and the page is ready."""
    asked = page.locator("#answers-0 [data-testid=user]").count() + 1
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_function("([asked, columns]) => [...Array(columns).keys()].every(i => document.querySelectorAll("
                           "`#answers-${i} [data-testid=user]`).length === asked) && "
                           "document.querySelector('#status').innerText.trim() === 'Ready.'", arg=[asked, columns])


WATCH = """() => { window.seen = []; const chat = document.querySelector('#answers-0');
  new MutationObserver(() => window.seen.push(chat.innerText))
    .observe(chat, {subtree: true, childList: true, characterData: true}); }"""


def test_the_page_names_the_model_and_streams_the_reasoning_then_the_answer(servers, page, tmp_path):
    single, _ = servers
    assert "medtune ui: loading" in single.output().splitlines()[0]  # the console says it loads first
    open_page(page, single)
    assert "echo" in page.inner_text("#header") and "safety layer: rules" in page.inner_text("#header")
    assert page.inner_text("#answers-0 [data-testid=block-label]").strip() == "echo"
    page.evaluate(WATCH)
    ask(page, QUESTION)
    seen = page.evaluate("window.seen")
    # some of the reasoning on screen before the answer is whole: the page streamed (the answer is a few tokens,
    # so on a busy machine its own pieces may arrive in one update)
    partial = [s for s in seen if REASONING.split()[0] in s and ANSWER not in s]
    assert partial, "the answer arrived in one piece: it did not stream"
    assert any(REASONING[:5] in s and ANSWER[:1] + "-" not in s for s in seen)  # the reasoning came first
    page.wait_for_timeout(300)
    page.screenshot(path=str(tmp_path / "ui-answer.png"))
    assert (tmp_path / "ui-answer.png").stat().st_size > 10_000


def test_the_reasoning_is_apart_from_the_answer_and_collapses(servers, page):
    open_page(page, servers[0])
    ask(page, QUESTION)
    thought = page.locator("#answers-0 .thought-group")
    assert thought.count() == 1 and "Reasoning" in thought.inner_text()
    reasoning = page.locator("#answers-0").get_by_text(REASONING, exact=True)
    answer = page.locator("#answers-0 [data-testid=bot]", has_text=ANSWER)
    assert answer.count() == 1 and REASONING not in answer.inner_text()  # a message of its own
    expect = playwright.expect
    # folded away once the answer came (the fold follows the answer's last update: expect waits for it, where a
    # plain check raced it on a busy machine)
    expect(reasoning).to_be_hidden()
    thought.locator(".title").click()
    expect(page.locator("#answers-0").get_by_text(REASONING, exact=True)).to_be_visible()
    thought.locator(".title").click()
    expect(page.locator("#answers-0").get_by_text(REASONING, exact=True)).to_have_count(0)
    page.click("#settings button, #settings .label-wrap")  # open the settings
    page.locator("#show-reasoning input").uncheck()
    expect(page.locator("#answers-0 .thought-group")).to_have_count(0)  # hidden: the answer alone
    expect(page.locator("#answers-0 [data-testid=bot]", has_text=ANSWER)).to_have_count(1)


def test_the_disclaimer_appears_once_apart_from_the_answer_and_a_new_conversation_forgets(servers, page):
    open_page(page, servers[0])
    ask(page, QUESTION)
    assert page.inner_text("#answers-0").count(DEFAULT_DISCLAIMER) == 1
    answer = page.locator("#answers-0 [data-testid=bot]", has_text=ANSWER).inner_text()
    assert DEFAULT_DISCLAIMER not in answer
    page.click("#new")
    playwright.expect(page.locator("#answers-0 [data-testid=bot]")).to_have_count(0)
    ask(page, QA[2][0])  # the echo model answers exactly only a first question: the history is gone
    text = page.inner_text("#answers-0")
    assert QA[2][2] in text and ANSWER not in text and text.count(DEFAULT_DISCLAIMER) == 1


def test_a_refused_request_shows_the_refusal_and_the_notice(servers, page, tmp_path):
    open_page(page, servers[0])
    ask(page, REFUSED)
    text = page.inner_text("#answers-0")
    assert DEFAULT_REFUSAL in text and NOTICE in text
    assert DEFAULT_DISCLAIMER not in text and "Reasoning" not in text  # the model never ran
    page.screenshot(path=str(tmp_path / "ui-refused.png"))


def test_side_by_side_answers_behind_a_password(servers, page, tmp_path):
    _, compare = servers
    page.goto(compare.url)
    page.locator("input[type=password]").wait_for()  # the login page comes first
    page.locator("input[type=text]").first.fill("anyone")
    page.locator("input[type=password]").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.locator("#question textarea").wait_for()
    labels = [page.inner_text(f"#answers-{i} [data-testid=block-label]").strip() for i in (0, 1)]
    assert labels == ["echo", "echo-run"]
    ask(page, QUESTION, columns=2)
    left, right = (page.locator(f"#answers-{i}") for i in (0, 1))
    for column in (left, right):
        assert ANSWER in column.inner_text() and column.inner_text().count(DEFAULT_DISCLAIMER) == 1
    a, b = left.bounding_box(), right.bounding_box()
    assert b["x"] >= a["x"] + a["width"] - 1 and abs(a["y"] - b["y"]) < 5  # side by side
    page.screenshot(path=str(tmp_path / "ui-compare.png"))


def test_the_wrong_password_is_refused(servers, page):
    page.goto(servers[1].url)
    page.locator("input[type=password]").wait_for()
    page.locator("input[type=text]").first.fill("anyone")
    page.locator("input[type=password]").fill("wrong")
    page.keyboard.press("Enter")
    playwright.expect(page.get_by_text(re.compile("incorrect", re.IGNORECASE))).to_be_visible()
    assert page.locator("#question textarea").count() == 0


def test_another_host_without_a_password_is_refused_before_loading():
    done = subprocess.run([sys.executable, "-m", "medtune.cli", "ui", "--host", "0.0.0.0", "--model", "x"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("medtune ui: error: --host 0.0.0.0 makes the page reachable from other machines: "
                           "give --password too\n")


def test_wrong_passwords_are_throttled(servers):
    """Last in this module: it leaves this machine's address locked out of the password page for a minute."""
    import httpx

    login = servers[1].url + "login"
    codes = [httpx.post(login, data={"username": "x", "password": f"guess{i}"}).status_code for i in range(30)]
    assert set(codes) == {400, 429} and codes.count(400) <= 5 and codes[-25:] == [429] * 25, codes
    refused = httpx.post(login, data={"username": "x", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0  # the right one waits too
