"""Body templates: logic-less, escaped for the content type, refused up front when they cannot render."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from shared.delivery.templates import TemplateError, check_template, render, sample_variables, sent_content_type

pytestmark = pytest.mark.unit

NASTY = 'a "quoted" name & <tag> with \\ backslash, newline\n and =&+ signs'


def variables(**overrides: str | int) -> dict[str, str | int]:
    return sample_variables() | overrides


def test_json_values_stay_inside_their_string() -> None:
    body = render('{"job": "{{job_name}}", "attempt": {{attempt}}}', "application/json", variables(job_name=NASTY))
    assert json.loads(body) == {"job": NASTY, "attempt": 1}


def test_json_with_parameters_and_suffix_types_is_escaped_too() -> None:
    for content_type in ("application/json; charset=utf-8", "application/cloudevents+json"):
        body = render('{"n": "{{job_name}}"}', content_type, variables(job_name=NASTY))
        assert json.loads(body) == {"n": NASTY}


def test_form_bodies_are_percent_encoded() -> None:
    body = render("name={{job_name}}&n={{attempt}}", "application/x-www-form-urlencoded", variables(job_name=NASTY))
    assert parse_qs(body) == {"name": [NASTY], "n": ["1"]}


def test_xml_is_entity_escaped_and_plain_text_is_not() -> None:
    assert render("<n>{{job_name}}</n>", "application/xml", variables(job_name="<&>")) == "<n>&lt;&amp;&gt;</n>"
    assert render("{{job_name}}", "text/plain", variables(job_name="<&>")) == "<&>"


def test_triple_braces_insert_as_is() -> None:
    assert render('{"raw": {{{job_name}}}}', "application/json", variables(job_name="[1, 2]")) == '{"raw": [1, 2]}'


def test_every_documented_variable_renders() -> None:
    template = " ".join(f"{{{{{name}}}}}" for name in sample_variables())
    assert render(template, "text/plain", sample_variables()) == " ".join(str(v) for v in sample_variables().values())


def test_a_body_without_tags_is_sent_byte_for_byte() -> None:
    body = '{"a": {"b": [1, 2]}, "s": "{ not a tag }"}'
    assert render(body, "application/json", {}) == body


@pytest.mark.parametrize(
    "template",
    [
        "{{unknown}}",
        "{{job_name.first}}",
        "{{> partial}}",
        "{{#job_id}}x{{/job_name}}",
        "{{#nope}}x{{/nope}}",
        "{{#attempt}}an unclosed section",
        "{{^attempt}}an unclosed inverted section",
    ],
)
def test_templates_that_cannot_render_are_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="does not render"):
        check_template(template, "application/json")


def test_escaping_follows_the_content_type_actually_sent() -> None:
    sent = sent_content_type("text/plain", {"content-type": "application/json"})
    assert sent == "application/json"
    body = render('{"n": "{{job_name}}"}', sent, variables(job_name=NASTY))
    assert json.loads(body) == {"n": NASTY}
    assert json.loads(render('{"n": "{{job_name}}"}', "text/json", variables(job_name=NASTY))) == {"n": NASTY}


@pytest.mark.parametrize("template", ["{{= =}}", "{{#job_id}}" * 400 + "{{/job_id}}" * 400])
def test_templates_that_break_the_renderer_are_refused_not_crashes(template: str) -> None:
    with pytest.raises(TemplateError):
        check_template(template, "application/json")
