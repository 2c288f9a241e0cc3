"""The /ui/ page in headless Chromium against `rag-splade serve` on loopback, with the
tiny offline models and an API key: what the page draws is what the REST API answered.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them with
`fonts-noto-cjk`); without them the tests skip, saying so, except under CI (`CI` set),
where a missing browser fails. Screenshots go to `test-artifacts/` (or
`$RAG_SPLADE_TEST_ARTIFACTS`); `docs/img/ui.png` is the side-by-side one.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag_splade.keys import new_key
from rag_splade.sample import sample_documents

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RAG_SPLADE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
QUERY = "フィルターのお手入れ方法は？"
HOSTILE = (
    '<script>window.__owned = 1</script>\u202e"フィルター"&の'
    '<img src=x onerror="window.__owned=2">掃除'
)
EXTRA = [
    {
        "id": "mahler",
        "text": "マーラーの交響曲を聴きながらビールを飲む。",
        "metadata": {"title": "音楽", "set": "sample"},
    },
    {
        "id": "astral",
        "text": "𠮷野家😀のフィルターを洗う。",
        "metadata": {"title": "掃除", "set": "sample"},
    },
    {"id": "hostile", "text": HOSTILE, "metadata": {"title": "<b>太字</b>"}},
]
WAIT = 300  # seconds; only so that a hang fails instead of stalling (never a timing check)


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the dev extra)")
    if missing:
        message = (
            f"browser tests need {', '.join(missing)}: apt-get install chromium chromium-driver "
            "fonts-noto-cjk (as .ci/run does) and pip install -e '.[dev]'"
        )
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must run them")
        pytest.skip(message)
    assert chromium and driver
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    return _browser()


@pytest.fixture(scope="module")
def server(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    """`rag-splade serve` on loopback with one API key and about 60 chunks."""
    folder = tmp_path_factory.mktemp("ui")
    key = new_key()
    port = _free_port()
    env = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_INDEX_PATH": str(folder / "index"),
        "RAG_SPLADE_DEVICE": "cpu",
        "RAG_SPLADE_API_KEY": key,
    }
    env.pop("RAG_SPLADE_QDRANT_URL", None)
    env.pop("RAG_SPLADE_KEYS_FILE", None)
    command = [str(Path(sys.executable).with_name("rag-splade")), "serve", "--port", str(port)]
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
                assert ready.json()["status"] != "failed", (folder / "serve.log").read_text()
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (folder / "serve.log").read_text()
            time.sleep(0.2)
        else:
            raise AssertionError(f"not ready after {WAIT} s: {(folder / 'serve.log').read_text()}")
        docs = [
            {"id": d.id, "text": d.text, "metadata": {**d.metadata, "set": "sample"}}
            for d in sample_documents()[:56]
        ]
        r = httpx.post(
            f"{base}/v1/documents",
            json={"documents": docs + EXTRA},
            headers={"x-api-key": key},
            timeout=WAIT,
        )
        assert r.status_code == 200, r.text
        assert r.json()["chunks"] >= 50, "the page must be tried with 50 hits"
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def driver(browser_paths):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--lang=ja",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    browser.set_script_timeout(WAIT)
    yield browser
    browser.quit()


def api_search(server, **body: Any) -> dict[str, Any]:
    base, key = server
    r = httpx.post(f"{base}/v1/search", json=body, headers={"x-api-key": key}, timeout=WAIT)
    assert r.status_code == 200, r.text
    return r.json()


def open_page(driver, server) -> None:
    base, _ = server
    driver.get(f"{base}/ui")  # redirected to /ui/
    wait_for(driver, "return 'ready' in document.body.dataset")
    driver.get_log("browser")  # start each test with an empty console


def wait_for(driver, script: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(script))


def run_search(driver, key: str, *, query: str = QUERY, top_k: int = 5, **controls: Any) -> None:
    """Type into the form as a person would, press Search, wait until the page is done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def field(id_: str):
        return driver.find_element(By.ID, id_)

    for id_, text in (("api-key", key), ("query", query), ("top-k", str(top_k))):
        field(id_).clear()
        field(id_).send_keys(text)
    field("filters").clear()
    if controls.get("filters"):
        field("filters").send_keys(controls["filters"])
    if controls.get("compare") != field("compare").is_selected():
        field("compare").click()
    for id_, value in controls.items():
        if id_.startswith(("mode-", "fusion-")):
            Select(field(id_)).select_by_value(value)
    before = driver.execute_script("return Number(document.body.dataset.searches || 0)")
    field("search").click()
    wait_for(driver, f"return Number(document.body.dataset.searches || 0) > {before}")


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 40, 2400))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    assert path.stat().st_size > 10_000
    return path


