"""Translation between the Anthropic Messages API and OpenAI Chat Completions or Responses (pure, no I/O).

These are the names the rest of ccbridge uses; the capability table of the target models is beside them.
Routing translates Anthropic requests to OpenAI's APIs; the gateway (`gateway_request`, `gateway_answer`)
translates OpenAI Chat Completions requests to Anthropic and the answers back.
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
from ccbridge.translate.gateway_answer import (
    ChunkStream,
    chat_completion,
    client_status,
    models_list,
    openai_error,
)
from ccbridge.translate.gateway_answer import error_body as openai_error_body
from ccbridge.translate.gateway_request import CLAUDE_ALIASES, GatewayRequestError, messages_request, resolve_model
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
    "CLAUDE_ALIASES",
    "PROVIDER_KINDS",
    "ChunkStream",
    "GatewayRequestError",
    "IncompleteAnswer",
    "ModelCapabilities",
    "ResponsesStreamTranslator",
    "StreamTranslator",
    "anthropic_error",
    "capabilities_for",
    "chat_completion",
    "client_status",
    "count_input_tokens",
    "error_body",
    "error_for_exception",
    "error_frame",
    "estimate_prompt_tokens",
    "messages_request",
    "models_list",
    "openai_error",
    "openai_error_body",
    "original_tool_names",
    "parse_override",
    "provider_tool_names",
    "resolve_model",
    "stream_error_for_exception",
    "strip_proxy_thinking",
    "timeout_error",
    "to_openai_request",
    "to_responses_request",
]
