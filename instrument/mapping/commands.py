"""``latent-instrument check-mapping FILE...``: validate mapping files and print every mistake found."""

from __future__ import annotations

import argparse
import sys

from instrument.mapping.loader import preset_path, validate_file


def configure_check_mapping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="mapping files or folders to check (or preset names: default, keyboard, ...)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the mistakes")


def run_check_mapping(args: argparse.Namespace) -> int:
    """Exit status 0 when every file is valid, 1 otherwise; one line per mistake on stderr."""
    bad = 0
    paths = []
    for name in args.files:
        path = preset_path(name)
        paths.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    for path in paths:
        mapping, errors = validate_file(path)
        for error in errors:
            print(error, file=sys.stderr)
        if errors:
            bad += 1
        elif not args.quiet:
            assert mapping is not None
            print(f"{mapping.path}: ok ({len(mapping.controls)} controls, {len(mapping.notes)} note ranges, "
                  f"{len(mapping.keys)} keys, {len(mapping.pointer)} pointer axes)")
    return 1 if bad else 0
