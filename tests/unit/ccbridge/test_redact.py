"""Secrets become fingerprints that tell keys apart without revealing them."""

from ccbridge.redact import fingerprint, is_secret_header, redact_headers, redact_query

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
