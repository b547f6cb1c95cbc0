"""Counting a whole request as the provider does (``count_request_tokens``: OpenAI's
published recipe, tool definitions as each API receives them) and naming the output limit
as each API does (``Preflight.model_settings``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tokensieve
from tokensieve import count_request_tokens, preflight
from tokensieve._preflight import max_tokens_key
from tokensieve.compaction import REPLY_PRIMING_TOKENS, count_tools_tokens
from tests.support.reference import build_tiktoken_encoding

# The example of OpenAI's cookbook "How to count tokens with tiktoken": 129 prompt tokens
# for gpt-4-0613 / gpt-3.5-turbo-0613 (cl100k_base), 124 for gpt-4o (o200k_base).
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]
THREE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
]
WEATHER = {
    "name": "get_weather",
    "description": "The current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def recipe(messages: list[dict[str, str]], encoding: Any) -> int:
    """``num_tokens_from_messages`` of the cookbook, verbatim in substance."""
    tokens_per_message, tokens_per_name = 3, 1
    total = 0
    for message in messages:
        total += tokens_per_message
        for key, value in message.items():
            total += len(encoding.encode(value))
            if key == "name":
                total += tokens_per_name
    return total + 3  # every reply is primed with <|start|>assistant<|message|>


@pytest.mark.parametrize(("name", "published"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_count_request_tokens_matches_the_cookbooks_published_numbers(name, published, tmp_path):
    assert count_request_tokens(COOKBOOK, encoding=name) == published
    assert recipe(COOKBOOK, build_tiktoken_encoding(name, tmp_path)) == published


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_count_request_tokens_adds_the_reply_priming_to_the_messages(name, tmp_path):
    per_message = int(tokensieve.count_history_tokens(THREE, encoding=name).sum())
    assert count_request_tokens(THREE, encoding=name) == per_message + REPLY_PRIMING_TOKENS
    assert count_request_tokens(THREE, encoding=name) == recipe(THREE, build_tiktoken_encoding(name, tmp_path))


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_tools_are_counted_as_each_api_receives_them():
    chat = [{"type": "function", "function": {**WEATHER}}]
    responses = [{"type": "function", **WEATHER, "strict": False}]
    anthropic = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}]
    for api, sent in [("chat", chat), ("responses", responses), ("anthropic", anthropic)]:
        expected = tokensieve.count_tokens(compact_json(sent))
        # a plain definition is rendered in the API's shape; the API's own shape is counted as given
        assert count_tools_tokens([WEATHER], api=api) == expected, api
        assert count_tools_tokens(sent, api=api) == expected, api
    assert count_tools_tokens(chat, api="anthropic") == count_tools_tokens(anthropic, api="anthropic")


def test_pydantic_ai_tool_definitions_are_rendered_like_pydantic_ais_openai_model():
    from pydantic_ai.tools import ToolDefinition

    definition = ToolDefinition(
        name=WEATHER["name"], description=WEATHER["description"], parameters_json_schema=WEATHER["parameters"]
    )
    sent = [{"type": "function", "function": {**WEATHER}}]
    assert count_tools_tokens([definition], api="pydantic-ai") == tokensieve.count_tokens(compact_json(sent))


def test_count_request_tokens_adds_the_tools_of_the_histories_api():
    base = count_request_tokens(THREE)
    assert count_request_tokens(THREE, tools=[WEATHER]) == base + count_tools_tokens([WEATHER], api="chat")
    anthropic = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {}}]}]
    assert count_request_tokens(anthropic, tools=[WEATHER]) == count_request_tokens(anthropic) + count_tools_tokens(
        [WEATHER], api="anthropic"
    )


def test_a_tool_that_is_not_a_definition_is_an_input_type_error_naming_it():
    with pytest.raises(tokensieve.InputTypeError, match=r"tools\[1\]"):
        count_tools_tokens([WEATHER, 42])


def test_preflight_counts_the_tools_and_the_reply_priming_in_its_input_tokens():
    history = THREE + [{"role": "user", "content": "And of Spain?"}]
    plain = preflight(history)
    with_tools = preflight(history, tools=[WEATHER])
    assert plain.input_tokens == count_request_tokens(history)
    assert with_tools.input_tokens == count_request_tokens(history, tools=[WEATHER])
    assert with_tools.input_tokens > plain.input_tokens


@pytest.mark.parametrize(
    ("api", "model", "key"),
    [
        ("chat", None, "max_tokens"),
        ("chat", "openai:gpt-4o", "max_tokens"),
        ("chat", "openai:o1", "max_completion_tokens"),
        ("chat", "o3-mini", "max_completion_tokens"),
        ("chat", "openai:o4-mini-2025-04-16", "max_completion_tokens"),
        ("chat", "openai:gpt-5-mini", "max_completion_tokens"),
        ("responses", "openai:gpt-4o", "max_output_tokens"),
        ("responses", "openai:o3", "max_output_tokens"),
        ("anthropic", "anthropic:claude-sonnet-4-5", "max_tokens"),
        ("pydantic-ai", "openai:o3", "max_tokens"),
    ],
)
def test_the_output_limit_has_the_name_each_api_gives_it(api, model, key):
    assert max_tokens_key(api, model) == key


def test_model_settings_takes_its_key_from_the_detected_format_or_the_api_given():
    task = "Why does the parser drop empty lines?"
    chat = preflight([{"role": "user", "content": task}])
    responses = preflight([{"type": "message", "role": "user", "content": task}])
    anthropic = preflight([{"role": "user", "content": [{"type": "text", "text": task}, {"type": "image", "source": {}}]}])
    budget = chat.max_output_tokens
    assert chat.model_settings() == {"max_tokens": budget}
    assert responses.model_settings() == {"max_output_tokens": budget}
    assert anthropic.model_settings() == {"max_tokens": budget}
    assert chat.model_settings("responses") == {"max_output_tokens": budget}
    assert preflight([{"role": "user", "content": task}], model="openai:o3").model_settings() == {
        "max_completion_tokens": budget
    }
    assert preflight([{"role": "user", "content": task}], api="responses").model_settings() == {
        "max_output_tokens": budget
    }


def test_an_unknown_api_is_a_configuration_error():
    with pytest.raises(tokensieve.ConfigurationError, match="api must be one of"):
        preflight([{"role": "user", "content": "hi"}], api="gemini")  # type: ignore[arg-type]
