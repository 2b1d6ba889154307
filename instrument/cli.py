"""The ``latent-instrument`` command: one subcommand per job, each in the module that does the job.

A command module has ``configure_<name>(parser)`` (its arguments) and ``run_<name>(args) -> int`` (exit
status), with ``-`` in the name written ``_``. Modules are imported only when their command is chosen, so that
``latent-instrument ports`` does not wait for torch to load.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

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


def build_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<14} {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="latent-instrument",
        description="A real-time visual instrument: play the latent space of an image autoencoder.",
        epilog=epilog + "\n\n'latent-instrument COMMAND --help' describes a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("command", nargs="?", default="play", choices=COMMANDS, metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    top = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    module_name, help_text = COMMANDS[top.command]
    module = importlib.import_module(module_name)
    attr = top.command.replace("-", "_")
    parser = argparse.ArgumentParser(prog=f"latent-instrument {top.command}", description=help_text)
    getattr(module, f"configure_{attr}")(parser)
    args = parser.parse_args(top.args)
    try:
        return int(getattr(module, f"run_{attr}")(args))
    except KeyboardInterrupt:
        return 130
