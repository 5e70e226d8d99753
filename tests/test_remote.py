"""Deployed models through a real local service: forms of answer, counting, cache, log, retries, cmd:."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch
from remote_support import serving, small_clip

from vidattack.errors import BadParameterError, QueryBudgetExceeded, UsageError
from vidattack.models import load_model
from vidattack.models.capabilities import Capability
from vidattack.remote.answers import BadAnswerError
from vidattack.remote.options import RemoteOptions
from vidattack.remote.transport import RemoteError, read_headers
from vidattack.remote.view import RemoteView
from vidattack.video import load_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """(1, 8, 3, 32, 32) in [0, 1] on the 8-bit grid."""
    path = small_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")
    return load_video(path).frames.permute(0, 3, 1, 2).float().div(255).unsqueeze(0)


def remote(url: str, **options: object) -> RemoteView:
    view = load_model(url, remote=RemoteOptions(backoff=0.0, **options))  # type: ignore[arg-type]
    assert isinstance(view, RemoteView)
    return view


def ask(view: RemoteView, x: torch.Tensor) -> torch.Tensor:
    return view.bind(view.plan(x.shape[1]))(x)


def test_full_scores_match_the_served_model_in_process(c3d, clip):
    with serving(c3d) as server:
        view = remote(server.url)
        lp = ask(view, clip)
    local = c3d.bind(c3d.plan(8))(clip)  # the service samples the file as the model does
    top = int(local.argmax())
    assert view.labels[int(lp.argmax())] == c3d.labels[top]
    assert float(lp.exp().max()) == pytest.approx(float(local.exp().max()), abs=1e-6)
    assert server.requests == view.client.traffic.requests == 1


def test_identical_candidates_are_asked_once(c3d, clip):
    with serving(c3d) as server:
        view = remote(server.url)
        ask(view, torch.cat([clip, clip]))
        ask(view, clip + 0.0001)  # rounds to the same 8-bit video
        assert server.requests == 1
        assert view.client.traffic.cache_hits == 2


def test_top_k_gives_the_classes_left_out_an_equal_share_below_the_last_listed(c3d, clip):
    with serving(c3d, mode="top-k", top_k=2) as server:
        view = remote(server.url, query_log=None)
        p = ask(view, clip)[0].exp()
    listed = p.topk(2).values
    rest = p[p < listed[-1] - 1e-9]
    assert len(set(rest.tolist())) == 1  # one share for every class the answer left out
    assert float(rest[0]) <= float(listed[-1])


def test_a_label_only_service_needs_label_only_and_then_gives_decisions(c3d, clip):
    with serving(c3d, mode="label") as server:
        with pytest.raises(BadAnswerError, match="--label-only"):
            ask(remote(server.url), clip)
        view = remote(server.url, label_only=True)
        assert view.capabilities is Capability.LABELS
        p = ask(view, clip)[0].exp()
    assert float(p.max()) == 1.0 and int((p > 1e-6).sum()) == 1


def test_failing_every_third_request_is_retried_and_every_request_counted(c3d, clip):
    with serving(c3d, fail_every=3) as server:
        view = remote(server.url)
        for i in range(5):
            ask(view, clip * 0.5 + i / 255)
        traffic = view.client.traffic
        assert traffic.answered == 5 and traffic.failed == 2  # requests 3 and 6 failed, were sent again
        assert server.requests == traffic.requests == 7


def test_a_garbage_answer_stops_with_one_line_naming_the_target(c3d, clip):
    with serving(c3d, garbage=True) as server, pytest.raises(BadAnswerError) as info:
        ask(remote(server.url), clip)
    assert str(info.value).startswith(f"{server.url}: expected a JSON answer")


def test_a_target_that_keeps_failing_stops_and_keeps_the_log(tmp_path, clip):
    log = tmp_path / "queries.jsonl"
    view = remote("http://127.0.0.1:9/classify", retries=2, query_log=log)  # port 9: nothing listens
    with pytest.raises(RemoteError, match=r"no answer after 3 tries .*query log .* is kept"):
        ask(view, clip)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["target"] + ["sent", "failed"] * 3


def test_resume_replays_the_log_and_spends_no_query_twice(c3d, clip, tmp_path):
    log = tmp_path / "queries.jsonl"
    with serving(c3d) as server:
        first = remote(server.url, query_log=log)
        a = ask(first, torch.cat([clip, clip * 0.9]))
        first.close()
        with pytest.raises(UsageError, match="--resume"):
            remote(server.url, query_log=log)
        again = remote(server.url, query_log=log, resume=True)
        b = ask(again, torch.cat([clip, clip * 0.9, clip * 0.8]))
        again.close()
        assert server.requests == 3
    assert torch.equal(a, b[:2])
    summary = json.loads(log.with_name("queries.summary.json").read_text())
    assert summary["requests"] == 3 and summary["replayed_from_log"] == 2


def test_overwrite_replaces_the_log_at_the_first_query_and_not_before(c3d, clip, tmp_path):
    log = tmp_path / "queries.jsonl"
    log.write_text('{"event": "sent", "key": "an earlier run", "bytes": 1, "try": 0}\n')
    with serving(c3d) as server:
        view = remote(server.url, query_log=log, overwrite=True)
        assert "an earlier run" in log.read_text()  # a run refused now would have lost nothing
        ask(view, clip)
        view.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["target", "sent", "answer"]
    assert "an earlier run" not in log.read_text()


def test_a_log_of_another_target_is_refused_not_replayed(c3d, clip, tmp_path):
    log = tmp_path / "queries.jsonl"
    with serving(c3d) as first, serving(c3d, mode="label") as second:
        view = remote(first.url, query_log=log)
        ask(view, clip)
        view.close()
        assert json.loads(log.read_text().splitlines()[0]) == {"event": "target", "target": first.url}
        # its answers are another model's: replaying them would attack the wrong one
        with pytest.raises(UsageError, match=f"holds the answers of '{first.url}', not of {second.url}"):
            remote(second.url, query_log=log, resume=True)
        again = remote(first.url, query_log=log, resume=True)
        ask(again, clip)
        again.close()
        assert first.requests == 1 and second.requests == 0


def test_concurrent_queries_keep_their_order(c3d, clip):
    with serving(c3d) as server:
        alone = ask(remote(server.url), torch.cat([clip * s for s in (1.0, 0.9, 0.8, 0.7)]))
        together = ask(remote(server.url, concurrency=4), torch.cat([clip * s for s in (1.0, 0.9, 0.8, 0.7)]))
        assert server.requests == 8  # each client has its own cache
    assert torch.equal(alone, together)


def test_max_qps_spaces_the_requests(c3d, clip):
    with serving(c3d) as server:
        view = remote(server.url, concurrency=4, max_qps=20.0)
        start = time.perf_counter()
        ask(view, torch.cat([clip * s for s in (1.0, 0.9, 0.8, 0.7)]))
        assert time.perf_counter() - start >= 3 / 20


def test_headers_come_from_the_environment_and_never_reach_a_message(monkeypatch):
    monkeypatch.setenv("SVC_HEADERS", "Authorization: Bearer s3cret\nX-Team: red")
    assert read_headers("SVC_HEADERS") == {"Authorization": "Bearer s3cret", "X-Team": "red"}
    monkeypatch.setenv("SVC_HEADERS", json.dumps({"Authorization": "Bearer s3cret\r\nX-Evil: 1"}))
    with pytest.raises(BadParameterError) as info:
        read_headers("SVC_HEADERS")
    assert "s3cret" not in str(info.value)
    with pytest.raises(BadParameterError, match="SVC_MISSING is not set"):
        read_headers("SVC_MISSING")


COMMAND = """
import json, pathlib, sys
log = pathlib.Path(sys.argv[2])
with log.open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
n = len(log.read_text().splitlines())
if n % 3 == 0:
    sys.exit(7)  # fails every third run
