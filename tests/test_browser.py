"""A real browser on the page and the docs: Playwright driving Debian's chromium.

The server is the app with the bundled model and the sample catalogue, served over HTTP from a
thread of this test process. `make test` installs chromium with apt when it runs as root; without
it these tests skip with one line saying why (on CI, where they must run, they fail instead).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from recommender.api import EXTENSION, create_app

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DIARY = "오늘은 정말 행복한 하루였다. 친구들과 오랜만에 만나서 많이 웃었다."


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (make test installs it with apt when run as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run on CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Server:
    """An app served over HTTP on a free local port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(browser) -> Iterator[Server]:
    app = create_app()  # the bundled model and the sample catalogue's index
    assert app.extensions[EXTENSION].wait(timeout=120)
    assert app.extensions[EXTENSION].service is not None, app.extensions[EXTENSION].error
    running = Server(app)
    yield running
    running.close()


@pytest.fixture()
def page(browser, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ko-KR")
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")
    # Ready once the emotion names and limits are read from the OpenAPI document.
    page.wait_for_function("document.querySelectorAll('#target option').length === 7")
    yield page
    context.close()
    outside = [url for url in requests if not url.startswith(server.url)]
    assert not outside, f"requests left the server: {outside}"


def titles(page) -> list[str]:
    return page.locator("#tracks h3").all_inner_texts()


def submit_diary(page, text: str = DIARY) -> list[str]:
    page.get_by_label("오늘 하루는 어땠나요?").fill(text)
    page.get_by_role("button", name="노래 추천받기").click()
    page.locator("#tracks li").first.wait_for()
    return titles(page)


def screenshot(page, name: str, record_property) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    record_property("screenshot", str(path))
    print(f"browser screenshot: {path}")
    return path


def test_write_a_diary_line_and_see_the_reading_and_tracks(page, record_property):
    page.get_by_label("오늘 하루는 어땠나요?").fill(DIARY)
    page.get_by_label("오늘 하루는 어땠나요?").press("Control+Enter")
    page.locator("#tracks li").first.wait_for()
    assert page.locator("#status").inner_text() == "노래 10곡을 찾았어요."
    songs = page.locator("#tracks li")
    assert songs.count() == 10
    for i in range(10):
        song = songs.nth(i)
        assert song.locator("h3").inner_text().strip()
        assert song.locator(".meta").inner_text().strip()  # artist · genre · year
        assert re.fullmatch(r"일치도 [01]\.\d\d", song.locator(".score").inner_text())
        assert "어울려요" in song.locator(".why").inner_text()  # the explanation, in Korean
    bars = page.locator("#bars li")
    assert bars.locator(".name").all_inner_texts() == [
        "분노",
        "불안",
        "당황",
        "행복",
        "상처",
        "슬픔",
    ]
    values = [int(v.rstrip("%")) for v in bars.locator(".value").all_inner_texts()]
    assert abs(sum(values) - 100) <= 3
    assert page.locator("#bars li.top .name").inner_text() == "행복"
    # Phone width: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "page.png", record_property)


def test_changing_the_target_mood_and_filters_changes_the_list(page):
    before = submit_diary(page)
    page.get_by_label("어떤 기분의 노래를 들을까요?").select_option(label="슬픔")
    slider = page.get_by_label("그 기분 쪽으로 얼마나 옮길까요?")
    assert slider.is_enabled()
    slider.press("End")  # the keyboard moves it to 100 %
    page.wait_for_function("document.querySelector('#results-note').textContent.includes('100%')")
    after = titles(page)
    assert after != before
    assert page.locator("#results-note").inner_text().startswith("슬픔 쪽으로 100% 옮긴 기분")
    assert page.locator("#bars li.top .name").inner_text() == "행복"  # the text's own reading

    page.get_by_label("장르").select_option("민요")
    page.wait_for_function(
        "[...document.querySelectorAll('#tracks .meta')].every(m => m.textContent.includes('민요'))"
    )
    assert titles(page) != after
    page.get_by_label("이 해부터").fill("2000")
    page.get_by_label("이 해부터").press("Tab")
    page.wait_for_function("document.querySelector('#results-note').textContent.length > 0")
    page.wait_for_function(
        "[...document.querySelectorAll('#tracks .meta')].every("
        "m => Number(m.textContent.split(' · ').pop()) >= 2000)"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "먼저 오늘 하루를 몇 줄 적어 주세요"),
        ("   ", "먼저 오늘 하루를 몇 줄 적어 주세요"),
        ("가" * 5001, "글이 너무 길어요: 지금 5,001자예요. 5,000자까지 쓸 수 있어요."),
    ],
)
def test_bad_text_is_an_error_in_words(page, text: str, words: str):
    page.get_by_label("오늘 하루는 어땠나요?").fill(text)
    page.get_by_role("button", name="노래 추천받기").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert words in alert.inner_text()
    assert page.locator("#results").is_hidden()


