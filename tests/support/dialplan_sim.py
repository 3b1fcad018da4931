"""An interpreter for the part of Asterisk's dialplan language dialplan/*.conf uses, so unit
tests can walk the shipped dialplan without Asterisk (the lab runs the real one).

Each rule follows Asterisk 22's own code, named where it is ported: variable and expression
substitution (main/pbx_variables.c), CUT (funcs/func_cut.c), the T extension after an
absolute timeout (main/pbx.c __ast_pbx_run), Gosub / Return (apps/app_stack.c), a FastAGI
session (res/res_agi.c: environment, SET VARIABLE, AGIEXITONHANGUP); arguments, FILTER,
REGEX and expressions: tests/support/asterisk_text.py. What it does not know it refuses
(an unknown application, function or expression token raises), so a test cannot pass on
a construct the interpreter merely skipped.

The outside world is scripted: what each phone does when dialled, what the caller presses
in each Read(), on which sound they hang up. AGI() talks to a real FastAGI server over TCP.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.asterisk_text import (
    DialplanError,
    agi_args,
    expression,
    filter_chars,
    is_true,
    regex_match,
    separate_args,
)

HANGUP = "hangup"  # a Read() entry: the caller hangs up while the prompt plays


# --- loading: extensions.conf and its #includes ----------------------------------------


@dataclass(frozen=True)
class Step:
    app: str
    data: str
    label: str | None


@dataclass
class Dialplan:
    contexts: dict[str, dict[str, dict[int, Step]]] = field(default_factory=dict)
    includes: dict[str, list[str]] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, entry: str = "extensions.conf") -> Dialplan:
        plan = cls()
        plan._read(folder, entry, optional=False)
        return plan

    def _read(self, folder: Path, name: str, *, optional: bool) -> None:
        path = folder / name
        if not path.exists():
            if optional:
                return
            raise DialplanError(f"#include {name}: no such file")
        context, exten, last = "", "", 0
        in_block = False
        for raw in path.read_text().splitlines():
            line = raw
            if in_block:  # ;-- block comment --;
                if "--;" not in line:
                    continue
                line, in_block = line.split("--;", 1)[1], False
            if ";--" in line:
                line, in_block = line.split(";--", 1)[0], "--;" not in line.split(";--", 1)[1]
            line = _strip_comment(line).replace("\\;", ";").strip()
            if not line:
                continue
            if line.startswith("#"):
                kind, _, target = line[1:].partition(" ")
                self._read(folder, target.strip().strip('"'), optional=kind == "tryinclude")
                continue
            if line.startswith("["):
                context = line[1:line.index("]")]
                self.contexts.setdefault(context, {})
                continue
            key, _, value = line.partition("=>") if "=>" in line else line.partition("=")
            key, value = key.strip(), value.strip()
            if context == "globals":
                self.globals[key] = value
            elif context == "general":
                continue
            elif key == "include":
                self.includes.setdefault(context, []).append(value)
            elif key in ("exten", "same"):
                if key == "exten":
                    exten, value = value.split(",", 1)
                prio, app = value.split(",", 1)
                label = None
                if "(" in prio:
                    prio, label = prio[:-1].split("(")
                number = last + 1 if prio == "n" else int(prio)
                steps = self.contexts[context].setdefault(exten, {})
                if number in steps:
                    raise DialplanError(f"{context},{exten},{number} defined twice")
                steps[number] = Step(*_app(app), label)
                last = number
            else:
                raise DialplanError(f"unknown statement {line!r}")

    def extension(self, context: str, exten: str, seen: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """(context, extension key) that `exten` runs in `context`: own extensions first
        (exact, then patterns), then included contexts."""
        own = self.contexts.get(context, {})
        if exten in own:
            return context, exten
        for key in own:
            if key.startswith("_") and _pattern(key).fullmatch(exten):
                return context, key
        for included in self.includes.get(context, []):
            if included not in seen:
                found = self.extension(included, exten, seen | {context})
                if found:
                    return found
        return None

    def label(self, context: str, exten: str, label: str) -> int:
        for number, step in self.contexts[context][exten].items():
            if step.label == label:
                return number
        raise DialplanError(f"no label {label} in {context},{exten}")


def _strip_comment(line: str) -> str:
    i = 0
    while (i := line.find(";", i)) != -1:
        if i == 0 or line[i - 1] != "\\":
            return line[:i]
        i += 1
    return line


def _app(text: str) -> tuple[str, str]:
    """pbx_config: the application is up to '(', its data up to the last ')'."""
    text = text.strip()
    if "(" not in text:
        return text, ""
    name, rest = text.split("(", 1)
    return name.strip(), rest[: rest.rindex(")")] if ")" in rest else rest


def _pattern(key: str) -> re.Pattern[str]:
    out, i, body = [], 0, key[1:]
    while i < len(body):
        ch = body[i]
        if ch == "[":
            end = body.index("]", i)
            out.append("[" + body[i + 1:end].replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        out.append({"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(ch.upper() if ch in "xzn" else ch, re.escape(ch)))
        i += 1
    return re.compile("".join(out))


# --- a call --------------------------------------------------------------------------------


class Call:
    """One caller's channel running the dialplan.

    `phones`: endpoint -> what it does when dialled: answer (the person hangs up first,
    Dial returns), answer_caller_leaves (the caller hangs up while they talk), busy,
    noanswer (the default), unavailable, caller_leaves (the caller hangs up while it rings).
    `presses`: what the caller keys in at each Read(), in order: digits, None (nothing),
    or HANGUP. `hangup_on_sound`: the caller hangs up while this sound plays.
    """

    def __init__(self, plan: Dialplan, *, caller: str = "+79161234567",
                 uniqueid: str = "1718000000.42", phones: dict[str, str] | None = None,
                 presses: list[str | None] | None = None, device_states: dict[str, str] | None = None,
                 hangup_on_sound: str | None = None, globals: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.globals = {**plan.globals, **(globals or {})}
        self.vars: dict[str, str] = {}
        self.callerid = {"num": caller, "name": "Client"}
        self.uniqueid = uniqueid
        self.phones = phones or {}
        self.presses = list(presses or [])
        self.device_states = device_states or {}
        self.hangup_on_sound = hangup_on_sound
        self.events: list[tuple[str, ...]] = []
        self.userfield = ""
        self.hungup = False
        self.timed_out = False
        self.deadline: float | None = None
        self.handlers: list[str] = []
        self.stack: list[tuple[str, str, int, dict[str, str | None]]] = []
        self.context = self.exten = ""
        self.priority = 0
        self._jumped = False
        self._returned = False

    # -- variables --------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        if name == "EXTEN":
            return self.exten
        if name == "CONTEXT":
            return self.context
        if name == "UNIQUEID":
            return self.uniqueid
        if name in self.vars:
            return self.vars[name]
        return self.globals.get(name)

    def set(self, name: str, value: str) -> None:
        if name.endswith(")"):
            self.write_function(name, value)
            return
        self.vars[name.lstrip("_")] = value

    def substitute(self, text: str, depth: int = 0) -> str:
        """main/pbx_variables.c pbx_substitute_variables_helper_full."""
        if depth > 15:
            raise DialplanError("substitution too deep")
        out: list[str] = []
        i = 0
        while i < len(text):
            j = text.find("$", i)
            if j == -1 or j + 1 >= len(text) or text[j + 1] not in "{[":
                end = len(text) if j == -1 else j + 1
                out.append(text[i:end])
                i = end
                continue
            out.append(text[i:j])
            k, brackets, needsub = j + 2, 1, False
            if text[j + 1] == "{":
                while brackets and k < len(text):
                    if text[k] == "$" and text[k + 1:k + 2] == "{":
                        needsub, brackets, k = True, brackets + 1, k + 1
                    elif text[k] == "{":
                        brackets += 1
                    elif text[k] == "}":
                        brackets -= 1
                    elif text[k] == "$" and text[k + 1:k + 2] == "[":
                        needsub, k = True, k + 1
                    k += 1
                if brackets:
                    raise DialplanError(f"missing '}}' in {text!r}")
                inner = text[j + 2:k - 1]
                if needsub:
                    inner = self.substitute(inner, depth + 1)
                out.append(self.variable(inner))
            else:
                while brackets and k < len(text):
                    if text[k] == "$" and text[k + 1:k + 2] == "[":
                        needsub, brackets, k = True, brackets + 1, k + 1
                    elif text[k] == "[":
                        brackets += 1
                    elif text[k] == "]":
                        brackets -= 1
                    elif text[k] == "$" and text[k + 1:k + 2] == "{":
                        needsub, k = True, k + 1
                    k += 1
                if brackets:
                    raise DialplanError(f"missing ']' in {text!r}")
                inner = text[j + 2:k - 1]
                if needsub:
                    inner = self.substitute(inner, depth + 1)
                out.append(expression(inner))
            i = k
        return "".join(out)

    def variable(self, name: str) -> str:
        """A ${...}: a function call, or a variable with an optional :offset:length."""
        parens, split = 0, None
        for pos, ch in enumerate(name):
            if ch == "(":
                parens += 1
            elif ch == ")":
                parens -= 1
            elif ch == ":" and parens == 0:
                split = pos
                break
        offset, length = 0, None
        if split is not None:
            spec = name[split + 1:].split(":")
            name = name[:split]
            offset = int(spec[0]) if spec[0] else 0
            length = int(spec[1]) if len(spec) > 1 and spec[1] else None
        value = self.read_function(name) if "(" in name else (self.get(name) or "")
        if offset < 0:
            offset = max(0, len(value) + offset)
        value = value[offset:]
        if length is not None:
            value = value[:length] if length >= 0 else value[:max(0, len(value) + length)]
        return value

    def read_function(self, call: str) -> str:
        name, args = call.split("(", 1)
        args = args[: args.rindex(")")]
        if name == "CUT":  # funcs/func_cut.c
            var, delim, spec = (separate_args(args, max_args=3) + ["", "", ""])[:3]
            value = self.get(var) or ""
            if not value:
                return ""
            fields = value.split(delim[:1] or "-")
            number = int(spec)
            return fields[number - 1] if 1 <= number <= len(fields) else ""
        if name == "FILTER":
            allowed, value = (separate_args(args, remove_chars=False, max_args=2) + [""])[:2]
            return filter_chars(allowed, value)
        if name == "REGEX":
            parts = separate_args(args, delim='"', max_args=3)
            if len(parts) != 3:
                raise DialplanError(f"REGEX: unexpected arguments {args!r}")
            value = parts[2][1:] if parts[2][:1] in (" ", "\t") else parts[2]
            return "1" if regex_match(parts[1], value) else "0"
        if name == "DEVICE_STATE":
            return self.device_states.get(args, "NOT_INUSE")
        if name == "CALLERID":
            return self.callerid[args]
        if name == "CDR" and args == "userfield":
            return self.userfield
        raise DialplanError(f"function {name} not known here")

    def write_function(self, call: str, value: str) -> None:
        name, args = call[:-1].split("(", 1)
        if name == "CDR" and args == "userfield":
            self.userfield = value[:255]  # AST_MAX_USER_FIELD
        elif name == "CALLERID":
            self.callerid[args] = value
        elif name == "CHANNEL" and args == "hangup_handler_push":
            self.handlers.append(value)
        elif name == "TIMEOUT" and args == "absolute":
            seconds = float(value or 0)
            self.deadline = asyncio.get_running_loop().time() + seconds if seconds > 0 else None
        else:
            raise DialplanError(f"function {name}({args}) cannot be written here")

    # -- running ----------------------------------------------------------------------

    async def run(self, context: str, exten: str = "s") -> None:
        """Run until the channel hangs up, then its hangup handlers."""
        self.goto(context, exten, 1)
        await self._loop()
        self.hungup = True
        while self.handlers:
            handler = self.handlers.pop()
            target, _, args = handler.partition("(")
            ctx, ext, prio = (target.split(",") + ["", ""])[:3]
            self.stack.append(("", "", 0, {}))  # Return() ends the handler
            self._returned = False
            self.goto(ctx, ext, int(prio))
            await self._loop(handler=True)

    def goto(self, context: str, exten: str, priority: int | str) -> None:
        found = self.plan.extension(context, exten)
        if found is None:
            raise DialplanError(f"no extension {exten} in {context}")
        self.context, key = found
        self.exten = exten
        self._key = key
        self.priority = priority if isinstance(priority, int) else self.plan.label(self.context, key, priority)
        self._jumped = True

    async def _loop(self, handler: bool = False) -> None:
        while True:
            step = self.plan.contexts[self.context][self._key].get(self.priority)
            if step is None:
                return  # the extension ran out: autofallthrough hangs up
            self._jumped = False
            res = await self.execute(step)
            if handler and self._returned:
                return
            if res == 0 and (handler or not self.hungup):
                if not self._jumped:
                    self.priority += 1
                continue
            if self.timed_out and self.plan.extension(self.context, "T"):
                # main/pbx.c: an absolute timeout goes to T, the timeout cleared, and lives on
                self.timed_out, self.deadline = False, None
                self.goto(self.context, "T", 1)
                continue
            self.hungup = True  # no T: the timeout hangs the channel up
            return

    async def execute(self, step: Step) -> int:
        data = self.substitute(step.data)
        app = getattr(self, f"app_{step.app.lower()}", None)
        if app is None:
            raise DialplanError(f"application {step.app} not known here")
        return await app(data)

    # -- applications -----------------------------------------------------------------

    async def app_noop(self, data: str) -> int:
        return 0

    async def app_set(self, data: str) -> int:
        name, sep, value = data.partition("=")
        if not sep:
            raise DialplanError(f"Set({data}) without '='")
        self.set(name, value)
        return 0

    async def app_goto(self, data: str) -> int:
        parts = data.split(",")
        if len(parts) == 3:
            self.goto(parts[0], parts[1], _priority(parts[2]))
        elif len(parts) == 2:
            self.goto(self.context, parts[0], _priority(parts[1]))
        else:
            self.goto(self.context, self.exten, _priority(parts[0]))
        return 0

    async def app_gotoif(self, data: str) -> int:
        condition, _, branches = data.partition("?")
        yes, _, no = branches.partition(":")
        branch = yes if is_true(condition) else no
        return await self.app_goto(branch) if branch else 0

    async def app_execif(self, data: str) -> int:
        comma, question = data.find(","), data.find("?")
        if question == -1 or (comma != -1 and comma < question):
            raise DialplanError(f"ExecIf({data}): deprecated syntax")
        condition, remainder = (separate_args(data, "?", remove_chars=False, max_args=2) + [""])[:2]
        apps = separate_args(remainder, ":", remove_chars=False, max_args=2)
        chosen = apps[0] if is_true(condition) else (apps[1] if len(apps) > 1 else "")
        if not chosen:
            return 0
        name, args = _app(chosen)
        app = getattr(self, f"app_{name.lower()}", None)
        if app is None:
            raise DialplanError(f"application {name} not known here")
        return await app(args)

    async def app_gosub(self, data: str) -> int:
        label, _, rest = data.partition("(")
        args = separate_args(rest[: rest.rindex(")")], remove_chars=False) if rest else []
        saved: dict[str, str | None] = {}
        for n, value in enumerate(args, 1):
            saved[f"ARG{n}"] = self.vars.get(f"ARG{n}")
            self.vars[f"ARG{n}"] = value
        self.stack.append((self.context, self.exten, self.priority + 1, saved))
        await self.app_goto(label)
        return 0

    async def app_return(self, data: str) -> int:
        if not self.stack:
            raise DialplanError("Return() without Gosub()")
        context, exten, priority, saved = self.stack.pop()
        for name, value in saved.items():
            if value is None:
                self.vars.pop(name, None)
            else:
                self.vars[name] = value
        self.vars["GOSUB_RETVAL"] = data
        if not context:
            self._returned = True
            return 0
        self.goto(context, exten, priority)
        return 0

    async def app_hangup(self, data: str) -> int:
        self.events.append(("hangup",))
        self.hungup = True
        return -1

    async def app_playback(self, data: str) -> int:
        sound = separate_args(data)[0]
        self.events.append(("playback", sound))
        if sound == self.hangup_on_sound:
            self.hungup = True
            return -1
        return 0

    async def app_read(self, data: str) -> int:
        var, prompt, maxdigits, options, _attempts, timeout = (separate_args(data) + [""] * 6)[:6]
        self.events.append(("read", prompt, maxdigits, options, timeout))
        pressed = self.presses.pop(0) if self.presses else None
        if pressed == HANGUP:
            self.hungup = True
            return -1
        digits = pressed or ""
        if "t" not in options:  # the default terminator
            digits = digits.split("#", 1)[0]
        if maxdigits and int(maxdigits) > 0:
            digits = digits[: int(maxdigits)]
        self.vars[var] = digits
        return 0

    async def app_dial(self, data: str) -> int:
        endpoint, timeout, options = (separate_args(data) + ["", ""])[:3]
        self.events.append(("dial", endpoint, timeout, options))
        behaviour = self.phones.get(endpoint, "noanswer")
        status = {"answer": "ANSWER", "answer_caller_leaves": "ANSWER", "busy": "BUSY",
                  "noanswer": "NOANSWER", "unavailable": "CHANUNAVAIL",
                  "caller_leaves": "CANCEL"}[behaviour]
        self.vars["DIALSTATUS"] = status
        if behaviour in ("answer_caller_leaves", "caller_leaves"):
            self.hungup = True
            return -1
        return 0

    async def app_queue(self, data: str) -> int:
        name = separate_args(data)[0]
        self.events.append(("queue", name, self.get("QUEUE_PRIO") or ""))
        self.hungup = True  # an operator answers; the call ends there
        return -1

    async def app_voicemail(self, data: str) -> int:
        box, options = (separate_args(data) + [""])[:2]
        self.events.append(("voicemail", box, options))
        return 0

    async def app_agi(self, data: str) -> int:
        """res/res_agi.c, FastAGI: connect (2 s), environment, commands, until EOF."""
        url, *args = separate_args(data)
        self.events.append(("agi", url, *args))
        parts = urlsplit(url)
        try:
            async with asyncio.timeout(2.0):  # MAX_AGI_CONNECT
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 4573)
        except (OSError, TimeoutError):
            self.vars["AGISTATUS"] = "FAILURE"
            return 0
        env = {"agi_network": "yes", "agi_network_script": parts.path.lstrip("/"),
               "agi_request": url, "agi_channel": "PJSIP/trunk-00000001",
               "agi_uniqueid": self.uniqueid, "agi_callerid": self.callerid["num"],
               "agi_calleridname": self.callerid["name"], "agi_context": self.context,
               "agi_extension": self.exten, "agi_priority": str(self.priority)}
        env.update({f"agi_arg_{n}": value for n, value in enumerate(args, 1)})
        writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
        try:
            while True:
                line = await self._agi_line(reader)
                if line is None:  # the absolute timeout: the channel is hung up
                    writer.write(b"HANGUP\n")  # AGISIGHUP
                    if (self.get("AGIEXITONHANGUP") or "").lower() not in ("yes", "true", "1", "on"):
                        raise DialplanError("AGI() would wait on the socket forever")
                    self.vars["AGISTATUS"] = "HANGUP"
                    return -1
                if line == b"":
                    self.vars["AGISTATUS"] = "SUCCESS"
                    return 0
                writer.write(self._agi_command(line.decode().rstrip("\n")))
        finally:
            writer.close()

    async def _agi_line(self, reader: asyncio.StreamReader) -> bytes | None:
        if self.deadline is None:  # res_agi waits without a bound; a test must not
            try:
                async with asyncio.timeout(10):
                    return await reader.readline()
            except TimeoutError:
                raise DialplanError("AGI() without a deadline waits forever on a stalled server") from None
        try:
            async with asyncio.timeout_at(self.deadline):
                return await reader.readline()
        except TimeoutError:
            self.timed_out = True  # the soft hangup AST_SOFTHANGUP_TIMEOUT
            return None

    def _agi_command(self, line: str) -> bytes:
        words = agi_args(line)
        if words[:2] == ["SET", "VARIABLE"] and len(words) == 4:
            self.set(words[2], words[3])
            return b"200 result=1\n"
        return b"510 Invalid or unknown command\n"

    async def app_stasis(self, data: str) -> int:
        self.vars["STASISSTATUS"] = "FAILED"  # no ARI application here
        return 0


def _priority(text: str) -> int | str:
    return int(text) if text.isdigit() else text
