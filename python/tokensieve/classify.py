"""What the next model request is for, and how many output tokens it should get.

:func:`classify_task` reads a history from its end and names the task of the next
request: ``TOOL_CALL``, ``CODE_GENERATION``, ``EXPLANATION``, ``PLANNING``, ``REVIEW`` or
``UNKNOWN``. The task picks the request's ``max_tokens`` from the config's
:class:`~tokensieve.config.OutputBudgets` (the reference design's table: 300, 3000, 1800,
1200, 1500, 1500).

It reads two things, and never the text of tool results:

- the **current task**: the latest user-authored prompt (OpenAI / Responses ``user``
  content; Anthropic ``text`` blocks of a user message, not its ``tool_result`` blocks;
  pydantic-ai ``UserPromptPart``, not ``ToolReturnPart`` nor retry feedback);
- the **state of the tool loop**: whether the history ends inside one (tool results after
  the last model response, or a last response whose calls are unanswered), which tools the
  model called since the current task began, and whether their arguments carry code.

A tool result saying "could not read config file" therefore cannot turn a
code-generation task into a 300-token tool call (the reference implementation's bug).

Decision list (first match wins):

1. **Empty history**, or nothing readable: ``UNKNOWN``.
2. **Current task.** Scanning back from the end (at most ``MAX_SCAN`` messages), the
   latest user-authored prompt. A prompt that only continues (``"continue"``,
   ``"go ahead"``, ``"do it"``; ``"yes"`` / ``"ok"`` only when the model's message before
   it ended with a question) stands for the prompt before it, up to 3 deep; ``"go ahead"``
   after a PLANNING or REVIEW task means "make those changes": ``CODE_GENERATION``.
3. **The prompt's class**, by keyword rules (deterministic, no model): the leading verb of
   each clause after politeness (``"can you"``, ``"please"``, ``"let's"``) counts most
   (``fix``/``add``/``implement`` code, ``explain``/``why``/``how does`` explanation,
   ``plan``/``outline``/``break down`` planning, ``review``/``critique``/``audit`` review,
   ``run``/``list``/``grep``/``git ...`` tool call), plus phrases anywhere (``"plan of
   attack"``, ``"what am I missing"``, ``"walk me through"``, ``"how many"``), plus the
   shape of the prompt (a pasted diff leans REVIEW, a pasted traceback leans
   CODE_GENERATION). Text inside code fences, inline code and quotes does not count;
   ``"don't write code yet"`` cancels code generation. Greetings, thanks and
   acknowledgements, and prompts with no cue at all, are ``UNKNOWN``. Ties go to the
   larger budget (CODE_GENERATION, EXPLANATION, REVIEW, PLANNING, TOOL_CALL).
4. **The model is writing code through tools**: since the current task began it called a
   file-writing tool (a name like ``write_file``, ``edit_file``, ``apply_patch``,
   ``create_file``, ``str_replace_based_edit_tool``) with code in its arguments, or a
   shell command that writes files (``cat > f <<EOF``, ``tee``, ``sed -i``,
   ``git apply``): ``CODE_GENERATION``, whatever the prompt said (its next step may write
   code again).
5. **Inside a read-only tool loop** (reading, searching, running tests): a task that is
   CODE_GENERATION, EXPLANATION, PLANNING or REVIEW keeps its class (the loop gathers
   context for that task, and its next step may be the task's own output: code through
   a tool call, or the final answer); a TOOL_CALL or UNKNOWN task is ``TOOL_CALL``.
6. Otherwise: the prompt's class.

**Escalation.** When the latest model response was cut off by the output limit
(OpenAI chat ``finish_reason == "length"`` on the assistant dict, Responses
``status == "incomplete"`` with ``incomplete_details.reason == "max_output_tokens"`` or
no details, pydantic-ai ``ModelResponse.finish_reason == "length"``, Anthropic
``stop_reason == "max_tokens"`` on the assistant dict), the budget is the classified
task's budget doubled, capped at ``config.model_max_output_tokens``, and ``escalated`` is
True. Each further cut-off response in a row (separated only by tool results or
continuation prompts) doubles it again, so repeated "continue" turns cannot stall at the
same limit.

Cost: pure Python with no imports beyond the standard library's ``re``; it reads
backwards and stops at the current task, at most ``MAX_SCAN`` messages and the first
``_HEAD`` / last ``_TAIL`` characters of the prompt, so a call takes tens of microseconds
whatever the history's length (about 10 µs when the prompt was seen before: prompt
classifications are memoized). Each rule's regex is compiled once, on first use, so
importing the module compiles nothing.

Example:
    >>> from tokensieve.classify import classify_task
    >>> history = [
    ...     {"role": "user", "content": "Add a load_settings() that reads config/app.toml"},
    ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
    ...         "function": {"name": "read_file", "arguments": '{"path": "config/app.toml"}'}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "Error: could not read config file"},
    ... ]
    >>> result = classify_task(history, "cerebras")
    >>> result.task.value, result.max_output_tokens
    ('CODE_GENERATION', 3000)
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.errors import ConfigurationError, InputTypeError, _format_argument

__all__ = ["MAX_SCAN", "TaskClassification", "TaskType", "classify_task"]

#: The most messages :func:`classify_task` reads, from the end of the history.
MAX_SCAN = 256
# Of a long prompt, the first _HEAD and last _TAIL characters are read.
_HEAD = 3000
_TAIL = 1000
# Continuation prompts ("continue", "go ahead") followed back to the task they continue.
_MAX_CONTINUATIONS = 3
# The latest tool calls of the current task checked for code writing.
_MAX_CALLS = 32


class TaskType(str, enum.Enum):
    """The task classes of :func:`classify_task`; each value equals its name.

    Example:
        >>> from tokensieve.classify import TaskType
        >>> TaskType.REVIEW.value, TaskType("TOOL_CALL") is TaskType.TOOL_CALL
        ('REVIEW', True)
    """

    TOOL_CALL = "TOOL_CALL"
    CODE_GENERATION = "CODE_GENERATION"
    EXPLANATION = "EXPLANATION"
    PLANNING = "PLANNING"
    REVIEW = "REVIEW"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


_T = TaskType
# Ties go to the larger budget: a budget too small truncates the answer, one too large
# costs nothing but headroom.
_PRIORITY = (_T.CODE_GENERATION, _T.EXPLANATION, _T.REVIEW, _T.PLANNING, _T.TOOL_CALL)


@dataclass(frozen=True, slots=True)
class TaskClassification:
    """The task of the next model request, and its output budget.

    Attributes:
        task: the task class.
        confidence: how sure the rules are, from 0 (a guess) to 1.
        reasons: short human-readable notes on what decided it.
        max_output_tokens: the ``max_tokens`` to send with the request.
        escalated: True when the budget was raised because the previous response was cut
            off by the output limit.

    Example:
        >>> from tokensieve.classify import classify_task
        >>> c = classify_task([{"role": "user", "content": "review this diff please"}])
        >>> c.task.value, c.max_output_tokens, c.escalated
        ('REVIEW', 1500, False)
    """

    task: TaskType
    confidence: float
    reasons: tuple[str, ...]
    max_output_tokens: int
    escalated: bool


class _Lazy:
    """A regex compiled on its first use, once: importing the module compiles nothing
    (the rules' ~90 patterns take ~20 ms to compile), and a phrase whose needles never
    appear is never compiled."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags

    def __getattr__(self, name: str) -> Any:
        compiled = re.compile(self.pattern, self.flags)
        for method in ("search", "match", "fullmatch", "sub", "split", "findall", "finditer"):
            setattr(self, method, getattr(compiled, method))  # later calls skip __getattr__
        return getattr(compiled, name)


# ---- Reading messages ---------------------------------------------------------------------
#
# Each message is read into a tuple (side, prompt, results, calls, cutoff, text):
#   side: _SYSTEM, _REQUEST, _RESPONSE or _OTHER;
#   prompt: the user-authored text of a request (None when it has none);
#   results: whether a request carries tool results;
#   calls: the (tool name, arguments) of a response's tool calls;
#   cutoff: how a response says it was cut off by the output limit (None if it was not);
#   text: the tail of a response's text (to see whether it asked the user something).

_OTHER, _SYSTEM, _REQUEST, _RESPONSE = range(4)
_NOTHING = (_OTHER, None, False, (), None, "")
_SYSTEM_MSG = (_SYSTEM, None, False, (), None, "")
_RESULTS_MSG = (_REQUEST, None, True, (), None, "")

_FORMATS = {
    "pydantic-ai": "pydantic-ai",
    "pydantic_ai": "pydantic-ai",
    "openai": "dict",
    "chat": "dict",
    "responses": "dict",
    "openai-responses": "dict",
    "anthropic": "dict",
}
_RETRY_FRAMING = "Your previous response failed the application's validation"
_LENGTH_REASONS = ("length", "max_tokens", "max_output_tokens")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _cutoff_of_dict(m: dict) -> str | None:
    finish = m.get("finish_reason")
    if finish in _LENGTH_REASONS:
        return f"finish_reason={finish!r}"
    stop = m.get("stop_reason")
    if stop in _LENGTH_REASONS:
        return f"stop_reason={stop!r}"
    if m.get("status") == "incomplete":
        details = m.get("incomplete_details")
        reason = _get(details, "reason") if details is not None else None
        if reason is None or reason == "max_output_tokens":
            return "status='incomplete' (max_output_tokens)"
    return None


def _texts(content: Any, into: list[str]) -> bool:
    """Appends the text items of a content list to ``into``; True if it holds tool results."""
    results = False
    for item in content[:64] if isinstance(content, (list, tuple)) else ():
        if isinstance(item, str):
            into.append(item)
        elif isinstance(item, dict):
            kind = item.get("type")
            if kind == "tool_result":
                results = True
            elif kind in ("text", "input_text", "output_text") or kind is None:
                text = item.get("text")
                if isinstance(text, str):
                    into.append(text)
    return results


def _read_dict(m: Any) -> tuple:
    """An OpenAI chat message, a Responses item or an Anthropic message, by its shape."""
    if not isinstance(m, dict):
        return _read_object(m) if hasattr(m, "parts") else _NOTHING
    role = m.get("role")
    if role is None:
        kind = m.get("type")
        if not isinstance(kind, str):
            return _read_object(m) if "parts" in m and "kind" in m else _NOTHING
        if kind.endswith("_call_output"):
            return _RESULTS_MSG
        if kind == "compaction":
            return _SYSTEM_MSG
        calls: tuple = ()
        if kind.endswith("_call") and "call_id" in m:
            args = m.get("arguments")
            if args is None:
                args = m.get("input")
            if args is None:
                args = m.get("action")
            calls = ((m.get("name") or kind, args),)
        return (_RESPONSE, None, False, calls, _cutoff_of_dict(m), "")
    content = m.get("content")
    if role == "user":
        if isinstance(content, str):
            return (_REQUEST, content, False, (), None, "")
        texts: list[str] = []
        results = _texts(content, texts)
        prompt = "\n".join(texts) if texts else (None if results else "")
        return (_REQUEST, prompt, results, (), None, "")
    if role == "assistant":
        texts = []
        if isinstance(content, str):
            texts.append(content)
        calls_list = []
        if isinstance(content, (list, tuple)):
            for block in content[:64]:
                if isinstance(block, dict):
                    kind = block.get("type")
                    if kind == "tool_use":
                        calls_list.append((block.get("name"), block.get("input")))
                    elif kind in ("text", "output_text"):
                        text = block.get("text")
                        if isinstance(text, str):
                            texts.append(text)
        tool_calls = m.get("tool_calls")
        if isinstance(tool_calls, (list, tuple)):
            for call in tool_calls[:64]:
                if isinstance(call, dict):
                    fn = call.get("function")
                    if isinstance(fn, dict):
                        calls_list.append((fn.get("name"), fn.get("arguments")))
                    else:
                        custom = call.get("custom")
                        if isinstance(custom, dict):
                            calls_list.append((custom.get("name"), custom.get("input")))
        legacy = m.get("function_call")
        if isinstance(legacy, dict):
            calls_list.append((legacy.get("name"), legacy.get("arguments")))
        return (_RESPONSE, None, False, tuple(calls_list), _cutoff_of_dict(m), texts[-1][-200:] if texts else "")
    if role in ("tool", "function"):
        return _RESULTS_MSG
    if role in ("system", "developer"):
        return _SYSTEM_MSG
    return _NOTHING


def _prompt_text(content: Any) -> str | None:
    if isinstance(content, str):
        return None if content.startswith(_RETRY_FRAMING) else content
    texts: list[str] = []
    for item in content[:64] if isinstance(content, (list, tuple)) else ():
        text = item if isinstance(item, str) else _get(item, "content")
        if isinstance(text, str):
            texts.append(text)
    return "\n".join(texts)


def _read_object(m: Any) -> tuple:
    """A pydantic-ai ModelRequest / ModelResponse (or its dict dump), by part_kind."""
    kind = _get(m, "kind")
    parts = _get(m, "parts")
    if not isinstance(parts, (list, tuple)):
        return _NOTHING
    if kind == "response":
        calls = []
        text = ""
        for part in parts[:64]:
            part_kind = _get(part, "part_kind")
            if part_kind == "tool-call":
                calls.append((_get(part, "tool_name"), _get(part, "args")))
            elif part_kind == "text":
                content = _get(part, "content")
                if isinstance(content, str):
                    text = content
        finish = _get(m, "finish_reason")
        cutoff = f"finish_reason={finish!r}" if finish == "length" else None
        return (_RESPONSE, None, False, tuple(calls), cutoff, text[-200:])
    if kind == "request":
        prompts: list[str] = []
        results = False
        system = False
        for part in parts[:64]:
            part_kind = _get(part, "part_kind")
            if part_kind == "user-prompt":
                prompt = _prompt_text(_get(part, "content"))
                if prompt is not None:
                    prompts.append(prompt)
            elif part_kind == "tool-return" or (part_kind == "retry-prompt" and _get(part, "tool_name")):
                results = True
            elif part_kind == "system-prompt":
                system = True
        if prompts or results:
            return (_REQUEST, "\n".join(prompts) if prompts else None, results, (), None, "")
        return _SYSTEM_MSG if system else (_REQUEST, None, False, (), None, "")
    return _NOTHING


def _read_any(m: Any) -> tuple:
    if isinstance(m, dict):
        return _read_dict(m)
    if hasattr(m, "parts") and hasattr(m, "kind"):
        return _read_object(m)
    return _NOTHING


def _safe(reader: Any, m: Any) -> tuple:
    try:
        return reader(m)
    except Exception:  # odd shapes are unknown, never an error
        return _NOTHING


# ---- Tool calls that write code -----------------------------------------------------------

_WRITE_TOOL = _Lazy(
    r"write|edit|patch|replace|insert|create|append|save|apply|modify|update|overwrite|put_?file|new_?file|diff"
)
_SHELL_TOOL = _Lazy(r"bash|shell|sh$|exec|command|terminal|run|console|cmd")
_SHELL_WRITES = _Lazy(
    r"<<-?\s*['\"]?\w+|\btee\b|\bsed\s+-i|\bapply_patch\b|\bgit\s+apply\b|\bpatch\s+-p|\bperl\s+-pi"
    r"|(?:^|[;&|]\s*|\s)(?:cat|echo|printf)\b[^|;&\n]*>>?\s*[\w./~-]"
)
# Argument keys that hold file contents or edits.
_CODE_KEYS = frozenset(
    "content contents new_str new_string file_text code patch diff source text new_content "
    "replacement body input edits new_source".split()
)
# Keys that only an editing tool uses: code under them counts whatever the tool's name.
_EDIT_KEYS = frozenset("new_str new_string file_text patch diff new_content new_source edits".split())
# In JSON-text arguments: the start of the string value under such a key.
_JSON_CODE_VALUE = _Lazy(r'"(%s)"\s*:\s*"((?:[^"\\]|\\.){0,400})' % "|".join(sorted(_CODE_KEYS)))
_JSON_EDIT_VALUE = _Lazy(r'"(%s)"\s*:\s*(\[|"(?:[^"\\]|\\.){0,400})' % "|".join(sorted(_EDIT_KEYS)))
_CODE_CHARS = _Lazy(r"[\n(){};=<>]|\\n")


def _is_code(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip()) and _CODE_CHARS.search(value, 0, 2000) is not None
    if isinstance(value, (list, tuple)):
        return any(_is_code(v) or (isinstance(v, dict) and any(_is_code(x) for x in list(v.values())[:8]))
                   for v in value[:8])
    return False


def _command_text(args: Any) -> str:
    if isinstance(args, str):
        return args[:4000]
    if isinstance(args, dict):
        for key in ("command", "cmd", "script", "commands", "input"):
            value = args.get(key)
            if isinstance(value, str):
                return value[:4000]
            if isinstance(value, (list, tuple)):
                return " ".join(str(v) for v in value[:64])
    return ""


def _writes_code(name: Any, args: Any) -> bool:
    """Whether a tool call writes code: a file-writing tool with code in its arguments,
    or a shell command that writes files."""
    name = name.lower() if isinstance(name, str) else ""
    writer = _WRITE_TOOL.search(name) is not None
    if isinstance(args, str):
        head = args[:4000]
        if head.lstrip().startswith("{"):  # JSON text: look at the values under code keys
            for match in _JSON_CODE_VALUE.finditer(head) if writer else ():
                if _is_code(match.group(2)):
                    return True
            for match in _JSON_EDIT_VALUE.finditer(head):
                if match.group(2) == "[" or _is_code(match.group(2)):
                    return True
        elif writer and _is_code(head):  # freeform input (a custom tool such as apply_patch)
            return True
    elif isinstance(args, dict):
        for key, value in list(args.items())[:16]:
            if key in _EDIT_KEYS or (writer and key in _CODE_KEYS):
                if _is_code(value):
                    return True
    if _SHELL_TOOL.search(name) or name.endswith("_call"):
        return _SHELL_WRITES.search(_command_text(args)) is not None
    return False


# ---- Classifying a prompt -----------------------------------------------------------------

_FENCE = _Lazy(r"```([^\n`]*)\n?(.*?)(?:```|\Z)", re.S)
_INLINE = _Lazy(r"`[^`\n]{1,300}`")
_QUOTED = _Lazy(r"(?<![\w'])'[^'\n]{1,100}'(?![\w'])|\"[^\"\n]{1,200}\"")
_DIFF = _Lazy(r"^(?:diff --git |index [0-9a-f]+\.\.|@@ -\d|\+\+\+ [ab/]|--- (?:a/|/dev/null))", re.M)
_DIFF_LINES = _Lazy(r"^(?:[+\-@ \\]|diff |index ).*$", re.M)
_TRACE = _Lazy(r"traceback \(most recent call last\)|^\s*file \"[^\"]+\", line \d+|^\s+at \S+ \(|"
                    r"\b[a-z]\w*(?:error|exception)\b:|\bpanicked at\b", re.M | re.I)
_WORDS = _Lazy(r"[a-z][a-z0-9'+#-]*")
_CLAUSES = _Lazy(r"(?:[.!?;:]+(?=\s|$)|\n)+\s*|,\s*|\s[-—]+\s|\s+(?:and then|and also|and|then|but|also|plus)\s+")

# Whole prompts that are greetings, thanks, acknowledgements or small talk.
_ACK_WORDS = frozenset(
    """hi hello hey there yo sup hiya thanks thank you thx ty tysm cheers cool nice great awesome perfect
    ok okay k kk got it good job work well done lol haha hmm hm huh what wait interesting never mind
    nevermind nvm brb bye goodbye morning afternoon evening night gm gn that thats that's worked works
    all for today a lot so much sure sorry oops i'm im back who are can do yes no yep nope alright
    right sounds fine wow neat again anyway not now later see ya u r man mate dude buddy""".split()
)
_META = _Lazy(r"^(?:who are you|what are you|what can you do|are you there|you there|are you (?:a )?(?:bot|ai|human))\b")

_PLAN_NOUNS = (r"plan|roadmap|checklist|outline|strategy|approach|proposal|rfc|timeline|milestones?|"
               r"breakdown|game plan|design doc|todo list|task list|steps")
_RE_PLAN_OBJECT = _Lazy(r"^(?:\S+\s+){0,4}?(?:%s)\b" % _PLAN_NOUNS)
_RE_REVIEW_OBJECT = _Lazy(r"^(?:\S+\s+){0,3}?(?:review|feedback|critique|code review)\b")
_RE_EXPLAIN_OBJECT = _Lazy(r"^(?:\S+\s+){0,3}?(?:explanation|overview|summary|rundown|tour|example|"
                                r"intro|introduction|eli5|description)\b")
_RE_TOOL_CREATE = _Lazy(r"^(?:a |an |the |new |another )*(?:new )?(?:git )?(?:branch|tag|venv|virtualenv|"
                             r"virtual env|pull request|pr|issue|release|database|db|bucket|stash|worktree|commit)\b")
_RE_TOOL_BUILD = _Lazy(r"^(?:the |this |our |a )?(?:docker |wheel |release )?(?:image|project|package|wheel|"
                            r"docs|container|binary|release|app|site|it|frontend|assets|everything|repo)\b")
_RE_CHECK_REVIEW = _Lazy(r"^(?:over |out )?(?:(?:my|this|these|the following|that|our)\b|"
                              r"(?:the )?(?:diff|patch|pr|changes?|implementation|commit)\b)|^over\b")
_RE_FIND_REVIEW = _Lazy(r"^(?:any |the |all |potential |possible )?(?:bugs?|issues|problems|flaws|mistakes|"
                             r"vulnerabilit\w*|security (?:holes|issues)|race conditions?|edge cases)\b")
_RE_LOOK_REVIEW = _Lazy(r"^(?:at |over |through )?(?:my|this|these|the|our)?\s*(?:\S+\s+)?"
                             r"(?:changes?|diff|pr|patch|commit|pull request|implementation|code|branch|"
                             r"migration|readme)\b")
_INTO_PLAN = _Lazy(r"\binto (?:\S+ )?(?:milestones|phases|steps|tickets|tasks|stages|sprints|epics|work ?items)\b")
_RE_GET_CODE = _Lazy(r"^(?:\S+\s+){0,4}?(?:passing|working|green|to pass|to work|to compile|compiling)\b")
_RE_TELL_EXPLAIN = _Lazy(r"^me (?:how|why|about|more|what\b.{0,80}\b(?:does|do|means?|is for|are for))\b")

_CODE_VERBS = frozenset(
    """fix implement add write create refactor rewrite rename update change modify convert port migrate
    generate remove delete replace bump patch optimize optimise extract inline split move make scaffold
    stub wire hook handle support resolve clean tidy simplify dedupe deduplicate parametrize parameterize
    annotate translate upgrade downgrade rework restructure reorganize reorganise introduce extend adapt
    swap drop deprecate revert undo fill finish complete setup configure enable disable allow prevent
    ensure increase decrease limit sort tweak adjust improve correct repair wrap append insert include
    expose store persist use switch turn pull break rewire code debug implementing fixing adding writing
    speed cache memoize vendor pin unpin lower raise return throw log validate sanitize escape""".split()
)
_TOOL_VERBS = frozenset(
    """run execute rerun re-run list print cat open read grep search locate lookup count install uninstall
    start stop restart kill launch deploy commit push pull fetch checkout stash rebase tag clone compile
    lint format tail ping curl download upload ls cd mkdir query show check find verify benchmark profile
    time measure diff blame reinstall clear purge""".split()
)
_COMMANDS = frozenset(
    """git pip pip3 npm npx yarn pnpm pytest cargo docker docker-compose kubectl uv poetry ruff mypy tox nox
    node python python3 gh ls cat grep rg curl terraform helm bundle rake mvn gradle""".split()
)
_EXPLAIN_VERBS = frozenset("explain describe clarify understand teach define summarize summarise eli5 elaborate".split())
_PLAN_VERBS = frozenset(
    """plan outline propose design architect sketch map lay scope prioritize prioritise sequence estimate
    brainstorm strategize draft roadmap""".split()
)
_REVIEW_VERBS = frozenset(
    """review critique audit sanity-check proofread nitpick assess evaluate grade rate vet double-check
    inspect critic""".split()
)
_STATUS = _Lazy(r"^(?:is|are)\s+(?:\S+\s+){0,3}?(?:running|installed|up|down|listening|reachable|available|"
                     r"open|enabled|configured|set|deployed|merged|green|passing|failing)\b")

# Politeness and filler before the verb: "ok so can you please ...".
_FILLER = _Lazy(
    r"^(?:(?:hey|hi|hello|ok|okay|so|now|also|and|then|next|great|cool|thanks|thank you|thx|alright|right|"
    r"well|quick one|quick question|btw|pls|plz|please|kindly|actually|first|firstly|finally|lastly|just|"
    r"maybe|perhaps|again|yes|yeah|no|oh|ah|hmm+|todo|task|looks good|sounds good|perfect|nice|instead|"
    r"one more thing|real quick|quickly)\b[\s,:!.-]*)+"
)
_POLITE = _Lazy(
    r"^(?:(?:can|could|would|will) (?:you|u)(?: please| pls| also| quickly| maybe)*|(?:i|we)(?:'d| would) like "
    r"you to|i want you to|i need you to|help me(?: to)?|let'?s(?: also)?|go ahead and|try to|try and|make "
    r"sure (?:to|you)|you should|be sure to|feel free to|remember to|don'?t forget to|please)\s+"
)
_STATEMENT = _Lazy(
    r"^(?:(?:i|we) (?:need|want|have|would like|'d like|got|must|should) to|(?:i|we)'d like to|"
    r"(?:i'm|i am|we're|we are) (?:trying|going|looking|hoping|planning) to|the goal is to|time to|need to|"
    r"(?:it|this) (?:should|must|needs to))\s+"
)

# "we need retry with backoff", "I want a plan for ...": a wish whose object says what it is.
_WISH = _Lazy(r"^(?:i|we) (?:need|want|would like|'d like)(?! to\b)(?: (?:you to|some|an?|the))?\s+")

_NO_CODE = _Lazy(
    r"\b(?:don'?t|do not|no need to|without)\s+(?:\w+\s+)?(?:writ|chang|touch|modify|edit|implement|cod|start)\w*"
    r"(?:\s+(?:any|the)?\s*(?:code|anything|files?|yet|implementation))|\bno code\b|\bbefore (?:you |we |i )?"
    r"(?:writ|touch|chang|cod|implement|start)\w*(?:\s+(?:any|the)?\s*(?:code|anything|files?))?|\bjust (?:a |the )?plan\b"
)

# (class, weight, needles, pattern): phrases that count wherever they are. The pattern is only
# searched when one of its needles (|-separated substrings, one of which every match
# contains) is in the text: a substring test costs far less than a regex search.
_PHRASES: list[tuple[TaskType, float, tuple[str, ...], _Lazy]] = [
    (_T.CODE_GENERATION, w, tuple(n.split("|")), _Lazy(p)) for w, n, p in [
        (2.0, 'fix', r"\bfix(?:es|ed|ing)?\b|\bbugfix\b"),
        (1.5, 'implement|refactor|rewrite', r"\b(?:implement|refactor|rewrite|re-?implement)\b"),
        (2.0, 'sort|handle', r"\bsort (?:it|this|that) out\b|\bhandle (?:it|this|that) (?:gracefully|properly|correctly)\b"),
        (2.0, 'make', r"\bmake (?:it|this|that|them|the \S+|\S+) (?:work|pass|faster|accept|support|reconnect|handle|"
              r"return|use|include|stop|ignore|retry|persist|respect|configurable|async|thread-?safe)\b"),
        (2.0, 'get', r"\bget (?:it|this|that|them|\S+)(?: \S+)? (?:passing|working|green|to pass|to work)\b"),
        (1.0, 'add', r"\badd (?:a |an |the |some )?[\w-]+ (?:to|for|in|on)\b"),
        (1.5, 'write', r"\bwrite (?:a|an|the|some|unit|tests?|me)\b"),
        (2.0, 'now', r"\bnow (?:add|write|fix|make|implement|update|change|remove|rename|create|use)\b"),
        (1.0, "n't|not|never|no longer|stopped|fails to", r"\b(?:doesn't|does not|isn't|won't|can't|never|no longer|stopped|fails to) (?:work|persist|fire|"
              r"load|save|render|show|update|compile|return|exit|reconnect|respect|handle|parse|import)\w*"),
        (1.0, 'crash|chok|break|broke|drops|hangs|leaks|regressed', r"\b(?:crash(?:es|ing)?|chokes?|breaks|broke|is broken|drops|hangs|leaks|regressed)\b"),
        (1.5, 'should|must|needs to|has to|ought to', r"\b(?:should|must|needs to|has to|ought to)\b(?! (?:i|we|you)\b)"),
        (2.0, 'as a', r"^as an? [\w -]{1,30},? (?:i|we) (?:want|need|would like)\b"),
    ]
] + [
    (_T.EXPLANATION, w, tuple(n.split("|")), _Lazy(p)) for w, n, p in [
        (2.0, 'why', r"\bwhy\b"),
        (3.0, 'how come|eli5|walk me through', r"\bhow come\b|\beli5\b|\bwalk me through\b"),
        (2.5, 'explain|explanation', r"\bexplain|\bexplanation\b"),
        (3.0, "help me|i don't|i do not|i didn't|i can't", r"\b(?:help me|i (?:don't|do not|didn't|can't)) (?:understand|get|see)\b"),
        (2.0, "confus|i'm lost", r"\bconfus(?:ed|ing)\b|\bi'm lost\b"),
        (2.0, 'what', r"\bwhat (?:does|do|did)\b.{1,80}\b(?:do|mean|means|buy|return|match|matches|for)\b"),
        (1.5, 'between|vs|versus', r"\bdifferences? between\b|\bvs\.?\b|\bversus\b"),
        (1.5, 'how', r"\bhow (?:does|do|did|is|are|was|were)\b"),
        (2.0, 'what happens', r"\bwhat happens\b"),
        (2.0, 'trade|pros and cons', r"\btrade-?offs?\b|\bpros and cons\b"),
        (1.0, 'mean', r"\bmean(?:s|ing)?\b"),
        (2.0, 'is it', r"\bis it (?:safe|ok|okay|possible|necessary|normal|true|bad|fine|expected|worth)\b"),
        (2.0, "when should|what's the|what is the", r"\bwhen should\b|\bwhat's the (?:point|purpose|idea|reason)\b|\bwhat is the (?:point|purpose|idea|reason)\b"),
        (2.0, 'what', r"\bwhat (?:is|are|'s) (?:this|that|a|an|the)\b.{0,60}\bfor\s*(?:$|[.?!])"),
    ]
] + [
    (_T.PLANNING, w, tuple(n.split("|")), _Lazy(p)) for w, n, p in [
        (3.0, 'plan', r"\bplan\b|\bplanning\b"),
        (2.5, 'roadmap|rollout|roll-out|path|rfc|milestone|phase|in stages|checklist|epic|tickets', r"\broadmap|\brollout\b|\broll-out\b|\bmigration path\b|\bupgrade path\b|\brfc\b|\bmilestones?\b|"
              r"\bphases\b|\bphased\b|\bin stages\b|\bchecklist\b|\bepic\b|\btickets\b"),
        (1.0, 'step', r"\bsteps?\b"),
        (2.5, 'step|order', r"\bwhat (?:are )?(?:the )?steps\b|\bstep[- ]by[- ]step\b|\border of operations\b|\b(?:what|which) order\b"),
        (1.5, 'strateg|approach', r"\bstrateg(?:y|ies)\b|\bapproach\b"),
        (4.0, 'how', r"\bhow (?:should|would|do|can|could|might) (?:we|i|you) (?:approach|structure|tackle|go about|"
              r"organi[sz]e|sequence|split|plan|prioriti[sz]e|order|roll|migrate|break)\b"),
        (3.0, 'what would', r"\bwhat would\b.{1,80}\blook like\b"),
        (1.0, 'architecture|design', r"\barchitecture\b|\bdesign\b"),
        (2.0, 'priorit|sequence|scope|estimate|break|map out|lay out|think|sketch', r"\bprioriti[sz]e|\bsequence\b|\bscope (?:it|this|that|out)\b|\bestimate\b|\bbreak (?:it |this |that |"
              r"the \S+ |\S+ )?down\b|\bmap out\b|\blay out\b|\bthink (?:through|about)\b|\bsketch\b"),
        (2.0, 'first|start', r"\bwhat (?:to|should (?:we|i)) (?:tackle|do|fix|address|work on) first\b|\bwhere (?:to|should we|do we) start\b"),
    ]
] + [
    (_T.REVIEW, w, tuple(n.split("|")), _Lazy(p)) for w, n, p in [
        (3.0, 'review', r"\breview(?:er|ing)?\b"),
        (3.0, 'critique|audit|feedback|sanity|double|second|nit|lgtm|proofread', r"\bcritique\b|\baudit\b|\bfeedback\b|\bsanity[- ]check\b|\bdouble[- ]check\b|\bsecond (?:pair|set) "
              r"of eyes\b|\bnit-?pick|\blgtm\b|\bproofread\b"),
        (2.5, 'any|what', r"\b(?:any|what) (?:obvious )?(?:problems|issues|bugs|concerns|risks|red flags|gotchas|mistakes)\b"),
        (2.5, 'anything', r"\banything(?:'s| is)? (?:wrong|off|missing|risky|broken|i missed|suspicious|dangerous)\b"),
        (3.0, 'what am i missing|did i', r"\bwhat am i missing\b|\bdid i (?:get|do) (?:it|this|that|everything) right\b|\bdid i miss\b"),
        (3.0, 'do', r"\b(?:does|do) (?:this|these|it|that|my \S+) (?:look|seem) (?:right|ok|okay|good|correct|fine|sane|reasonable)\b"),
        (2.5, 'is ', r"\bis (?:this|that|my \S+) (?:\S+ )?(?:idiomatic|correct|right|ok|okay|safe|thread-?safe|good|fine|"
              r"reasonable|sane|secure|efficient|readable|clean)\b"),
        (2.0, 'thoughts|opinion|weak|flaw|apart|poke holes', r"\bthoughts\b|\bopinions?\b|\bweak(?:ness|nesses)?\b|\bflaws?\b|\b(?:tear|pick) (?:it |this |that )?apart\b|\bpoke holes\b"),
        (2.5, 'what do you think', r"\bwhat do you think\b"),
        (2.5, 'flag|find', r"\bflag (?:anything|any|issues|problems)\b|\bfind (?:the )?(?:bugs|issues|problems)\b"),
        (1.5, 'grade|rate|evaluate|assess', r"\b(?:grade|rate|evaluate|assess)\b"),
        (1.5, 'my ', r"\bmy (?:changes?|patch|diff|pr|commit|implementation|code|branch|migration|regex|solution|version|tests)\b"),
        (1.5, 'does', r"\bdoes (?:this|my|the) (?:patch|change|diff|fix|pr|commit|code|implementation) (?:handle|cover|break|fix)\b"),
        (0.5, 'pr|pull request|diff|patch|commit', r"\bpr\b|\bpull request\b|\bdiff\b|\bpatch\b|\bcommit\b"),
    ]
] + [
    (_T.TOOL_CALL, w, tuple(n.split("|")), _Lazy(p)) for w, n, p in [
        (1.0, 'git|pip|npm|yarn|pnpm|pytest|cargo|docker|kubectl|uv|poetry|ruff|mypy|tox|gh', r"\b(?:git|pip|npm|yarn|pnpm|pytest|cargo|docker|kubectl|uv|poetry|ruff|mypy|tox|gh)\b"),
        (1.5, 'tell me|report|let me know|give me', r"\b(?:tell me|report|let me know|give me) (?:what|if|whether|the|which|how many)\b"),
        (2.0, 'how many|how much', r"\bhow many\b|\bhow much (?:disk|space|memory)\b"),
        (2.0, 'version|installed', r"\b(?:what|which) version\b|\bis installed\b"),
        (2.0, "current|what's in|what is in", r"\bcurrent (?:branch|version|directory|status|commit)\b|\bwhat's in\b|\bwhat is in\b"),
    ]
]

_TraceFeatures = tuple[str, bool, bool, bool]


def _features(text: str) -> _TraceFeatures:
    """The instruction text of a prompt (lower-cased; code, quotes and diffs taken out),
    and whether it carried a fenced code block, a diff, a traceback."""
    if len(text) > _HEAD + _TAIL:
        text = text[:_HEAD] + "\n" + text[-_TAIL:]
    has_code = has_diff = False
    if "```" in text:
        has_code = True
        for lang, body in _FENCE.findall(text):
            if lang.strip().lower() in ("diff", "patch") or _DIFF.search(body):
                has_diff = True
        text = _FENCE.sub(" <code> ", text)
    has_trace = _TRACE.search(text) is not None
    if _DIFF.search(text):
        has_diff = True
        text = _DIFF_LINES.sub(" ", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    if "`" in text:
        text = _INLINE.sub(" <code> ", text)
    if "'" in text or '"' in text:
        text = _QUOTED.sub(" <quote> ", text)
    return text.lower(), has_code, has_diff, has_trace


def _leading(clause: str, first: bool, asking: bool, has_code: bool) -> tuple[TaskType, float, str] | None:
    """The class the leading verb of a clause asks for, with its weight."""
    clause = _FILLER.sub("", clause.strip())
    weight = 3.0 if first else 2.0
    stripped = _POLITE.sub("", clause, count=1)
    if stripped == clause:
        stripped = _STATEMENT.sub("", clause, count=1)
        if stripped != clause:
            weight = 2.0
    clause = _FILLER.sub("", stripped)
    wish = _WISH.match(clause)
    if wish is not None:
        return _ambiguous("need", clause[wish.end():], 2.0)
    match = _WORDS.match(clause)
    if match is None:
        return None
    word = match.group()
    rest = clause[match.end():].lstrip()
    if word in ("what", "whats", "what's"):
        if re.match(r"^(?:'s |is )?(?:the )?(?:current|size|version|status|output|value|exit code|latest|last)\b", rest) \
                or re.match(r"^(?:'s |is )?in\b", rest) or rest.startswith("version"):
            return _T.TOOL_CALL, weight, f"asks for a fact to look up ({word} ...)"
        if re.match(r"^(?:are |'re )?(?:the )?steps\b|^(?:is |'s )?(?:the|our|your) (?:plan|order|roadmap)\b|"
                    r"^would\b.{1,80}\blook like\b|^order\b|^should (?:we|i) (?:tackle|do|fix|address|work on) first\b", rest):
            return _T.PLANNING, weight, "asks for the steps or the plan"
        if re.match(r"^do you think\b", rest) or re.match(r"^(?:am i missing|'s wrong with|is wrong with)\b", rest):
            return _T.REVIEW, weight, "asks for an opinion on work"
        return _T.EXPLANATION, weight - 1.0, "a what-question"
    if word == "how":
        if rest.startswith(("many", "much")) or re.match(r"^(?:big|large|old|full)\b", rest):
            return _T.TOOL_CALL, weight, "asks for a count or size"
        if re.match(r"^(?:is|are|does|do) (?:my|this|these|our) (?:\S+ ){0,3}?(?:code|tests?|changes?|diff|patch|pr|"
                    r"implementation|approach|design|solution|fix|function|class|migration)\b", rest):
            return _T.REVIEW, weight, "asks how good the user's work is"
        if rest.startswith("come"):
            return _T.EXPLANATION, weight, "a how-come question"
        return _T.EXPLANATION, weight - 0.5, "a how-question"
    if word == "why":
        if not rest.strip("? "):  # "... and why?": asks for a justification of the answer
            return _T.EXPLANATION, 1.0, "asks why"
        return _T.EXPLANATION, weight + 0.5, "a why-question"
    if word == "where":
        if re.search(r"\b(?:defined|declared|used|called|configured|set|stored|located|implemented|imported|live|lives)\b", rest):
            return _T.TOOL_CALL, weight, "asks where something is"
        return _T.EXPLANATION, weight - 1.0, "a where-question"
    if word == "which":
        if re.match(r"^(?:files?|tests?|functions?|modules?|classes|class|endpoints?|packages?|version|branch|"
                    r"branches|commits?|tables?|services?|processes|ports?|dependencies|prs?|pull requests|issues|"
                    r"containers?|jobs|workers?|pods?|migrations?|env(?:ironment)? vars?|scripts?)\b", rest):
            return _T.TOOL_CALL, weight, "asks which things match"
        return _T.EXPLANATION, weight - 1.0, "a which-question"
    if word == "who":
        if re.match(r"^(?:wrote|changed|last|committed|touched|added|owns)\b", rest):
            return _T.TOOL_CALL, weight, "asks who changed something"
        return _T.EXPLANATION, weight - 1.0, "a who-question"
    if word == "when" and "?" not in clause and not re.match(r"^(?:should|do|does|is|are|will|would|can|did)\b", rest):
        return None
    if word in ("is", "are", "does", "do", "did", "can", "should", "would", "could", "will", "was", "were",
                "has", "have", "isn't", "doesn't", "shouldn't", "when"):
        if word in ("is", "are") and _STATUS.match(clause):
            return _T.TOOL_CALL, weight, "asks about the state of the machine"
        if not asking:
            return _ambiguous("do", rest, weight) if word == "do" else None
        if word in ("is", "are", "does", "do") and (
            re.match(r"^(?:my|our)\b", rest) or (has_code and re.match(r"^(?:it|this|these|that|those)\b", rest))
        ):
            return _T.REVIEW, weight, "a yes/no question about the user's own work"
        if re.match(r"^(?:this|these|that|my|the|it) (?:\S+ )?(?:look|seem)s? (?:right|ok|okay|good|correct|fine)", rest):
            return _T.REVIEW, weight, "asks whether work looks right"
        return _T.EXPLANATION, weight - 1.0, "a question"
    if word in _COMMANDS:
        if not first:
            return None
        return _T.TOOL_CALL, weight, f"a command ({word})"
    if word in _EXPLAIN_VERBS:
        return _T.EXPLANATION, weight, f"leading verb {word!r}"
    if word in ("walk", "tell", "show", "give", "get", "look", "go", "find", "check", "do", "take", "come", "put",
                "think", "break", "build", "create", "make", "write", "generate", "prepare", "draft", "test"):
        return _ambiguous(word, rest, weight)
    if word in _REVIEW_VERBS or word.startswith(("sanity", "double-check")):
        return _T.REVIEW, weight, f"leading verb {word!r}"
    if word in _PLAN_VERBS:
        if word == "map" and not rest.startswith("out"):
            return None
        if word == "lay" and not rest.startswith("out"):
            return None
        return _T.PLANNING, weight, f"leading verb {word!r}"
    if word in ("list", "show", "split", "turn", "organize", "organise", "group") and _RE_PLAN_OBJECT.match(rest) \
            or _INTO_PLAN.search(rest):
        return _T.PLANNING, weight, f"{word} ... into steps/milestones"
    if word == "switch" and re.match(r"^(?:back )?to (?:the )?\S+ branch\b|^(?:back )?to (?:main|master|develop)\b|^branch", rest):
        return _T.TOOL_CALL, weight, "switch branches"
    if word in _TOOL_VERBS:
        return _T.TOOL_CALL, weight, f"leading verb {word!r}"
    if word in _CODE_VERBS:
        if word == "pull" and not rest.startswith("out"):
            return _T.TOOL_CALL, weight, "leading verb 'pull'"
        if word == "break" and not rest.startswith("out"):
            return None
        return _T.CODE_GENERATION, weight, f"leading verb {word!r}"
    return None


def _ambiguous(word: str, rest: str, weight: float) -> tuple[TaskType, float, str] | None:
    """Verbs whose class depends on their object: "create a branch" / "create a plan" /
    "create a parser"."""
    why = f"leading verb {word!r}"
    if word == "walk":
        return (_T.EXPLANATION, weight, "walk me through") if rest.startswith(("me through", "through")) else None
    if word == "tell":
        if _RE_TELL_EXPLAIN.match(rest):
            return _T.EXPLANATION, weight, "tell me how/why"
        return _T.TOOL_CALL, weight - 1.0, "tell me (a fact)"
    if word == "show":
        if re.match(r"^(?:me )?(?:how|why)\b", rest):
            return _T.EXPLANATION, weight, "show me how"
        return _T.TOOL_CALL, weight, why
    if word == "find":
        if _RE_FIND_REVIEW.match(rest):
            return _T.REVIEW, weight, "find bugs in ..."
        if rest.startswith("out why"):
            return _T.EXPLANATION, weight, "find out why"
        return _T.TOOL_CALL, weight, why
    if word == "check":
        if _RE_CHECK_REVIEW.match(rest):
            return _T.REVIEW, weight, "check my/this ..."
        return _T.TOOL_CALL, weight, why
    if word in ("look", "take"):
        if word == "take":
            rest = re.sub(r"^a (?:quick |closer |good )?look\s*", "", rest)
        if rest.startswith("into why"):
            return _T.EXPLANATION, weight, "look into why"
        if rest.startswith("over") or _RE_LOOK_REVIEW.match(rest):
            return _T.REVIEW, weight, "look over ..."
        return None
    if word == "go":
        if re.match(r"^(?:through|over)\b", rest):
            return _T.REVIEW, weight, "go through the changes"
        if re.match(r"^(?:test|build|run|vet|mod|get|install)\b", rest):
            return _T.TOOL_CALL, weight, "a command (go)"
        return None
    if word == "think":
        return (_T.PLANNING, weight, "think through ...") if rest.startswith(("through", "about")) else None
    if word == "break":
        if rest.startswith("out"):
            return _T.CODE_GENERATION, weight, "break out ..."
        return _T.PLANNING, weight, "break down ..."
    if word == "come":
        if rest.startswith("up with") and _RE_PLAN_OBJECT.match(rest[7:].lstrip()):
            return _T.PLANNING, weight, "come up with a plan"
        return None
    if word == "do":
        if _RE_REVIEW_OBJECT.match(rest) or re.match(r"^(?:a |an )?(?:\S+ )?review\b", rest):
            return _T.REVIEW, weight, "do a review"
        return None
    if word == "test":
        return (_T.TOOL_CALL, weight - 1.0, why) if rest else None
    if word == "get":
        if _RE_GET_CODE.match(rest):
            return _T.CODE_GENERATION, weight, "get ... passing/working"
        return None
    if word == "build":
        if _RE_TOOL_BUILD.match(rest):
            return _T.TOOL_CALL, weight, "build the project"
        return _T.CODE_GENERATION, weight, why
    # give / put / create / make / write / generate / prepare / draft: the object decides.
    if word in ("give", "put"):
        rest = re.sub(r"^(?:me|us|together)\s+", "", rest)
    if _RE_PLAN_OBJECT.match(rest):
        return _T.PLANNING, weight, f"{word} a plan"
    if _RE_REVIEW_OBJECT.match(rest):
        return _T.REVIEW, weight, f"{word} feedback"
    if _RE_EXPLAIN_OBJECT.match(rest):
        return _T.EXPLANATION, weight, f"{word} an explanation"
    if word in ("give", "put"):
        return (_T.TOOL_CALL, weight - 1.0, "give me (a fact)") if rest else None
    if word == "create" and _RE_TOOL_CREATE.match(rest):
        return _T.TOOL_CALL, weight, "create a branch/tag/environment"
    if word == "draft":
        return _T.PLANNING, weight - 1.0, why
    return _T.CODE_GENERATION, weight, why


@lru_cache(maxsize=512)
def _classify_prompt(prompt: str) -> tuple[TaskType, float, tuple[str, ...]]:
    """The class of a user-authored prompt alone, its confidence and reasons."""
    text, has_code, has_diff, has_trace = _features(prompt)
    words = _WORDS.findall(text)
    words = [w for w in words if w not in ("code", "quote")]
    if not words:
        if has_diff:
            return _T.REVIEW, 0.7, ("prompt: a diff with no instruction",)
        if has_trace:
            return _T.CODE_GENERATION, 0.5, ("prompt: a pasted error with no instruction",)
        if has_code:
            return _T.REVIEW, 0.4, ("prompt: code with no instruction",)
        return _T.UNKNOWN, 0.3, ("prompt: no words",)
    if len(words) <= 8 and all(w in _ACK_WORDS for w in words) or _META.match(text.strip()):
        return _T.UNKNOWN, 0.85, ("prompt: a greeting, thanks or acknowledgement",)

    scores = dict.fromkeys(_PRIORITY, 0.0)
    notes: dict[TaskType, list[str]] = {t: [] for t in _PRIORITY}
    leading: dict[TaskType, float] = {}
    asking = "?" in text
    for index, clause in enumerate(c for c in _CLAUSES.split(text) if c and c.strip()):
        found = _leading(clause, index == 0, asking, has_code)
        if found is not None:
            task, weight, why = found
            if weight > leading.get(task, 0.0):
                leading[task] = weight
                notes[task].insert(0, f"prompt: {why}")
    for task, weight in leading.items():
        scores[task] += weight
    for task, weight, needles, pattern in _PHRASES:
        if not any(needle in text for needle in needles):
            continue
        match = pattern.search(text)
        if match is not None:
            scores[task] += weight
            if len(notes[task]) < 3:
                notes[task].append(f"prompt: mentions {match.group().strip()!r}")
    question = text.rstrip().endswith("?")
    if question:
        scores[_T.CODE_GENERATION] -= 0.5
    if has_diff:
        scores[_T.REVIEW] += 2.5
        notes[_T.REVIEW].append("prompt: carries a diff")
    elif has_code and question:
        scores[_T.REVIEW] += 1.0
        notes[_T.REVIEW].append("prompt: a question about pasted code")
    if has_trace:
        scores[_T.CODE_GENERATION] += 1.5
        notes[_T.CODE_GENERATION].append("prompt: carries an error/traceback")
    if _NO_CODE.search(text):
        scores[_T.CODE_GENERATION] = 0.0
        scores[_T.PLANNING] += 2.0
        notes[_T.PLANNING].insert(0, "prompt: asks for no code yet")

    ranked = sorted(_PRIORITY, key=lambda t: -scores[t])  # stable: ties keep _PRIORITY's order
    best, second = scores[ranked[0]], scores[ranked[1]]
    if best < 1.0:
        return _T.UNKNOWN, 0.3, ("prompt: no cue for any task",)
    margin = (best - max(second, 0.0)) / best
    confidence = round(min(0.95, 0.35 + 0.4 * margin + 0.2 * min(1.0, best / 5.0)), 2)
    return ranked[0], confidence, tuple(notes[ranked[0]][:3])


# ---- Continuations ------------------------------------------------------------------------

_CONTINUE = _Lazy(
    r"^(?:(?:please|pls|ok|okay|yes|go on|great|thanks)\s+)*(?:continue|keep going|go on|carry on|resume|"
    r"more|next|finish(?: it| up| that)?|and|then|you (?:got|were) cut off|you stopped|continue please|"
    r"continue from where you (?:left off|stopped)|keep writing|(?:please )?finish the (?:answer|code|plan|list))"
    r"(?:\s+(?:please|pls|thanks))?$"
)
_EXECUTE = _Lazy(
    r"^(?:(?:yes|yep|yeah|yup|sure|ok|okay|alright|sounds good|looks good|lgtm|great|perfect|cool|fine|agreed|"
    r"approved|correct|good|nice|thanks)\s+)*(?:please\s+)?(?:go ahead|do it|do that|proceed|go for it|ship it|"
    r"make it so|let'?s do it|let'?s go|please do|do so|apply (?:it|them|that|those|the changes)|"
    r"make (?:the|those|these) changes|implement (?:it|that|this|the plan)|start)(?:\s+(?:please|pls|then|now|"
    r"with (?:that|it|the plan)))*$"
)
_AFFIRM = _Lazy(r"^(?:yes|yep|yeah|yup|sure|ok|okay|alright|please|yes please|sure thing|absolutely|"
                     r"definitely|of course|sounds good|why not|y)(?:\s+(?:please|thanks|do it))*$")
_PUNCT = _Lazy(r"[^\w\s']+")


def _continuation(prompt: str) -> str | None:
    """'continue' (more of the same), 'execute' (do what was proposed), 'affirm' (yes/ok:
    a continuation only if the model asked a question) or None."""
    if len(prompt) > 80:
        return None
    text = " ".join(_PUNCT.sub(" ", prompt.lower().replace("\u2019", "'")).split())
    if not text:
        return None
    if _CONTINUE.match(text):
        return "continue"
    if _EXECUTE.match(text):
        return "execute"
    if _AFFIRM.match(text):
        return "affirm"
    return None


# ---- Classification -----------------------------------------------------------------------


def classify_task(
    messages: Sequence[Any] | str, config: BudgetConfig | str | None = None, *, format: str | None = None
) -> TaskClassification:
    """The task of the next model request of a history, and its ``max_tokens``.

    Reads the history from its end: the latest user-authored prompt and the state of the
    tool loop, never the text of tool results (see the module docstring for the rules).

    Args:
        messages: the history, in any format tokensieve reads (pydantic-ai
            ``ModelMessage`` objects, OpenAI chat dicts, OpenAI Responses items,
            Anthropic message dicts); a plain string is read as one user prompt.
        config: a :class:`~tokensieve.config.BudgetConfig`, a preset name or None (the
            defaults); its ``output_budgets`` give each task's budget and
            ``model_max_output_tokens`` caps an escalated one.
        format: ``"pydantic-ai"``, ``"openai"``, ``"responses"`` or ``"anthropic"``;
            None reads each message by its shape.

    Returns:
        A :class:`TaskClassification`. An empty history is ``UNKNOWN`` with the
        ``UNKNOWN`` budget.

    Example:
        >>> from tokensieve.classify import classify_task
        >>> classify_task("fix the failing test in tests/test_cache.py").task.value
        'CODE_GENERATION'
        >>> cut_off = [
        ...     {"role": "user", "content": "plan the migration to SQLAlchemy 2.0"},
        ...     {"role": "assistant", "content": "Phase 1: ...", "finish_reason": "length"},
        ...     {"role": "user", "content": "continue"},
        ... ]
        >>> c = classify_task(cut_off, "cerebras")
        >>> c.task.value, c.max_output_tokens, c.escalated
        ('PLANNING', 2400, True)
    """
    cfg = resolve_config(config, {})
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    elif not isinstance(messages, Sequence):
        raise InputTypeError(f"messages: expected a list of messages, got {type(messages).__name__}")
    format = _format_argument(format)
    if format is None:
        reader = _read_any
    else:
        try:
            reader = _read_object if _FORMATS[format] == "pydantic-ai" else _read_dict
        except (KeyError, TypeError):
            raise ConfigurationError(
                f"invalid configuration: unknown format {format!r}; "
                "expected 'pydantic-ai', 'openai', 'responses' or 'anthropic'"
            ) from None

    count = len(messages)
    if count == 0:
        return _result(cfg, _T.UNKNOWN, 0.0, ["empty history"], 0, None)

    calls: list[tuple[Any, Any]] = []  # tool calls made since the current task's prompt
    pending_results = False  # tool results after the last model response
    unanswered_calls = False  # the history ends with a response that made calls
    seen_request = seen_response = False
    cutoffs = 0  # consecutive cut-off model responses, latest first
    counting_cutoffs = True
    first_cutoff: str | None = None
    in_turn = turn_cutoff = None  # a run of response items (Responses: one model turn)
    prompt: str | None = None
    continuations: list[str] = []
    scanned = 0
    index = count - 1
    stop = max(0, count - MAX_SCAN)
    dicts = reader is not _read_object
    while index >= stop:
        message = messages[index]
        try:
            if dicts and message.__class__ is dict and message.get("role") == "tool":  # a loop's commonest message
                side, text, results, msg_calls, cutoff, _ = _RESULTS_MSG
            else:
                side, text, results, msg_calls, cutoff, _ = reader(message)
        except Exception:  # odd shapes are unknown, never an error
            side, text, results, msg_calls, cutoff, _ = _NOTHING
        scanned += 1
        if side == _RESPONSE:
            if not in_turn:
                in_turn, turn_cutoff = True, None
            if cutoff and turn_cutoff is None:
                turn_cutoff = cutoff
            if not seen_response and not seen_request and msg_calls:
                unanswered_calls = True
            seen_response = True
            if msg_calls:
                calls.extend(msg_calls)
            index -= 1
            continue
        if in_turn:
            in_turn = False
            if counting_cutoffs:
                if turn_cutoff:
                    cutoffs += 1
                    first_cutoff = first_cutoff or turn_cutoff
                else:
                    counting_cutoffs = False
        if side == _REQUEST:
            if results and not seen_response:
                pending_results = True
            if text is not None or results:
                seen_request = True
            if text is not None:
                kind = _continuation(text) if len(continuations) < _MAX_CONTINUATIONS else None
                if kind == "affirm":
                    before = _safe(reader, messages[index - 1]) if index > 0 else _NOTHING
                    kind = "affirm" if before[0] == _RESPONSE and before[5].rstrip().endswith("?") else None
                if kind is None:
                    prompt = text
                    break
                continuations.append(kind)
        index -= 1
    if in_turn and counting_cutoffs and turn_cutoff:
        cutoffs += 1
        first_cutoff = first_cutoff or turn_cutoff

    reasons: list[str] = []
    if prompt is not None:
        task, confidence, why = _classify_prompt(prompt)
        reasons.extend(why)
        if continuations:
            reasons.insert(0, f"current task: the prompt before {len(continuations)} continuation prompt(s)")
            if "execute" in continuations and task in (_T.PLANNING, _T.REVIEW):
                task, confidence = _T.CODE_GENERATION, 0.7
                reasons.append("the user asked to go ahead with the proposed changes")
    else:
        task, confidence = _T.UNKNOWN, 0.2
        if continuations:
            reasons.append("only continuation prompts in view")
        elif scanned >= MAX_SCAN:
            reasons.append(f"no user prompt in the last {MAX_SCAN} messages")
        else:
            reasons.append("no user prompt")

    in_loop = pending_results or unanswered_calls
    # The latest code-writing call since the task began (calls are listed latest first).
    writer = next((str(name) for name, args in calls[:_MAX_CALLS] if _writes_code(name, args)), None)
    if writer is not None:
        if task is not _T.CODE_GENERATION:
            reasons.append(f"was {task.value} by the prompt")
        task, confidence = _T.CODE_GENERATION, max(confidence, 0.85)
        reasons.append(f"tool loop: the model is writing code through tool calls ({writer})")
    elif in_loop:
        readers = [str(name) for name, _ in calls]
        tools = f" ({_names(readers)})" if readers else ""
        if task in (_T.TOOL_CALL, _T.UNKNOWN):
            confidence = max(confidence, 0.7) if task is _T.TOOL_CALL else 0.6
            task = _T.TOOL_CALL
            reasons.append(f"tool loop: read-only tool calls{tools}, next step is another call or a short report")
        else:
            reasons.append(f"tool loop: read-only tool calls{tools}; the budget stays the task's")
    return _result(cfg, task, confidence, reasons, cutoffs, first_cutoff)


def _names(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(unique[:4]) + (", ..." if len(unique) > 4 else "")


def _result(
    cfg: BudgetConfig, task: TaskType, confidence: float, reasons: list[str], cutoffs: int, how: str | None
) -> TaskClassification:
    budget = cfg.max_output_for(task)
    if cutoffs:
        doubled = budget * 2 ** min(cutoffs, 16)
        raised = min(doubled, cfg.model_max_output_tokens)
        times = "" if cutoffs == 1 else f" ({cutoffs} responses in a row)"
        capped = f", capped at the model's maximum of {cfg.model_max_output_tokens}" if raised < doubled else ""
        reasons.append(
            f"escalated: the previous response was cut off by the output limit ({how}){times}; "
            f"{task.value} budget {budget} doubled{'' if cutoffs == 1 else ' per cut-off'} to {raised}{capped}"
        )
        budget = max(raised, budget)
    return TaskClassification(task, float(confidence), tuple(reasons), budget, cutoffs > 0)
