"""Hot index swaps (issue 11's row 9), /ready without paths (row 11), the work budget, request
ids, structured logs and Prometheus metrics; in process, then once under gunicorn under load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from recommender.api import EXTENSION, create_app
from recommender.index_manifest import VECTORS
from recommender.observability import RequestIdFilter, formatter
from recommender.reloading import IndexWatcher, manifest_digest
from recommender.service import Recommender
from tests.catalogue import catalogue_rows, load_index, make_index, write_catalogue
from tests.serving import serve

TEXT = "오늘은 정말 행복한 하루였다"


def renamed_rows(prefix: str) -> list[dict]:
    """The test catalogue under other track ids (a rebuilt catalogue)."""
    return [{**row, "track_id": f"{prefix}-{row['track_id']}"} for row in catalogue_rows()]


def rebuild(index: Path, classifier, rows: list[dict]) -> None:
    """Rebuild an index in place, as `recommender index` into the served directory does."""
    from recommender.indexing import build_index

    catalogue = write_catalogue(
        index.parent / f"rebuild-{len(os.listdir(index.parent))}.jsonl", rows
    )
    build_index(catalogue, index, classifier)


def broken_rebuild(index: Path, classifier, rows: list[dict]) -> None:
    """A rebuilt index whose vectors were damaged after writing, swapped in by renames."""
    from recommender.indexing import build_index

    staging = index.parent / "broken"
    build_index(write_catalogue(index.parent / "broken.jsonl", rows), staging, classifier)
    data = bytearray((staging / VECTORS).read_bytes())
    data[-3] ^= 0x01
    (staging / VECTORS).write_bytes(bytes(data))
    old = index.parent / "previous"
    index.rename(old)
    staging.rename(index)
    shutil.rmtree(old)


def track_ids(service: Recommender) -> set[str]:
    return set(service.index.tracks.column("track_id").to_pylist())


# --- hot swaps, in process ---------------------------------------------------------------------


@pytest.fixture()
def served(tmp_path: Path, fake_classifier):
    """An app serving an index, and a watcher on that index as `recommender serve` runs one."""
    index = make_index(tmp_path, fake_classifier)
    app = create_app(service=Recommender(fake_classifier, load_index(index, fake_classifier)))
    slot = app.extensions[EXTENSION]
    watcher = IndexWatcher(
        index,
        digest=manifest_digest(index),
        interval=60,
        load=lambda path: Recommender.index_for(fake_classifier, path),
        swap=slot.swap,
    )
    return app, slot, watcher, index


def test_a_rebuilt_index_is_swapped_in_while_requests_in_flight_keep_the_old(
    served, fake_classifier
):
    app, slot, watcher, index = served
    before = slot.service
    assert watcher.check() is None  # nothing changed
    rebuild(index, fake_classifier, renamed_rows("v2"))
    assert watcher.check() == "swapped" and watcher.digest == manifest_digest(index)
    assert slot.index_manifest == manifest_digest(index)
    assert slot.service is not before and slot.service.classifier is before.classifier
    assert all(t.startswith("v2-") for t in track_ids(slot.service))
    assert not any(t.startswith("v2-") for t in track_ids(before))  # in-flight requests' copy
    body = app.test_client().post("/recommend", json={"text": TEXT, "k": 3}).get_json()
    assert all(t["track_id"].startswith("v2-") for t in body["tracks"])


def test_a_broken_rebuild_is_refused_and_the_old_index_keeps_serving(
    served, fake_classifier, caplog
):
    app, slot, watcher, index = served
    before = slot.service
    broken_rebuild(index, fake_classifier, renamed_rows("bad"))
    with caplog.at_level(logging.ERROR, logger="recommender.reloading"):
        assert watcher.check() == "refused"
    assert "vectors.npy fails its checksum; the previous one serves" not in caplog.text
    assert "was refused; the previous one serves: index 'index': vectors.npy fails" in caplog.text
    assert slot.service is before
    assert watcher.check() is None  # the same manifest is not tried again
    assert app.test_client().post("/recommend", json={"text": TEXT}).status_code == 200
    rebuild(index, fake_classifier, renamed_rows("v3"))  # a good rebuild after it
    assert watcher.check() == "swapped" and all(
        t.startswith("v3-") for t in track_ids(slot.service)
    )


def test_an_index_built_with_another_model_is_refused(served, tiny_classifier):
    _, slot, watcher, index = served
    before = slot.service
    rebuild(index, tiny_classifier, renamed_rows("other"))
    assert watcher.check() == "refused" and slot.service is before


# --- /ready, budget, request ids, logs, metrics -------------------------------------------


@pytest.fixture()
def client(tmp_path: Path, fake_classifier):
    index = make_index(tmp_path, fake_classifier)
    service = Recommender(fake_classifier, load_index(index, fake_classifier))
    return create_app({"CLASSIFY_BUDGET": 100}, service=service).test_client()


def test_ready_names_the_model_and_the_index_without_paths(
    tmp_path: Path, tiny_model_dir, tiny_classifier
):
    index = make_index(tmp_path, tiny_classifier)
    app = create_app({"MODEL": str(tiny_model_dir), "INDEX": str(index), "DEVICE": "cpu",
                      "RELOAD_INTERVAL": 0, "SENTENCES": "lazy"}, background=False)  # fmt: skip
    body = app.test_client().get("/ready").get_json()
    assert body["model"] == tiny_model_dir.name
    assert body["index_manifest"] == manifest_digest(index)
    assert str(tmp_path) not in json.dumps(body)


def test_load_errors_name_no_server_paths(tmp_path: Path, tiny_model_dir):
    missing = tmp_path / "deep" / "secret" / "nowhere"
    app = create_app({"MODEL": str(tiny_model_dir), "INDEX": str(missing), "DEVICE": "cpu",
                      "SENTENCES": "lazy"},
                     background=False)  # fmt: skip
    for path in ("/ready", "/genres"):
        response = app.test_client().get(path)
        assert response.status_code == 503
        message = response.get_json()["error"]["message"]
        assert "no index directory at 'nowhere'" in message and str(tmp_path) not in message


def test_classify_has_a_work_budget(client):
    response = client.post("/classify", json={"texts": ["가" * 60, "나" * 41]})
    body = response.get_json()
    assert response.status_code == 413 and body["error"]["code"] == "too_much_work"
    assert "101 characters in all; one request may hold at most 100" in body["error"]["message"]
    assert client.post("/classify", json={"texts": ["가" * 60, "나" * 40]}).status_code == 200


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("app-7f3a.b_c:9", True), ("x" * 129, False), ("a b", False), ("ä", False), ("", False)],
)
def test_request_ids_are_honoured_or_made(client, sent, kept):
    response = client.post("/recommend", json={"text": ""}, headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    assert response.get_json()["error"]["request_id"] == echoed
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 32 and echoed.isalnum()


def test_every_log_line_of_a_request_carries_its_id(client, caplog):
    def noisy() -> str:
        logging.getLogger("recommender.test").info("inside a request")
        return "ok"

    client.application.add_url_rule("/noisy", view_func=noisy)
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        client.get("/noisy", headers={"X-Request-ID": "req-42"})
        logging.getLogger("recommender.test").info("outside a request")
    assert [(r.message, r.request_id) for r in caplog.records] == [
        ("inside a request", "req-42"),
        ("outside a request", "-"),
    ]


def test_json_logs_are_one_object_a_line():
    record = logging.LogRecord(
        "recommender.api", logging.WARNING, __file__, 1, "슬픔 %s", ("x",), None
    )
    RequestIdFilter().filter(record)
    line = json.loads(formatter("json").format(record))
    assert line["level"] == "WARNING" and line["logger"] == "recommender.api"
    assert line["message"] == "슬픔 x" and line["request_id"] == "-" and "time" in line


def test_metrics_count_requests_by_endpoint_and_status(client):
    client.post("/recommend", json={"text": TEXT})
    client.post("/recommend", json={"text": ""})
    client.post("/classify", json={"texts": [TEXT, TEXT]})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    for line in [
        'recommender_http_requests_total{endpoint="/recommend",method="POST",status="200"}',
        'recommender_http_requests_total{endpoint="/recommend",method="POST",status="400"}',
        'recommender_http_request_duration_seconds_bucket{endpoint="/classify",le="+Inf"}',
        'recommender_classify_texts_bucket{le="2.0"}',
    ]:
        assert line in text, line


# --- under gunicorn: a swap under load, multiprocess metrics, JSON logs -------------------


@pytest.mark.slow
def test_served_swaps_under_load_without_failures(tmp_path: Path, tiny_model_dir, tiny_classifier):
    index = make_index(tmp_path, tiny_classifier)
    env = {
        "RECOMMENDER_RELOAD_INTERVAL": "0.3",
        "RECOMMENDER_LOG_FORMAT": "json",
        "RECOMMENDER_SENTENCES": "lazy",
    }
    with serve(tmp_path, tiny_model_dir, index, env=env) as server:
        failures: list[object] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                status, body, _ = server.request("/recommend", {"text": TEXT, "k": 3})
                if status != 200:
                    failures.append((status, body))

        def digests(n: int = 16) -> set[str]:
            """The index each worker serves, as /ready says (requests land on both)."""
            return {server.request("/ready")[1]["index_manifest"] for _ in range(n)}

        deadline = time.monotonic() + 60  # both workers loaded, so both swap
        while server.log.read_text().count("and an index of") < 2:
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.2)
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            first = digests()
            rebuild(index, tiny_classifier, renamed_rows("v2"))
            second = manifest_digest(index)
            deadline = time.monotonic() + 30
            while digests() != {second} and time.monotonic() < deadline:
                time.sleep(0.2)
            assert digests() == {second} != first
            broken_rebuild(index, tiny_classifier, renamed_rows("bad"))
            time.sleep(2.0)  # several looks at the broken manifest by every worker
            assert digests() == {second}
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert failures == []
        status, body, headers = server.request("/recommend", {"text": ""})
        request_id = headers["X-Request-ID"]
        assert status == 400 and body["error"]["request_id"] == request_id
        metrics = server.request("/metrics")[1]
    log = server.log.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert sum("swapped in the rebuilt index" in r["message"] for r in records) == 2
    assert sum("was refused" in r["message"] for r in records) == 2
    assert any(request_id in r["message"] for r in records if r["logger"] == "gunicorn.access")
    assert 'recommender_index_reloads_total{outcome="swapped"} 2.0' in metrics
    assert 'recommender_index_reloads_total{outcome="refused"} 2.0' in metrics
