"""A service's message as the UI says it: no environment variable, documentation file or command
named (the people reading it set none of them; the API's `detail` may name the setting, as its
docs do). `layout.sentence`, the one place the UI turns a service's message into a sentence,
passes every message through `without_internal_names`.

Rules, in order, each a pattern the services' messages use (tests/test_plain_words.py reads
every message of the services and of the execution engine and finds none left naming a variable
or a file after them):
- "raise OPSCRAFT_X" (a limit the message has said in words: "the limit of 256 KiB") is what to
  do: "ask the server's administrator to raise that limit";
- "set OPSCRAFT_X=VALUE to allow it": "the server's administrator can allow it";
- "(OPSCRAFT_X=VALUE, or WORDS)": "(WORDS)", the way a person in the UI can take;
- "set OPSCRAFT_X to WORDS": "have the server's administrator choose WORDS"; "unset OPSCRAFT_X":
  "have the server's administrator unset that setting";
- " (OPSCRAFT_X)" or " (or OPSCRAFT_X)" after what it names ("must be at most 86400
  (OPSCRAFT_MAX_TIMEOUT_SECONDS)"), and "(OPSCRAFT_X; " opening a remark: the name left out, the
  words before it say the limit;
- "over OPSCRAFT_X": "over the server's limit"; "OPSCRAFT_X allows": "this server allows";
  "within OPSCRAFT_X_SECONDS": "within seconds";
- "docs/NAME.md": "the documentation's NAME page";
- "`opscraft serve`": "the server", "`opscraft worker`": "an execution worker", "after `opscraft
  secrets rotate-key`": "after a key rotation", any other command: "the server's command line";
- any other variable: "a setting of the server"."""

from __future__ import annotations

import re

VARIABLE = re.compile(r"OPSCRAFT_[A-Z0-9_]+")
"""An environment variable of OpsCraft's settings (not the `OPSCRAFT_` prefix alone, which a
secret's name rule says it may not take)."""
_VARIABLE = VARIABLE.pattern
COMMAND = re.compile(r"`opscraft [a-z][a-z -]*`")
"""A command of OpsCraft's command line, as a message quotes it."""

RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (rf"\braise {_VARIABLE}", "ask the server's administrator to raise that limit"),
        (rf"\bset {_VARIABLE}=\S+ to allow it", "the server's administrator can allow it"),
        (rf"\({_VARIABLE}=[^,()]*, or ([^()]*)\)", r"(\1)"),
        (rf"\bset {_VARIABLE} to ", "have the server's administrator choose "),
        (rf"\bunset {_VARIABLE}\b", "have the server's administrator unset that setting"),
        (rf" \((?:or )?{_VARIABLE}\)", ""),
        (rf"\({_VARIABLE}; ", "("),
        (rf"\bover {_VARIABLE}", "over the server's limit"),
        (rf"\b{_VARIABLE} allows\b", "this server allows"),
        (rf"\bwithin {_VARIABLE}_SECONDS\b", "within seconds"),
        (r"\bdocs/([a-z_]+)\.md\b", r"the documentation's \1 page"),
        (r"`opscraft serve`", "the server"),
        (r"`opscraft worker`", "an execution worker"),
        (r"after `opscraft secrets rotate-key`", "after a key rotation"),
        (COMMAND.pattern, "the server's command line"),
        (rf"\b{_VARIABLE}\b", "a setting of the server"),
    )
)


def without_internal_names(message: str) -> str:
    """`message` (a service's, lower case or not) with the environment variables and
    documentation files it names said in words (`RULES`): "content is 300000 bytes, larger than
    the limit of 256 KiB: split the script or raise OPSCRAFT_MAX_SCRIPT_BYTES" reads "... split
    the script or ask the server's administrator to raise that limit"."""
    for pattern, replacement in RULES:
        message = pattern.sub(replacement, message)
    return message
