"""The package's chat template with tools (book §6.5, function calling), through transformers' own
``apply_chat_template(..., tools=[...])`` and ``get_json_schema``: schemas in the system turn, assistant tool calls
and tool results rendered, the assistant mask covering the calls, and conversations without tools unchanged."""

import json

import pytest
from transformers import AutoTokenizer
from transformers.utils import get_json_schema

from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.reasoning.tools import parse_tool_calls
from hf_hundredpage.tokenization import CHAT_TEMPLATE


# The template before tools were added: conversations without tools must render exactly as it did.
TEMPLATE_BEFORE_TOOLS = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|eos|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|eos|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def get_current_temperature(location: str, unit: str = "celsius") -> float:
    """
    Get the current temperature at a location.

    Args:
        location: The location to get the temperature for, in the format "City, Country"
        unit: The unit to return the temperature in. (choices: ["celsius", "fahrenheit"])
    """
    return 22.5


SCHEMA = json.dumps(get_json_schema(get_current_temperature), ensure_ascii=False)
TOOLS_TURN = (
    "# Tools\n\nYou may call one or more functions to answer the user. The function signatures are within "
    f"<tools></tools> XML tags:\n<tools>\n{SCHEMA}\n</tools>\n\nFor each function call, return a JSON object with the "
    "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\n</tool_call><|eos|>\n"
)
CALL = {"type": "function", "function": {"name": "get_current_temperature", "arguments": {"location": "Paris, France"}}}
CONVERSATION = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Temperature in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "name": "get_current_temperature", "content": "22.5"},
    {"role": "assistant", "content": "It is 22.5 °C."},
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


def test_the_shipped_tokenizer_carries_the_template_with_tools(tokenizer):
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert "tool_calls" in CHAT_TEMPLATE and "{%- generation -%}" in CHAT_TEMPLATE


def test_tools_render_in_the_system_turn_after_the_system_message(tokenizer):
    rendered = tokenizer.apply_chat_template(CONVERSATION, tools=[get_current_temperature], tokenize=False)
    assert rendered == (
        "<|im_start|>system\nBe terse.\n\n" + TOOLS_TURN
        + "<|im_start|>user\nTemperature in Paris?<|eos|>\n"
        + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": "
          "{\"location\": \"Paris, France\"}}\n</tool_call><|eos|>\n"
        + "<|im_start|>tool\n<tool_response>\n22.5\n</tool_response><|eos|>\n"
        + "<|im_start|>assistant\nIt is 22.5 °C.<|eos|>\n"
    )


def test_tools_without_a_system_message_get_their_own_system_turn(tokenizer):
    rendered = tokenizer.apply_chat_template(CONVERSATION[1:2], tools=[get_current_temperature], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == ("<|im_start|>system\n" + TOOLS_TURN + "<|im_start|>user\nTemperature in Paris?<|eos|>\n"
                        "<|im_start|>assistant\n")


def test_text_and_several_calls_in_one_turn_and_string_arguments(tokenizer):
    second = {"name": "get_current_temperature", "arguments": '{"location": "Rome, Italy", "unit": "celsius"}'}
    message = {"role": "assistant", "content": "Checking both.", "tool_calls": [CALL, second]}
    rendered = tokenizer.apply_chat_template([CONVERSATION[1], message], tools=[get_current_temperature], tokenize=False)
    turn = rendered.split("<|im_start|>assistant\n")[1]
    assert turn == ("Checking both.\n<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": "
                    "\"Paris, France\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": "
                    "{\"location\": \"Rome, Italy\", \"unit\": \"celsius\"}}\n</tool_call><|eos|>\n")
    content, calls, errors = parse_tool_calls(turn.removesuffix("<|eos|>\n"))  # what the model would write parses back
    assert (content, errors) == ("Checking both.", [])
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_current_temperature", {"location": "Paris, France"}),
        ("get_current_temperature", {"location": "Rome, Italy", "unit": "celsius"})]


def test_the_assistant_mask_covers_the_tool_calls_and_the_answers(tokenizer):
    out = tokenizer.apply_chat_template(CONVERSATION, tools=[get_current_temperature], return_dict=True,
                                        return_assistant_tokens_mask=True)
    masked = [token for token, keep in zip(out["input_ids"], out["assistant_masks"]) if keep]
    assert tokenizer.decode(masked) == ("<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": "
                                        "{\"location\": \"Paris, France\"}}\n</tool_call><|eos|>It is 22.5 °C.<|eos|>")


@pytest.mark.parametrize("conversation", [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}],
])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_conversations_without_tools_render_exactly_as_before(tokenizer, conversation, add_generation_prompt):
    before = tokenizer.apply_chat_template(conversation, chat_template=TEMPLATE_BEFORE_TOOLS, tokenize=False,
                                           add_generation_prompt=add_generation_prompt)
    assert tokenizer.apply_chat_template(conversation, tokenize=False,
                                         add_generation_prompt=add_generation_prompt) == before
