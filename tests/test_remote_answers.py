"""Answers of a deployed model are untrusted data: forms accepted, everything else one clear error."""

import json

import pytest

from vidattack.remote.answers import MAX_ANSWER_BYTES, Answer, BadAnswerError, parse_answer

T = "http://svc/classify"


def test_a_full_answer_is_read_best_first():
    raw = json.dumps([{"label": "b", "score": 0.3}, {"label": "a", "score": 0.7}]).encode()
    answer = parse_answer(raw, T)
    assert answer.labels == ("a", "b") and answer.scores == (0.7, 0.3) and answer.complete


def test_a_top_k_answer_is_incomplete():
    answer = parse_answer(b'[{"label": "a", "score": 0.5}, {"label": "b", "score": 0.2}]', T)
    assert not answer.complete and answer.top == "a"


@pytest.mark.parametrize("raw", [b'{"label": "walk"}', b'[{"label": "walk"}]'])
def test_a_label_only_answer_has_no_scores(raw):
    answer = parse_answer(raw, T)
    assert answer.labels == ("walk",) and answer.scores is None


def test_labels_are_kept_as_data_never_markup():
    label = "<script>alert(1)</script>[bold]x[/bold]"
    assert parse_answer(json.dumps({"label": label}).encode(), T).top == label


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>oops</html>", "expected a JSON answer"),
        (b"\xff\xfe", "expected a JSON answer"),
        (b"[]", "expected a list of label/score objects"),
        (b'"flash"', "expected a list of label/score objects"),
        (b'[{"score": 0.5}]', "expected objects with a label"),
        (b'[{"label": 3, "score": 0.5}]', "expected a non-empty string label"),
        (b'[{"label": "a", "score": NaN}]', "expected a JSON answer"),
        (b'[{"label": "a", "score": 1e999}]', "expected scores in"),
        (b'[{"label": "a", "score": -0.1}]', "expected scores in"),
        (b'[{"label": "a", "score": "0.5"}]', "expected a number"),
        (b'[{"label": "a", "score": 0.8}, {"label": "b", "score": 0.8}]', "summing to at most 1"),
        (b'[{"label": "a", "score": 0.5}, {"label": "a", "score": 0.1}]', "each label once"),
        (b'[{"label": "a", "score": 0.5}, {"label": "b"}]', "a score with every label"),
        (b'[{"label": "a"}, {"label": "b"}]', "expected scores with a list"),
        (b'[{"label": "a\\u0000b"}]', "printable label"),
    ],
)
def test_malformed_answers_are_one_error_naming_the_target(raw, message):
    with pytest.raises(BadAnswerError, match=message) as info:
        parse_answer(raw, T)
    assert str(info.value).startswith(T + ": ")
    assert "\n" not in str(info.value)


def test_an_oversized_answer_is_refused_before_parsing():
    with pytest.raises(BadAnswerError, match="at most"):
        parse_answer(b" " * (MAX_ANSWER_BYTES + 1), T)


def test_a_logged_answer_round_trips_and_is_validated_again():
    answer = parse_answer(b'[{"label": "a", "score": 0.6}, {"label": "b", "score": 0.4}]', T)
    assert Answer.from_json(answer.to_json(), T) == answer
    with pytest.raises(BadAnswerError):
        Answer.from_json({"labels": ["a"], "scores": [2.0]}, T)