size = pathlib.Path(sys.argv[1]).stat().st_size
print(json.dumps([{"label": "big" if size > 30000 else "small", "score": 0.75}, {"label": "other", "score": 0.25}]))
"""


def test_a_command_target_gets_the_path_as_one_argument_and_no_shell(tmp_path, clip):
    script = tmp_path / "classify.py"
    script.write_text(COMMAND)
    calls = tmp_path / "calls.jsonl"
    spec = f"cmd:{sys.executable} {script} {{}} {calls} '$(touch {tmp_path}/pwned); echo'"
    view = remote(spec)
    p = ask(view, torch.cat([clip, clip * 0.5, clip * 0.25])).exp()
    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(argvs) == view.client.traffic.requests == 4  # three answers, one failed run retried
    assert all(a[1:] == [str(calls), f"$(touch {tmp_path}/pwned); echo"] for a in argvs)
    assert not (tmp_path / "pwned").exists()
    assert p.shape == (3, 1000) and float(p[0].max()) == pytest.approx(0.75)


def test_a_command_without_a_placeholder_is_refused():
    with pytest.raises(BadParameterError, match=r"with \{\} for the video's path"):
        load_model("cmd:classify --stdin")


def test_headers_reach_the_service_but_not_the_log(monkeypatch, tmp_path, clip):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"label": "walk", "score": 1.0}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SVC_HEADERS", "Authorization: Bearer s3cret")
    log = tmp_path / "queries.jsonl"
    try:
        ask(
            remote(f"http://127.0.0.1:{server.server_address[1]}/", header_env="SVC_HEADERS", query_log=log),
            clip,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Bearer s3cret"]
    for written in tmp_path.iterdir():
        assert "s3cret" not in written.read_text()


def test_with_labels_given_a_label_outside_them_is_an_error(c3d, clip):
    with serving(c3d, mode="top-k", top_k=1) as server:
        view = load_model(server.url, labels=["walk", "run"], remote=RemoteOptions())
        assert view.labels == ["walk", "run"]
        with pytest.raises(BadAnswerError, match="not in --labels"):
            ask(view, clip)  # type: ignore[arg-type]


def test_without_labels_each_new_label_takes_the_next_slot(c3d, clip):
    with serving(c3d) as server:
        view = remote(server.url)
        ask(view, clip)
    assert view.labels[: c3d.num_classes] != [f"(unseen {i})" for i in range(c3d.num_classes)]
    assert sorted(view.labels[: c3d.num_classes]) == sorted(c3d.labels)
    assert view.labels[c3d.num_classes] == f"(unseen {c3d.num_classes})"


RATE_AND_TIMES = """
import json, sys
import av
with av.open(sys.argv[1]) as c:
    stream = c.streams.video[0]
    times = [float(f.pts * f.time_base) for f in c.decode(stream)]
    rate = str(stream.average_rate)
