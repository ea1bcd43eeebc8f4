"""Tools for function calling and ReAct (book §6.5): a registry of Python functions, their JSON schemas
(`transformers.utils.get_json_schema`, the format chat templates render with ``apply_chat_template(..., tools=)``),
the parser of the model's ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Hermes/Qwen layout,
the one our chat template renders) and two built-in tools, ``calculator`` and ``python``.

Registered tools are *your* functions and run in this process: a tool is trusted code, its arguments are not (they
come from the model and are checked against the schema before the call). The ``python`` tool runs the model's code
in `sandbox.execute_python`, never here.

Tools that act on the world (send mail, delete files, pay) are marked dangerous (`dangerous_tool`, or
``register(tool, dangerous=True)``): such a call runs only when the registry's ``confirm(name, arguments)`` callback
says yes (no callback: never). ``allowed=`` restricts the tools that may run at all (an allow-list). A refused call is
answered with an error the model reads, and the tool does not run (book §6.6).
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
import math
import operator
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ToolCall:
    """One call parsed from the model's output: ``name``, ``arguments`` (a dict) and the raw text of the block."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""

    def as_message_call(self) -> dict:
        """The call as transformers' chat templates take it in an assistant message's ``tool_calls``."""
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall], list[str]]:
    """The ``<tool_call>…</tool_call>`` blocks of `text` (a block left open at the end of the generation counts).

    Returns:
        ``(content, calls, errors)``: the text outside the blocks (stripped), the calls that parse (JSON objects with a
        ``name`` and ``arguments`` or ``parameters``, an object or a JSON string of one), and one message per block that
        does not, to be shown to the model as the tool's answer.
    """
    calls, errors = [], []
    for match in TOOL_CALL.finditer(text):
        raw = match.group(1).strip()
        try:
            payload = json.loads(raw)
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                raise ValueError("expected a JSON object with a 'name'")
            arguments = payload.get("arguments", payload.get("parameters", {}))
            if isinstance(arguments, str):
                arguments = json.loads(arguments) if arguments.strip() else {}
            if not isinstance(arguments, dict):
                raise ValueError("'arguments' must be a JSON object")
        except (ValueError, json.JSONDecodeError) as err:
            errors.append(f"error: could not parse the tool call {raw[:200]!r}: {err}")
            continue
        calls.append(ToolCall(payload["name"], arguments, raw))
    content = TOOL_CALL.sub("", text).strip()
    return content, calls, errors


def tool_schema(tool: Callable | dict) -> dict:
    """A tool's JSON schema: a dict as is (already ``{"type": "function", "function": {...}}``), a function through
    `transformers.utils.get_json_schema` (type hints and a Google-style docstring with an ``Args:`` section)."""
    if isinstance(tool, dict):
        return tool
    from transformers.utils import get_json_schema

    return get_json_schema(tool)


def dangerous_tool(function: Callable) -> Callable:
    """Mark a tool function dangerous: a `ToolRegistry` runs it only after its ``confirm`` callback approves the call."""
    function.dangerous = True
    return function