# What the page drew, read back in one script: for each hit card, its id, passage text, the
# marks (text, kind, classes, covered spans), expansion chips and bar segments.
READ_HITS = """
const column = document.getElementById(arguments[0]);
return [...column.querySelectorAll('li.rs-hit')].map((hit) => ({
  id: hit.dataset.id,
  doc_id: hit.dataset.docId,
  passage: hit.querySelector('.rs-passage').textContent,
  marks: [...hit.querySelectorAll('.rs-passage mark')].map((m) => ({
    text: m.textContent, kind: m.dataset.kind, classes: [...m.classList],
    spans: m.dataset.spans, border: getComputedStyle(m).borderBottomStyle,
  })),
  chips: [...hit.querySelectorAll('.rs-expansions li[data-kind]')].map((c) => ({
    text: c.textContent, classes: [...c.classList], border: getComputedStyle(c).borderTopStyle,
    terms: c.dataset.terms,
  })),
  segments: [...hit.querySelectorAll('.rs-bar .rs-seg')].map((s) => Number(s.dataset.contribution)),
  change: hit.querySelector('.rs-change')?.textContent ?? null,
}));
"""


def check_hits_match_the_api(drawn: list[dict], answer: dict[str, Any]) -> set[str]:
    """Every hit drawn in API order; every mark at an API span with that span's text; the
    bars add up to sparse_score. Returns the match kinds seen."""
    hits = answer["hits"]
    assert [h["id"] for h in drawn] == [h["id"] for h in hits]
    kinds: set[str] = set()
    for card, hit in zip(drawn, hits, strict=True):
        text = hit["text"]  # a Python str on both sides: offsets are code points
        assert card["passage"] == text
        terms = hit["explanation"]["terms"]
        covered: dict[tuple[int, int, int], str] = {}
        for mark in card["marks"]:
            entries = [tuple(map(int, e.split(":"))) for e in mark["spans"].split()]
            for entry in entries:
                covered[entry] = covered.get(entry, "") + mark["text"]
            shown = {terms[i]["kind"] for i, _, _ in entries}
            assert mark["kind"] == ("whole" if "whole" in shown else "partial")
            assert f"rs-{mark['kind']}" in mark["classes"]
            kinds.add(mark["kind"])
        expected = {(i, s, e) for i, t in enumerate(terms) for s, e in t["spans"]}
        assert set(covered) == expected, hit["id"]
        for (i, s, e), shown_text in covered.items():
            assert shown_text == text[s:e], (hit["id"], terms[i]["term"], s, e)
        for chip in card["chips"]:
            term = terms[int(chip["terms"])]
            assert term["kind"] == "expansion" and chip["text"] == term["term"]
            assert "rs-expansion" in chip["classes"]
            kinds.add("expansion")
        assert math.isclose(sum(card["segments"]), hit["sparse_score"], rel_tol=1e-4, abs_tol=1e-6)
    return kinds


def test_the_page_is_served_without_a_key_and_linked_from_docs(server) -> None:
    base, _ = server
    r = httpx.get(f"{base}/ui")
    assert r.status_code == 307 and r.headers["location"] == "ui/"
    page = httpx.get(f"{base}/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body>")[0]  # no CDN: every asset is ours
    for asset in ("ui.js", "ui.css", "views.css"):
        assert httpx.get(f"{base}/ui/{asset}").status_code == 200
    for path in ("ui/", "ui/ui.js", "ui/views.css"):  # HEAD, as link checkers and probes ask
        head = httpx.head(f"{base}/{path}")
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == httpx.get(f"{base}/{path}").headers["content-type"]
    assert httpx.post(f"{base}/v1/search", json={"query": "山"}).status_code == 401
    assert "(../ui/)" in httpx.get(f"{base}/openapi.json").json()["info"]["description"]


def test_a_search_draws_what_the_api_answered(driver, server) -> None:
    from selenium.webdriver.common.by import By

    _, key = server
    open_page(driver, server)
    run_search(driver, key, top_k=50)
    assert not driver.find_element(By.ID, "message").is_displayed()
    answer = api_search(server, query=QUERY, top_k=50)
    assert len(answer["hits"]) == 50
    drawn = driver.execute_script(READ_HITS, "column-a")
    kinds = check_hits_match_the_api(drawn, answer)
    assert kinds == {"whole", "partial", "expansion"}, "the data must show all three kinds"

    # the kinds differ by line style too, not by colour alone
    marks = [m for card in drawn for m in card["marks"] if "rs-function-word" not in m["classes"]]
    styles = {m["kind"]: m["border"] for m in marks}
    chip_style = {c["border"] for card in drawn for c in card["chips"]}
    assert styles == {"whole": "solid", "partial": "dotted"} and chip_style == {"dashed"}

    # an astral character (𠮷, 😀) before a match does not shift it
    [astral] = [c for c in drawn if c["doc_id"] == "astral"]
    assert "フィルター" in [m["text"] for m in astral["marks"]]

    # hostile passage and metadata stay text
    owned = driver.execute_script(
        "return [window.__owned, document.querySelectorAll('#results script, #results img,"
        " #results b').length]"
    )
    assert owned == [None, 0]

    # the query's terms, expansions marked
    chart = driver.execute_script(
        "return [...document.querySelectorAll('#query-terms li')].map("
        "(li) => [li.dataset.term, li.classList.contains('rs-expansion')])"
    )
    wire = sorted(answer["query_terms"], key=lambda t: -t["weight"])
    assert chart == [[t["term"], t["expansion"]] for t in wire]

    context = driver.find_element(By.ID, "context-a").get_attribute("textContent")
    assert context == answer["context"]
    assert console_errors(driver) == []
    screenshot(driver, "ui-50-hits.png")


