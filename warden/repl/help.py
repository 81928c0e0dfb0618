"""Help texts, all generated from the catalogue so they cannot go stale."""

from __future__ import annotations

from warden.protocol import Catalogue, Field, catalogue

from .commands import HELP_COMMAND, HELP_DESCRIPTION, Command, commands

BANNER = "Usage: warden [options] -- [command and its flags]"

OPTIONS = [
    ("--socket PATH", "Unix socket of the warden server (default: /tmp/warden.sock)."),
    ("--trace", "Print '+ <command>' before each command's output."),
    ("--exit_on_error", "Stop at the first failing command."),
    ("--help", "Show this help."),
]

_TYPE_NAMES = {"str": "string", "text": "string", "bin": "bytes"}


def usage() -> str:
    width = max(len(name) for name, _ in OPTIONS) + 2
    lines = [BANNER, "", "[options] can be one of the following:", ""]
    lines += [f"\t{name.ljust(width)}{text}" for name, text in OPTIONS]
    lines += ["", "[commands] can be one of the following separated by a newline.", ""]
    return "\n".join(lines) + "\n" + command_table()


def command_table() -> str:
    table = commands()
    width = max(len(name) for name in [*table, HELP_COMMAND]) + 2
    lines = [f"\t{name.ljust(width)}{cmd.description}" for name, cmd in table.items()]
    lines.append(f"\t{HELP_COMMAND.ljust(width)}{HELP_DESCRIPTION}")
    lines += ["", "Use --help with each command for more information."]
    return "\n".join(lines) + "\n"


def command_help(command: Command) -> str:
    lines = [
        f"command: {command.name}",
        f"description: {command.description}",
        f"usage: {command.name} [options]",
        "",
        "[options] can be one of the following:",
        "",
    ]
    lines += _field_lines(catalogue(), command.fields, depth=1)
    return "\n".join(lines) + "\n"


def _field_lines(cat: Catalogue, spec: dict[str, Field], depth: int) -> list[str]:
    """Required fields first, then repeated, then optional; nested ones indented below."""
    ordered = sorted(spec.values(), key=lambda f: 0 if f.required else 1 if f.repeated else 2)
    lines = []
    for field in ordered:
        lines.append("\t" * depth + _describe(cat, field, nested=depth > 1))
        if field.type == "message":
            lines += _field_lines(cat, cat.structs[field.struct or ""], depth + 1)
    return lines


def _describe(cat: Catalogue, field: Field, nested: bool) -> str:
    name = ("." if nested else "--") + field.name + ("[index]" if field.repeated else "")
    value = "" if field.type in ("bool", "message") else f" <{field.name}>"
    text = f"{name}{value} ({type_name(cat, field)})"
    if not field.required:
        text = f"[{text}]"
    return f"{text}  # {_note(field)}"


def type_name(cat: Catalogue, field: Field) -> str:
    if field.type == "enum":
        return "|".join(cat.enums[field.enum or ""])
    if field.type == "message":
        return field.struct or "message"
    return _TYPE_NAMES.get(field.type, field.type)


def _note(field: Field) -> str:
    if field.repeated:
        note = "array"
    elif field.required:
        note = "required"
    else:
        note = "optional"
        if field.default is not None:
            default = str(field.default).lower() if isinstance(field.default, bool) else field.default
            note += f" (default: {default})"
    return f"{note}; {field.doc}" if field.doc else note
