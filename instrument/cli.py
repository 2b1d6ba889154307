"""The ``latent-instrument`` command: one subcommand per job, each in the module that does the job.

A command module has ``configure_<name>(parser)`` (its arguments) and ``run_<name>(args) -> int`` (exit
status), with ``-`` in the name written ``_``. Modules are imported only when their command is chosen, so that
``latent-instrument ports`` does not wait for torch to load.

Mistakes the user can fix (a bad flag value, a missing or broken file: ``errors.UserError``) come out as one
line, ``latent-instrument COMMAND: error: ...``, with exit status 2 and no traceback; ``--debug`` adds the
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import sys
import traceback
from pathlib import Path

from instrument.errors import UserError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "play": ("instrument.play", "play the instrument (window, MIDI, keyboard); the default command"),
    "encode": ("instrument.latent.commands", "encode images into cached anchor latents"),
    "walk": ("instrument.latent.commands", "write the frames of a walk between anchors"),
    "render": ("instrument.replay", "re-render a recorded take from its control stream"),
    "ports": ("instrument.midi.commands", "list MIDI APIs and ports"),
    "learn": ("instrument.mapping.learn", "MIDI learn: move a control, pick a parameter, save a mapping"),
    "check-mapping": ("instrument.mapping.commands", "validate mapping files"),
    "atlas": ("instrument.lab.atlas", "chart a folder of images on a 2D map"),
    "curvature": ("instrument.lab.curvature", "draw a stretch 'weather map' through two or three anchors"),
    "bench": ("instrument.bench", "measure decode and live-loop speed; write a results file"),
    "doctor": ("instrument.doctor", "print device, dtype, MIDI, display and cached models"),
}
# Operating-system errors that are the user's to fix (a full disk, a read-only or forbidden folder).
USER_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR,
               errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage of a command with dozens of flags would bury the message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default said once: added to the help where the help does not already say it, and left
    out where there is nothing to say (no default, an empty one, off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        silent = default is None or default is False or default == "" or default is argparse.SUPPRESS
        if "default" in text or silent or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class LogFormatter(logging.Formatter):
    """A UserError logged with its traceback (the render thread logs what ended it) shows its message only,
    unless ``debug``."""

    def __init__(self, debug: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        self.debug = debug

    def formatException(self, ei) -> str:
        if not self.debug and isinstance(ei[1], UserError):
            return str(ei[1])
        return super().formatException(ei)


def build_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<14} {text}" for name, (_, text) in COMMANDS.items())
    parser = Parser(
        prog="latent-instrument",
        usage="%(prog)s [-h] [-v] [--debug] [COMMAND] [ARGS ...]",
        description="A real-time visual instrument: play the latent space of an image autoencoder.",
        epilog=epilog + "\n\nWithout a COMMAND, ARGS go to play. 'latent-instrument COMMAND --help' "
        "describes a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


TOP_FLAGS = {"-h", "--help", "-v", "--verbose", "--debug"}


def split_command(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(top-level flags, command, the command's arguments). Without a command the line plays
    (``latent-instrument dog.png --fps 24``); a first word that is neither a command nor an anchor (a file,
    a folder, ``seed:N``) is a mistyped command: UserError, with the nearest command named."""
    start = next((i for i, arg in enumerate(argv) if arg not in TOP_FLAGS), len(argv))
    top, rest = argv[:start], argv[start:]
    if not rest or rest[0] in COMMANDS:
        return top, rest[0] if rest else "play", rest[1:]
    first = rest[0]
    if first.startswith("-") or first.lower().startswith("seed") or Path(first).exists():
        return top, "play", rest
    near = difflib.get_close_matches(first, COMMANDS, n=1)
    hint = f"; did you mean {near[0]}?" if near else "."
    commands = ", ".join(COMMANDS)
    raise UserError(f"{first!r} is neither a command nor an anchor file{hint} Commands: {commands}")


def command_parser(command: str) -> tuple[argparse.ArgumentParser, object]:
    """The argument parser of ``command`` (configured by its module), and the module."""
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = Parser(prog=f"latent-instrument {command}", description=help_text, formatter_class=HelpFormatter)
    getattr(module, f"configure_{command.replace('-', '_')}")(parser)
    return parser, module


def user_message(exc: BaseException) -> str | None:
    """The one line to print for an error the user can fix, or None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        flags, command, rest = split_command(sys.argv[1:] if argv is None else argv)
        top = build_parser().parse_args(flags)
    except UserError as exc:
        print(f"latent-instrument: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help, or a mistake already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(top.debug))
    logging.basicConfig(level=logging.DEBUG if top.verbose else logging.INFO, handlers=[handler])
    parser, module = command_parser(command)
    try:
        args = parser.parse_args(rest)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return int(getattr(module, f"run_{command.replace('-', '_')}")(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        if top.debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
