"""storage/read.py: the walk over the message tree, exact rebuilds, raw bodies and stored answers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.storage import read
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange, MessageNode, RawBody
from ccbridge.storage.pieces import message_nodes, node_id
from tests.fixtures import all_requests
from tests.support.builders import Conversation, captured, text, tool_use, user, write

POSTS = [(name, r) for name, r in all_requests() if r["method"] == "POST"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    yield engine
    engine.dispose()


def normal(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal text means equal JSON, member order aside."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# A tree with branches: two requests share "a b", one of them goes on after a fork, one stops early.
LISTS = {"first": ["a", "b", "c"], "longer": ["a", "b", "d", "e"], "fork": ["a", "x"], "prefix": ["a", "b"]}


def plant(db: Session, lists: dict[str, list[str]]) -> dict[str, str]:
    """Store the message lists as the writer does; the tail node id of each list."""
    nodes = {n.id: n for refs in lists.values() for n in message_nodes(refs)}
    db.add_all(nodes.values())
    db.commit()
    return {name: message_nodes(refs)[-1].id for name, refs in lists.items()}


def test_paths_of_many_tails_share_one_walk(engine: Engine) -> None:
    with Session(engine) as db:
        tails = plant(db, LISTS)
        paths = read.message_paths(db, tails.values())
        assert paths == {tails[name]: refs for name, refs in LISTS.items()}
        # the walk from two tails visits the shared prefix once and nothing of the other branches
        tree = read.message_tree(db.connection(), [tails["first"], tails["longer"]])
        assert sorted(n.message_hash for n in tree.values()) == ["a", "b", "c", "d", "e"]


def test_paths_from_a_select_of_tails(engine: Engine) -> None:
    with Session(engine) as db:
        tails = plant(db, LISTS)
        for i, name in enumerate(("first", "fork")):
            db.add(Exchange(flow_id=f"f{i}", started_at=datetime.now(UTC), method="POST", scheme="https",
                            host="h", port=443, path="/v1/messages", session_id="s", messages_tail=tails[name]))
        db.add(Exchange(flow_id="probe", started_at=datetime.now(UTC), method="GET", scheme="https", host="h",
                        port=443, path="/", session_id="s"))  # no message list at all
        db.commit()
        paths = read.message_paths(db, select(Exchange.messages_tail).where(Exchange.session_id == "s"))
        assert paths == {tails["first"]: LISTS["first"], tails["fork"]: LISTS["fork"]}


def test_message_refs_of_one_request_and_a_broken_chain(engine: Engine) -> None:
    with Session(engine) as db:
        tails = plant(db, LISTS)
        assert read.message_refs_of(db, tails["longer"]) == ["a", "b", "d", "e"]
        assert read.message_refs_of(db, None) == []
        with pytest.raises(LookupError):
            read.message_refs_of(db, "no-such-node")
        db.delete(db.get(MessageNode, node_id(node_id(None, "a"), "b")))
        db.commit()
        with pytest.raises(LookupError):
            read.message_refs_of(db, tails["longer"])
        # the viewer still shows what is left of a broken chain: its known end
        assert read.message_paths(db, [tails["longer"]]) == {tails["longer"]: ["d", "e"]}


def test_every_fixture_request_rebuilds_to_the_same_json(engine: Engine) -> None:
    write(engine, [captured(r["body"], [tuple(h) for h in r["headers"]], 1_790_000_000.0 + i)
                   for i, (_name, r) in enumerate(POSTS)])
    with Session(engine) as db:
        rows = db.exec(select(Exchange).order_by(Exchange.started_at)).all()
        assert len(rows) == len(POSTS)
        for row, (name, r) in zip(rows, POSTS, strict=True):
            assert row.request_body_kind == "messages", name
            assert normal(read.rebuild_request_body(db, row)) == normal(r["body"]), name


def test_a_repeated_message_gets_its_cache_marker_only_where_it_was(engine: Engine) -> None:
    same = {"role": "user", "content": [{"type": "text", "text": "again"}]}
    marked = copy.deepcopy(same)
    marked["content"][0]["cache_control"] = {"type": "ephemeral"}
    body = {"model": "m", "max_tokens": 5, "messages": [same, {"role": "assistant", "content": "ok"}, marked]}
    write(engine, [captured(body, [], 1_790_000_000.0)])
    with Session(engine) as db:
        row = db.exec(select(Exchange)).one()
        assert row.messages_tail is not None
        refs = read.message_refs_of(db, row.messages_tail)
        assert refs[0] == refs[2]  # stored once
        assert normal(read.rebuild_request_body(db, row)) == normal(body)


def test_stored_stream_and_answer_come_back(engine: Engine) -> None:
    conversation = Conversation("s", [1_790_000_000.0])
    answer = [text("Let me look. " * 40), tool_use("toolu_1", "Bash", {"command": "ls"})]
    item = conversation.turn([user("hello")], answer)
    write(engine, [item])
    with Session(engine) as db:
        row = db.exec(select(Exchange)).one()
        raw = db.get(RawBody, row.response_raw_hash)
        # the stream is packed against its own answer: decoding needs the answer blob
        assert raw is not None and raw.encoding == "zlib" and raw.dictionary == row.response_message_hash
        assert read.load_raw(db, row.response_raw_hash) == b"".join(item.response_chunks)
        assert read.load_raw(db, None) is None and read.load_raw(db, "missing") is None
        rebuilt = read.rebuild_answer(db, row)
        assert rebuilt is not None and rebuilt["content"] == answer and rebuilt["role"] == "assistant"
        events = read.response_events(db, row)
        assert events[0].event == "message_start" and events[-1].event == "message_stop"
        assert "toolu_1" in "".join(e.data for e in events)


def test_no_answer_and_no_stream_for_a_failed_request(engine: Engine) -> None:
    write(engine, [Conversation("s", [1_790_000_000.0]).turn([user("hi")], [text("x")], status=500)])
    with Session(engine) as db:
        row = db.exec(select(Exchange)).one()
        assert read.rebuild_answer(db, row) is None
        assert read.response_events(db, row) == []


def test_exchanges_sending_a_message_a_few_places_back(engine: Engine) -> None:
    conversation = Conversation("s", [1_790_000_000.0])
    items = [conversation.turn([user("needle")], [text("one")]), conversation.turn([user("two")], [text("2")]),
             conversation.turn([user("three")], [text("3")])]
    write(engine, items)
    with Session(engine) as db:
        rows = db.exec(select(Exchange).order_by(Exchange.started_at)).all()
        needle = read.message_refs_of(db, rows[0].messages_tail)[-1]
        # needle is the 1st message of every request: last of the first, 3rd and 5th from last in the others
        assert [s.exchange_id for s in read.exchanges_sending(db, [needle], 3)] == [rows[0].id, rows[1].id]
        assert {s.message_hash for s in read.exchanges_sending(db, [needle], 5)} == {needle}
        assert len(read.exchanges_sending(db, [needle], 5)) == 3