class ToolRegistry:
    """Named Python functions the model may call, with their schemas; `call` checks the arguments against the schema,
    runs the function and returns its result as text (errors as text too: the model reads them and may retry).

    `allowed`: names of the tools that may run (None: all); `confirm`: ``confirm(name, arguments) -> bool``, asked
    before every call of a dangerous tool (None: dangerous tools never run)."""

    def __init__(self, tools: Sequence[Callable] = (), *, allowed: Sequence[str] | None = None,
                 confirm: Callable[[str, dict], bool] | None = None):
        self.functions: dict[str, Callable] = {}
        self.schemas: list[dict] = []
        self.dangerous: set[str] = set()
        self.allowed = None if allowed is None else set(allowed)
        self.confirm = confirm
        for tool in tools:
            self.register(tool)

    def register(self, tool: Callable, *, dangerous: bool | None = None) -> Callable:
        schema = tool_schema(tool)
        name = schema["function"]["name"]
        if name in self.functions:
            raise ValueError(f"two tools are named {name!r}")
        self.functions[name] = tool
        self.schemas.append(schema)
        if dangerous if dangerous is not None else getattr(tool, "dangerous", False):
            self.dangerous.add(name)
        return tool

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def __len__(self) -> int:
        return len(self.functions)

    def parameters(self, name: str) -> list[str]:
        return list(self._schema(name)["parameters"].get("properties", {}))

    def _schema(self, name: str) -> dict:
        return next(s["function"] for s in self.schemas if s["function"]["name"] == name)

    def check(self, name: str, arguments: dict) -> str | None:
        """None when `name` is a tool and `arguments` fit its schema, else the error to show the model."""
        if name not in self.functions:
            close = difflib.get_close_matches(name, list(self.functions), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"error: no tool named {name!r}{hint}; the tools are {sorted(self.functions)}"
        parameters = self._schema(name)["parameters"]
        unknown = sorted(set(arguments) - set(parameters.get("properties", {})))
        missing = [p for p in parameters.get("required", []) if p not in arguments]
        if unknown or missing:
            return (f"error: {name} takes {sorted(parameters.get('properties', {}))}"
                    + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
        return None

    def permit(self, name: str, arguments: dict) -> str | None:
        """None when the policy lets the call run (allow-list, then confirmation of dangerous tools), else the error."""
        if self.allowed is not None and name not in self.allowed:
            return f"error: the tool {name!r} is not allowed here; it did not run"
        if name in self.dangerous and not (self.confirm is not None and self.confirm(name, dict(arguments))):
            return f"error: {name!r} is a dangerous tool and the call was not confirmed; it did not run"
        return None

    def execute(self, name: str, arguments: dict) -> tuple[str, bool]:
        """`call`, and whether the tool ran: its text is then the tool's output (untrusted: spotlight it), else one of
        our own error messages."""
        problem = self.check(name, arguments) or self.permit(name, arguments)
        if problem:
            return problem, False
        try:
            result = self.functions[name](**arguments)
        except Exception as err:  # noqa: BLE001  (the model's arguments made the tool fail: tell the model)
            return f"error: {type(err).__name__}: {err}", True
        if isinstance(result, (dict, list)):
            return json.dumps(result, ensure_ascii=False), True
        return str(result), True

    def call(self, name: str, arguments: dict) -> str:
        """Run tool `name` with `arguments` if the schema and the policy (`permit`) allow; its result as text (JSON for
        dicts and lists), or the error."""
        return self.execute(name, arguments)[0]

    def describe(self) -> str:
        """One line per tool, ``name(arg, ...): description``, for text prompts (ReAct)."""
        lines = []
        for schema in self.schemas:
            function = schema["function"]
            args = ", ".join(function["parameters"].get("properties", {}))
            lines.append(f"{function['name']}({args}): {function.get('description', '').strip()}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ built-in tools

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log, "exp": math.exp}


def _evaluate(node: ast.AST):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise ValueError(f"unsupported expression {ast.unparse(node)!r}")


def calculator(expression: str) -> float:
    """
    Evaluate an arithmetic expression and return its value.

    Args:
        expression: An arithmetic expression with numbers, + - * / // % ** and parentheses, e.g. "(12 + 5) * 3"
    """
    if len(expression) > 200:
        raise ValueError("expression longer than 200 characters")
    value = _evaluate(ast.parse(expression.strip(), mode="eval"))
    return int(value) if isinstance(value, float) and value.is_integer() else value


def python(code: str) -> str:
    """
    Run a Python program in a sandbox and return what it prints.

    Args:
        code: A complete Python program that prints its result
    """
    from .sandbox import execute_python

    result = execute_python(code, timeout_s=5.0)
    return result.stdout.strip() if result.ok else f"{result.stdout.strip()}\nerror: {result.error}".strip()


BUILTIN_TOOLS: dict[str, Callable] = {"calculator": calculator, "python": python}


def resolve_tools(names: Sequence[str]) -> list[Callable]:
    """Tools by name: built-in (`BUILTIN_TOOLS`) or a dotted import path to your function (``my_tools.weather``,
    importable from the current folder)."""
    tools = []
    for name in names:
        if name in BUILTIN_TOOLS:
            tools.append(BUILTIN_TOOLS[name])
            continue
        module_name, _, attribute = name.rpartition(".")
        if not module_name:
            raise ValueError(f"unknown tool {name!r}: pass one of {sorted(BUILTIN_TOOLS)} or a dotted import path")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # `my_tools.weather` next to where the command runs
        try:
            func = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"tool {name!r} does not import: {err}") from None
        if not callable(func):
            raise ValueError(f"tool {name!r} is not a function")
        tools.append(func)
    return tools