with open(sys.argv[2], "w") as f:
    json.dump({"rate": rate, "times": times}, f)
print(json.dumps({"label": "seen"}))
"""


def test_a_candidate_is_sent_at_the_inputs_frame_rate_and_timestamps(tmp_path):
    from conftest import write_clip

    from vidattack.video import SampledFrames

    frames = torch.randint(
        0, 256, (6, 16, 16, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    video = load_video(write_clip(tmp_path / "thirty.mp4", frames, fps=30))
    script, seen = tmp_path / "rate.py", tmp_path / "seen.json"
    script.write_text(RATE_AND_TIMES)
    view = remote(f"cmd:{sys.executable} {script} {{}} {seen}", label_only=True)
    plan = view.plan_for(SampledFrames.of_video(video, range(6)))
    view.bind(plan)(video.frames.permute(0, 3, 1, 2).float().div(255).unsqueeze(0))
    sent = json.loads(seen.read_text())
    assert sent["rate"] == str(video.rate) == "30"  # not the fixed 25 fps of a candidate without a source
    assert sent["times"] == pytest.approx([i / 30 for i in range(6)])


def test_retried_requests_count_against_the_budget_so_the_service_never_gets_more(c3d, clip):
    from vidattack.attacks.blackbox.query_model import QueryModel

    candidates = torch.cat([clip * 0.5 + i / 255 for i in range(4)])
    with serving(c3d, fail_every=3) as server:
        view = remote(server.url)
        qm = QueryModel(view.bind(view.plan(8)), max_queries=5)
        assert qm.log_probs(candidates).shape[0] == 4  # request 3 failed and was sent again: 5 requests
        assert server.requests == qm.queries == 5
        with pytest.raises(QueryBudgetExceeded):
            qm.log_probs(candidates[:1])
        qm = QueryModel(view.bind(view.plan(8)), max_queries=4)
        with pytest.raises(RemoteError, match="no room to send it again"):
            qm.log_probs(torch.cat([clip * 0.25 + i / 255 for i in range(4)]))  # request 6 fails at once
        assert server.requests == 6  # a 4-query budget for 4 candidates has no room for a second try


def test_a_replayed_answer_costs_again_the_retries_it_took(c3d, clip, tmp_path):
    log = tmp_path / "queries.jsonl"
    videos = [
        (v * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        for v in torch.cat([clip, clip * 0.9, clip * 0.8])
    ]
    with serving(c3d, fail_every=3) as server:
        first = remote(server.url, query_log=log)
        spent = first.client.ask(videos, allowance=10).cost
        first.close()
        again = remote(server.url, query_log=log, resume=True)
        replayed = again.client.ask(videos, allowance=10)
        again.close()
        assert server.requests == spent == 4  # the third request failed and was sent again
    assert replayed.cost == spent and replayed.traffic.requests == 0 and replayed.traffic.replayed == 3
