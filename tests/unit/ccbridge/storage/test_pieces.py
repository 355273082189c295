"""Content-addressed request storage: pieces, cache markers and the message prefix tree (plain data)."""

import copy

import pytest

from ccbridge.storage.pieces import (
    Skeleton,
    assemble,
    decompose,
    is_decomposable,
    join_headers,
    make_piece,
    message_nodes,
    split_headers,
    strip_cache_marks,
)
from tests.fixtures import all_requests

MESSAGE_REQUESTS = [(name, r["body"]) for name, r in all_requests() if is_decomposable(r["body"])]


def rebuild(body):
    split = decompose(body)
    import json

    parsed = {h: json.loads(p.json_text) for h, p in split.pieces.items()}
    pick = lambda refs: None if refs is None else [copy.deepcopy(parsed[h]) for h in refs]  # noqa: E731
    return assemble(split.skeleton, pick(split.system_refs), pick(split.tool_refs), pick(split.message_refs),
                    split.cache_marks)


def test_fixtures_hold_message_requests():
    assert len(MESSAGE_REQUESTS) >= 10


@pytest.mark.parametrize("name,body", MESSAGE_REQUESTS, ids=[n for n, _ in MESSAGE_REQUESTS])
def test_every_captured_request_rebuilds_equal(name, body):
    assert rebuild(body) == body


def test_moving_cache_marker_does_not_make_messages_new():
    first = {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]}]}
    second = {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": {"type": "ephemeral"}}]}]}
    a, b = decompose(first), decompose(second)
    assert a.message_refs[0] == b.message_refs[0]
    assert a.cache_marks == [["messages", 0, ["content", 0], {"type": "ephemeral"}]]
    assert rebuild(first) == first and rebuild(second) == second


def test_same_piece_twice_keeps_its_own_marker():
    block = {"role": "user", "content": [{"type": "text", "text": "same"}]}
    marked = copy.deepcopy(block)
    marked["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    body = {"messages": [block, {"role": "assistant", "content": "x"}, marked]}
    split = decompose(body)
    assert split.message_refs[0] == split.message_refs[2]
    assert rebuild(body) == body


def test_string_system_and_content_stay_in_place():
    body = {"system": "be brief", "messages": [{"role": "user", "content": "hi"}], "tools": []}
    assert decompose(body).skeleton["system"] == "be brief"
    assert rebuild(body) == body


def test_not_decomposable():
    assert not is_decomposable([1, 2])
    assert not is_decomposable({"messages": "nope"})
    assert not is_decomposable({"messages": [1]})
    assert not is_decomposable({"messages": [], "system": ["text"]})


def test_prefix_tree_shares_the_common_prefix():
    short = message_nodes(["a", "b"])
    longer = message_nodes(["a", "b", "c", "d"])
    assert [n.id for n in longer[:2]] == [n.id for n in short]
    assert longer[2].parent_id == short[-1].id
    assert [n.depth for n in longer] == [1, 2, 3, 4]
    assert message_nodes(["x", "b"])[1].id != short[1].id  # same message after another prefix: new node


def test_strip_cache_marks_reports_paths():
    message = {"role": "user", "cache_control": 3, "content": [
        {"type": "tool_result", "content": [{"type": "text", "text": "t", "cache_control": 1}]},
        {"type": "text", "text": "x", "cache_control": 2}]}
    value, marks = strip_cache_marks(message)
    assert value == {"role": "user", "content": [
        {"type": "tool_result", "content": [{"type": "text", "text": "t"}]}, {"type": "text", "text": "x"}]}
    assert sorted(map(str, marks)) == sorted(map(str, [
        ([], 3), (["content", 0, "content", 0], 1), (["content", 1], 2)]))
    assert message["content"][1]["cache_control"] == 2  # the input is left alone


def test_marker_outside_content_stays_in_the_piece():
    tool = {"name": "t", "input_schema": {"properties": {"cache_control": {"type": "string"}}}}
    value, marks = strip_cache_marks(tool)
    assert value == tool and marks == []


def test_header_lists_that_differ_in_varying_values_share_their_piece():
    first = [["Host", "api"], ["X-Stainless-Retry-Count", "0"], ["Content-Length", "50079"], ["x-app", "cli"],
             ["X-Client-Request-Id", "a1"]]
    second = [["Host", "api"], ["X-Stainless-Retry-Count", "1"], ["Content-Length", "9"], ["x-app", "cli"],
              ["X-Client-Request-Id", "b2"]]
    (shared_a, values_a), (shared_b, values_b) = split_headers(first), split_headers(second)
    assert shared_a == shared_b and make_piece("headers", shared_a).hash == make_piece("headers", shared_b).hash
    assert values_a == ["0", "50079", "a1"]
    assert join_headers(shared_a, values_a) == first and join_headers(shared_b, values_b) == second


def test_a_header_list_with_repeated_and_empty_values_rebuilds_in_order():
    headers = [["content-length", ""], ["accept", ""], ["x-request-id", "1"], ["X-Request-Id", "2"], ["a", "b"]]
    assert join_headers(*split_headers(headers)) == headers


@pytest.mark.parametrize("name,body", MESSAGE_REQUESTS, ids=[n for n, _ in MESSAGE_REQUESTS])
def test_skeleton_piece_round_trips(name, body):
    split = decompose(body)
    skeleton = Skeleton(split.skeleton, split.system_refs, split.tool_refs)
    assert Skeleton.parse(skeleton.piece().json_text) == skeleton
    assert "messages" not in skeleton.body
