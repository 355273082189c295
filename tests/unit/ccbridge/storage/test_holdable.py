"""Values no database holds are replaced when the row is built, with a note saying what changed."""

from ccbridge.storage.holdable import fit_exchange, fit_json, fit_text, has_lone_surrogate


def test_text_loses_nul_and_lone_surrogates_and_says_so():
    assert fit_text("plain") == ("plain", [])
    text, changes = fit_text("a\x00b\udcffc")
    assert text == "a\u2400b\ufffdc" and len(changes) == 2
    assert fit_text("valid pair \U0001f600 stays")[1] == []


def test_json_values_keep_their_shape():
    value = {"k\ud800": ["x\udcff", 1.5, float("nan"), 10**30, {"ok": "é"}]}
    fitted, changes = fit_json(value)
    assert fitted == {"k\ufffd": ["x\ufffd", 1.5, None, 10**30, {"ok": "é"}]}  # JSON text holds any integer
    assert len(changes) == 2
    same = {"a": [1, "b"]}
    assert fit_json(same) == (same, [])


def test_exchange_columns_are_fitted_in_place():
    row = {"input_tokens": 10**29, "output_tokens": 12, "stream": True, "model": "m" * 200,
           "user_agent": "agent\x00", "path": "/v1/\udcc3", "response_message": {"id": "\ud83d"},
           "request_headers": [["x-h", "v\x00"]], "session_id": None}
    notes = fit_exchange(row)
    assert row["input_tokens"] is None and row["output_tokens"] == 12 and row["stream"] is True
    assert row["model"] == "m" * 128 and row["user_agent"] == "agent\u2400" and row["path"] == "/v1/\ufffd"
    assert row["response_message"] == {"id": "\ufffd"}
    assert row["request_headers"] == [["x-h", "v\x00"]]  # a JSON column escapes NUL itself
    assert len(notes) == 5 and any("30-digit" in n for n in notes)


def test_lone_surrogate_is_found_only_where_json_text_escapes_one():
    assert has_lone_surrogate(rb'{"a":"\ud800"}', {"a": "\ud800"})
    assert not has_lone_surrogate(rb'{"a":"\ud83d\ude00"}', {"a": "\U0001f600"})  # a valid pair
    assert not has_lone_surrogate(b'{"a":"x"}', {"a": "x"})


def test_lone_surrogate_is_found_in_keys_deep_values_and_beside_what_orjson_refuses():
    big = 10**30  # orjson cannot write it, so the check has to look string by string
    assert has_lone_surrogate(rb'{"\udc00":1}', {"\udc00": 1})
    assert has_lone_surrogate(rb'{"m":[{"c":[{"t":"ok \ud83d"}]}]}', {"m": [{"c": [{"t": "ok \ud83d"}]}]})
    assert has_lone_surrogate(rb'{"n":1000000000000000000000000000000,"a":"\ud800"}', {"n": big, "a": "\ud800"})
    assert not has_lone_surrogate(rb'{"n":1000000000000000000000000000000,"a":"\ud83d\ude00"}',
                                  {"n": big, "a": "\U0001f600"})