def test_the_keyboard_alone_searches_and_focus_shows_a_terms_numbers(driver, server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, key = server
    open_page(driver, server)
    driver.find_element(By.ID, "api-key").send_keys(key)
    query = driver.find_element(By.ID, "query")
    query.clear()
    query.send_keys(QUERY, Keys.ENTER)  # Enter in the query field submits the search
    wait_for(driver, "return Number(document.body.dataset.searches || 0) > 0")
    assert driver.find_elements(By.CSS_SELECTOR, "#hits-a li.rs-hit")
    shown = driver.execute_script(
        """
        const mark = document.querySelector('#hits-a .rs-passage mark.rs-whole');
        mark.focus();
        return [document.activeElement === mark, getComputedStyle(mark, '::after').content,
                mark.getAttribute('aria-label')];
        """
    )
    focused, tip, label = shown
    assert focused and "query" in tip and "document" in tip and "=" in tip
    assert label and label.split("\n")[0] in tip
    # every control has a label
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter((c) => !c.labels || !c.labels.length).map((c) => c.id)"
    )
    assert unlabelled == []
    assert console_errors(driver) == []


def test_two_settings_side_by_side_show_rank_changes(driver, server) -> None:
    from selenium.webdriver.common.by import By

    _, key = server
    open_page(driver, server)
    filters = '{"set": "sample"}'  # through the filters control: no hostile passage here
    controls = {"mode-a": "hybrid", "mode-b": "sparse", "filters": filters}
    run_search(driver, key, top_k=3, compare=True, **controls)
    assert driver.find_element(By.ID, "column-b").is_displayed()
    a = api_search(server, query=QUERY, top_k=3, mode="hybrid", filters={"set": "sample"})
    b = api_search(server, query=QUERY, top_k=3, mode="sparse", filters={"set": "sample"})
    assert "hostile" not in {h["doc_id"] for h in a["hits"] + b["hits"]}
    drawn_a = driver.execute_script(READ_HITS, "column-a")
    drawn_b = driver.execute_script(READ_HITS, "column-b")
    check_hits_match_the_api(drawn_a, a)
    check_hits_match_the_api(drawn_b, b)
    ranks_b = {h["id"]: n for n, h in enumerate(b["hits"], start=1)}
    for n, card in enumerate(drawn_a, start=1):
        other = ranks_b.get(card["id"])
        assert card["change"] == ("only in A" if other is None else _change(n, other))
    assert console_errors(driver) == []
    path = screenshot(driver, "ui.png")
    assert path.exists()


def _change(a: int, b: int) -> str:
    arrow = f" ↑{a - b}" if a > b else f" ↓{b - a}" if a < b else " ="
    return f"A #{a} → B #{b}{arrow}"


def test_rerank_is_not_offered_by_a_service_without_a_reranker(driver, server) -> None:
    from selenium.webdriver.common.by import By

    _, key = server
    open_page(driver, server)
    boxes = [driver.find_element(By.ID, id_) for id_ in ("rerank-a", "rerank-b")]
    assert boxes[0].is_enabled()  # before connecting, the page cannot know
    boxes[0].click()
    run_search(driver, key, compare=True)
    # the ticked box is not dropped quietly: that search stops and says why
    message = driver.find_element(By.ID, "message")
    assert message.is_displayed() and "no reranker" in message.text
    assert driver.find_elements(By.CSS_SELECTOR, "#hits-a li.rs-hit") == []
    for name, box in zip("ab", boxes, strict=True):
        assert not box.is_enabled() and not box.is_selected()
        note = driver.find_element(By.ID, f"rerank-note-{name}")
        assert note.is_displayed() and "no reranker" in note.text
        assert box.get_attribute("aria-describedby") == note.get_attribute("id")
    run_search(driver, key, compare=True)  # again: it runs, without rerank
    assert not message.is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "#hits-a li.rs-hit")
    assert console_errors(driver) == []


def test_a_wrong_key_says_so(driver, server) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, server)
    run_search(driver, "not-the-key")
    message = driver.find_element(By.ID, "message")
    assert message.is_displayed() and "refused this API key (401)" in message.text
    assert driver.find_elements(By.CSS_SELECTOR, "#hits-a li.rs-hit") == []
    # the browser logs the refused request itself; nothing else may be an error
    errors = [e for e in console_errors(driver) if "401" not in e["message"]]
    assert errors == []


def test_bad_filters_are_named_before_anything_is_sent(driver, server) -> None:
    from selenium.webdriver.common.by import By

    _, key = server
    open_page(driver, server)
    run_search(driver, key, filters="[1, 2]")
    message = driver.find_element(By.ID, "message").text
    assert "filters must be a JSON object" in message
    run_search(driver, key, filters="{source: faq}")
    assert "filters is not JSON" in driver.find_element(By.ID, "message").text
    assert console_errors(driver) == []
