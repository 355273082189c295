"""Translation between the Anthropic Messages API and OpenAI Chat Completions or Responses (pure, no I/O).

These are the names the rest of ccbridge uses; the capability table of the target models is beside them.
"""

from ccbridge.translate.capabilities import PROVIDER_KINDS, ModelCapabilities, capabilities_for, parse_override
from ccbridge.translate.errors import (
    anthropic_error,
    error_body,
    error_for_exception,
    error_frame,
    stream_error_for_exception,
    timeout_error,
)
from ccbridge.translate.request import (
    count_input_tokens,
    estimate_prompt_tokens,
    strip_proxy_thinking,
    to_openai_request,
)
from ccbridge.translate.responses import to_responses_request
from ccbridge.translate.responses_stream import ResponsesStreamTranslator
from ccbridge.translate.stream import IncompleteAnswer, StreamTranslator
from ccbridge.translate.tool_names import original_tool_names, provider_tool_names

__all__ = [
    "PROVIDER_KINDS",
    "IncompleteAnswer",
    "ModelCapabilities",
    "ResponsesStreamTranslator",
    "StreamTranslator",
    "anthropic_error",
    "capabilities_for",
    "count_input_tokens",
    "error_body",
    "error_for_exception",
    "error_frame",
    "estimate_prompt_tokens",
    "original_tool_names",
    "parse_override",
    "provider_tool_names",
    "stream_error_for_exception",
    "strip_proxy_thinking",
    "timeout_error",
    "to_openai_request",
    "to_responses_request",
]
