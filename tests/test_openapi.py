from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from recommender.api import EXTENSION, create_app
from recommender.openapi import OPERATIONS, openapi_document
from recommender.schemas import ErrorBody, Limits, parse
from recommender.service import Recommender
from tests.catalogue import load_index, make_index

# For people and tools, not part of the JSON API (/metrics: Prometheus' text format).
PAGES = {"/", "/docs", "/openapi.json", "/metrics"}


@pytest.fixture()
def app(tmp_path: Path, fake_classifier) -> Flask:
    index = load_index(make_index(tmp_path, fake_classifier), fake_classifier)
    return create_app(service=Recommender(fake_classifier, index))


def test_the_served_document_is_valid_openapi_3_1(app: Flask):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    # Korean travels as UTF-8, not as \uXXXX escapes.
    raw = response.get_data(as_text=True)
    assert "오늘은 정말 행복한 하루였다" in raw and "\\u" not in raw


def test_every_route_is_documented_and_every_operation_routed(app: Flask):
    routed = {
        # Flask's <path:track_id> is OpenAPI's {track_id}
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.rule.startswith("/docs/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule not in PAGES
    }
    documented = {
        (method, path) for path, item in openapi_document()["paths"].items() for method in item
    }
    assert routed == documented == {(op.method, op.path) for op in OPERATIONS}


def test_every_operation_has_examples_that_fit_its_models():
    document = openapi_document()
    for op in OPERATIONS:
        operation = document["paths"][op.path][op.method]
        content = operation["responses"]["200"]["content"]["application/json"]
        op.response.model_validate(content["example"])
        for status in op.errors:
            error = operation["responses"][str(status)]["content"]["application/json"]
            ErrorBody.model_validate(error["example"])
        if op.request is not None:
            examples = operation["requestBody"]["content"]["application/json"]["examples"]
            assert examples
            for example in examples.values():
                parse(op.request, example["value"])
                assert re.search("[가-힣]", str(example["value"]))  # Korean diary text


def test_the_document_carries_the_configured_limits(app: Flask):
    document = openapi_document(Limits(max_text_length=20, max_texts=3, max_k=9, default_k=4))
    schemas = document["components"]["schemas"]
    request = schemas["RecommendRequest"]["properties"]
    assert (request["text"]["maxLength"], request["k"]["maximum"], request["k"]["default"]) == (
        20,
        9,
        4,
    )
    assert schemas["ClassifyRequest"]["properties"]["texts"]["maxItems"] == 3
    assert "x-limits" not in str(document)
    served = create_app({"MAX_K": 9, "DEFAULT_K": 4}, service=app.extensions[EXTENSION].service)
    body = served.test_client().get("/openapi.json").get_json()
    assert body["components"]["schemas"]["RecommendRequest"]["properties"]["k"]["maximum"] == 9


def test_docs_are_served_from_the_installed_package(app: Flask):
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    for source in sources:
        assert client.get("/" + source).status_code == 200, source
    script = client.get("/static/docs.js").get_data(as_text=True)
    assert 'url: "openapi.json"' in script and "validatorUrl: null" in script