def test_the_server_refusing_a_text_is_shown_in_words(page):
    # Past the page's own check: the server's 400 is put in words too.
    page.evaluate("state.maxLength = 1e9")
    page.get_by_label("오늘 하루는 어땠나요?").fill("가" * 5001)
    page.get_by_role("button", name="노래 추천받기").click()
    page.get_by_role("alert").wait_for()
    assert "글이 너무 길어요. 5,000자까지 쓸 수 있어요." in page.get_by_role("alert").inner_text()


def test_a_service_still_loading_is_shown_in_words(browser):
    app = create_app(service=SimpleNamespace(classifier=None))  # type: ignore[arg-type]
    # A slot with nothing loaded yet and no error: what every worker holds while loading.
    app.extensions[EXTENSION] = SimpleNamespace(service=None, classifier=None, error=None)
    loading = Server(app)
    context = browser.new_context(locale="ko-KR")
    try:
        page = context.new_page()
        page.goto(loading.url + "/")
        page.get_by_label("오늘 하루는 어땠나요?").fill(DIARY)
        page.get_by_role("button", name="노래 추천받기").click()
        page.get_by_role("alert").wait_for()
        assert "서비스가 아직 준비 중이에요" in page.get_by_role("alert").inner_text()
    finally:
        context.close()
        loading.close()


def test_the_page_is_usable_by_keyboard(page):
    expected = [
        "skip", "diary", "target", "genre", "year-min", "year-max", "focus-end", "submit",
        "playlist-button",
    ]  # fmt: skip
    focused = []
    for _ in expected:
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate("document.activeElement.id || document.activeElement.className")
        )
    assert focused == expected  # the shift slider is skipped until a mood is chosen
    for _ in range(expected.index("playlist-button") - expected.index("diary")):
        page.keyboard.press("Shift+Tab")
    page.keyboard.type(DIARY)
    page.keyboard.press("Control+Enter")
    page.locator("#tracks li").first.wait_for()
    assert page.locator("#tracks li").count() == 10


def test_sentence_arc_similar_songs_and_a_playlist(page, record_property):
    day = "아침엔 면접 때문에 너무 떨리고 불안했다. 그런데 합격 연락을 받고 정말 행복했다."
    submit_diary(page, day)
    arc = page.locator("#sentences > li")
    assert arc.count() == 2
    assert arc.nth(0).inner_text().startswith("아침엔 면접 때문에")
    assert page.locator("#sentences .dominant").count() >= 1
    assert "★" in page.locator("#sentences .dominant .mood").first.inner_text()

    first = page.locator("#tracks > li").first
    first.get_by_role("button", name="비슷한 노래").click()
    similar = first.locator(".similar-list li")
    similar.first.wait_for()
    assert similar.count() == 5
    assert first.get_by_role("button", name="비슷한 노래").get_attribute("aria-expanded") == "true"
    shown = first.locator("h3").inner_text()
    assert all(not item.startswith(f"{shown} — ") for item in similar.all_inner_texts())

    page.get_by_label("어떤 기분의 노래를 들을까요?").select_option("happy")
    page.get_by_role("button", name="기분 전환 플레이리스트 만들기").click()
    steps = page.locator("#playlist-tracks > li")
    steps.first.wait_for()
    assert steps.count() == 8
    assert page.locator("#status").inner_text() == "플레이리스트 8곡을 만들었어요."
    assert [steps.nth(i).locator(".step").inner_text().split("단계")[0] for i in range(8)] == [
        str(i) for i in range(1, 9)
    ]
    assert "행복 100%" in steps.nth(7).locator(".step").inner_text()
    assert "행복까지" in page.locator("#playlist-note").inner_text()
    screenshot(page, "page-playlist.png", record_property)


def test_docs_try_post_recommend(browser, server: Server, record_property):
    context = browser.new_context(locale="ko-KR")
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(server.url + "/docs")
        block = page.locator("#operations-default-recommend")
        block.locator(".opblock-summary").click()
        # tryItOutEnabled: the request body is already editable, filled with the example.
        block.get_by_role("button", name="Execute").click()
        status = block.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip().startswith("200")
        assert "tracks" in block.locator(".live-responses-table").inner_text()
        screenshot(page, "docs.png", record_property)
    finally:
        context.close()
    assert any(url == server.url + "/recommend" for url in requests)
    outside = [url for url in requests if not url.startswith(server.url)]
    assert not outside, f"requests left the server: {outside}"
