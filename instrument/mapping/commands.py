"""``latent-instrument check-mapping FILE...``: validate mapping files and print every mistake found.

One line per mistake (``file:line: key: what is wrong, and how to fix it``), at most ``MAX_PER_FILE`` a file;
exit status 2 when any file has a mistake, 0 when every file is valid. Nothing a file holds gives a
traceback, a hang (special files are not read) or pages of output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instrument.mapping.loader import validate_file
from instrument.mapping.presets import preset_path

MAX_PER_FILE = 20


def configure_check_mapping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="mapping files or folders to check (or preset names: default, keyboard, ...)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the mistakes")


def run_check_mapping(args: argparse.Namespace) -> int:
    """Exit status 0 when every file is valid, 2 otherwise; one line per mistake on stderr."""
    bad = 0
    for path in _paths(args.files):
        mapping, errors = validate_file(path)
        for error in errors[:MAX_PER_FILE]:
            print(error, file=sys.stderr)
        if len(errors) > MAX_PER_FILE:
            print(f"{path}: ... and {len(errors) - MAX_PER_FILE} more mistakes", file=sys.stderr)
        if errors:
            bad += 1
        elif not args.quiet and mapping is not None:
            print(f"{mapping.path}: ok ({len(mapping.controls)} controls, {len(mapping.notes)} note ranges, "
                  f"{len(mapping.keys)} keys, {len(mapping.pointer)} pointer axes)")
    return 2 if bad else 0


def _paths(names: list[str]) -> list[Path]:
    """Each name as a file: a preset name -> its file, a folder -> its *.yaml files (sorted)."""
    paths = []
    for name in names:
        path = preset_path(name)
        try:
            folder = path.is_dir()
        except (OSError, ValueError):
            folder = False
        paths.extend(sorted(path.glob("*.yaml")) if folder else [path])
    return paths
