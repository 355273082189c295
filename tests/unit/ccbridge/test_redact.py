"""Secrets become fingerprints that tell keys apart without revealing them."""

from ccbridge.redact import fingerprint, is_secret_header, redact_body, redact_headers, redact_path, redact_query

SALT = b"0123456789abcdef"
KEY = "sk-ant-api03-AAAAbbbbCCCCddddEEEEffffGGGGhhhh-XyZ9"


def test_known_secret_headers_are_fingerprinted():
    out = dict(map(tuple, redact_headers([
        ("x-api-key", KEY), ("Authorization", f"Bearer {KEY}"), ("Cookie", "sid=abcdefghijklmnop"),
        ("x-goog-api-key", "AIzaSyA-1234567890abcdef"), ("x-session-token", "tok_1234567890abcdef"),
        ("user-agent", "claude-cli/2.1.329"), ("x-claude-code-session-id", "3ceb04ae-f34d"),
    ], SALT)))
    for name in ("x-api-key", "Authorization", "Cookie", "x-goog-api-key", "x-session-token"):
        assert "AAAAbbbb" not in out[name] and "1234567890" not in out[name] and "abcdefghij" not in out[name]
        assert "#" in out[name]
    assert out["x-api-key"].startswith("sk-ant-api03…XyZ9 #")
    assert out["Authorization"].startswith("Bearer sk-ant-api03…XyZ9 #")
    assert out["user-agent"] == "claude-cli/2.1.329"
    assert out["x-claude-code-session-id"] == "3ceb04ae-f34d"


def test_fingerprints_tell_keys_apart_and_are_stable():
    assert fingerprint(KEY, SALT) == fingerprint(KEY, SALT)
    other = KEY[:-5] + "Q" + KEY[-4:]  # same prefix and last 4
    assert fingerprint(KEY, SALT) != fingerprint(other, SALT)
    assert fingerprint(KEY, SALT) != fingerprint(KEY, b"another salt")


def test_value_that_looks_like_a_key_is_caught_under_any_name():
    assert is_secret_header("x-custom", "sk-proj-abcdefgh12345678")
    assert not is_secret_header("anthropic-ratelimit-unified-5h-utilization", "0.4")


def test_query_credentials():
    assert redact_query([("beta", "true"), ("api_key", KEY)], SALT)[0] == ("beta", "true")
    assert KEY not in redact_query([("api_key", KEY)], SALT)[0][1]


# Built from pieces so that no whole key shape sits in the source (secret scanners), all of them fake.
SHAPES = {
    "anthropic": "sk-ant-api03-" + "Qx7" * 10 + "-Zz9w",
    "openai": "sk-proj-" + "Ab3" * 8,
    "github": "ghp_" + "a1B2" * 9,
    "github fine-grained": "github_pat_" + "11AB" * 8,
    "slack bot": "xoxb-" + "1234-5678-" * 2 + "abcd",
    "slack user": "xoxp-" + "9876-" * 3 + "efgh",
    "aws": "AKIA" + "ABCDEFGHIJ234567",
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".sig_nature-Value",
}
NOT_SECRETS = ["/v1/messages", "/v1/messages/count_tokens", "3ceb04ae-f34d-4b7a-9d4e-2f1c0a9b8e7d",
               "claude-opus-4-5-20251101", "claude-cli/2.1.329 (external, cli)", "sk-learn", "task-ant-hill"]


def test_every_token_shape_in_any_header_value_is_fingerprinted():
    for name, token in SHAPES.items():
        [[_, stored]] = redact_headers([("x-anything", token)], SALT)
        assert token not in stored and token[-4:] in stored and "#" in stored, name
    for scheme in ("Bearer", "Basic"):
        [[_, stored]] = redact_headers([("x-forwarded-auth", f"{scheme} dXNlcjpwYXNzd29yZA==")], SALT)
        assert stored.startswith(f"{scheme} ") and "dXNlcjpwYXNz" not in stored


def test_query_values_and_path_segments_shaped_like_keys_are_fingerprinted_whatever_their_name():
    for name, token in SHAPES.items():
        [(key, value)] = redact_query([("q", token)], SALT)
        assert key == "q" and token not in value and "#" in value, name
        path = redact_path(f"/v1/keys/{token}/usage", SALT)
        assert token not in path and path.startswith("/v1/keys/") and path.endswith("/usage"), name


def test_normal_paths_session_ids_and_model_names_are_left_alone():
    for text in NOT_SECRETS:
        assert redact_path(f"/v1/{text}", SALT) == f"/v1/{text}"
        assert redact_query([("q", text)], SALT) == [("q", text)]
        assert redact_body(text.encode(), SALT) == text.encode()
        assert redact_headers([("x-claude-code-session-id", text)], SALT) == [["x-claude-code-session-id", text]]


def test_body_secrets_become_their_fingerprints_in_place():
    body = ('{"model":"claude-opus-4-5-20251101","messages":[{"role":"user","content":"my key is '
            + SHAPES["anthropic"] + ' and aws ' + SHAPES["aws"] + '"}]}').encode()
    redacted = redact_body(body, SALT)
    assert SHAPES["anthropic"].encode() not in redacted and SHAPES["aws"].encode() not in redacted
    assert fingerprint(SHAPES["anthropic"], SALT).encode() in redacted
    assert redacted.startswith(b'{"model":"claude-opus-4-5-20251101"')
    import json

    assert json.loads(redacted)["messages"][0]["content"].startswith("my key is sk-ant-api03")  # still JSON
