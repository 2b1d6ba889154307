"""``render --processes N``: the same render command in N processes, started by accelerate's own launcher.

``launch`` runs ``accelerate launch`` in this process: its torchrun launcher (accelerate calls it
``--multi_gpu``; the processes meet over gloo whatever they decode on, see ``team``) starts ``python -m
instrument render`` with this command's own arguments, less ``--processes``, on a free port of 127.0.0.1.
CPU processes get the cores divided among them (``OMP_NUM_THREADS``) unless ``--threads`` is given. When a
process fails, the launcher stops the others, and ``launch`` names who stopped where from their progress
files: ``--resume`` goes on from there.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import torch

from instrument.devices import resolve_device
from instrument.errors import UserError
from instrument.render_job.job import RESUME, process_device, stopped_line
from instrument.render_job.output import output_folder, read_progress
from instrument.render_job.team import Team

ACCELERATE = ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_ip", "127.0.0.1", "--main_process_port", "0"]


def launch(args: argparse.Namespace) -> int:
    """Run the render ``args`` in ``args.processes`` processes; 0 when every one finished, else UserError
    naming the processes that did not."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from instrument.replay import read_take, take_config

    count = args.processes
    sidecar = read_take(Path(args.recording))[0]  # (a broken take: one message here, not one per process)
    device = take_config(sidecar, **({"device": args.device} if args.device else {})).device
    process_device(device, Team(size=count))  # (UserError for an MPS device)
    kind = resolve_device(device).type
    if kind == "cpu" and not args.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, torch.get_num_threads() // count)))
    gpus = torch.cuda.device_count() if kind == "cuda" else 0
    if count > gpus > 0:
        print(f"{count} processes share {gpus} GPU{'s' * (gpus > 1)} (a GPU's decodes overlap the other "
              "processes' PNG encoding)")
    line = [*ACCELERATE, "--num_processes", str(count), "-m", "instrument", "render", *command_line(args)]
    try:
        launch_command(launch_command_parser().parse_args(line))
    except ChildFailedError as exc:
        out = output_folder(args.recording, args.decoder, args.out or None)
        raise UserError(failure_report(out, count, exc.failures)) from None
    return 0


def command_line(args: argparse.Namespace) -> list[str]:
    """The ``render`` arguments that give ``args`` back, less ``--processes`` (options at their default
    left out; ``--flag=value``, so that a value may start with a dash)."""
    from instrument.replay import configure_render

    parser = argparse.ArgumentParser(add_help=False)
    configure_render(parser)
    line: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, action.default)
        if not action.option_strings:
            line.append(str(value))
        elif action.dest != "processes" and value != action.default:
            flag = max(action.option_strings, key=len)
            line.append(flag if action.nargs == 0 else f"{flag}={_text(value)}")
    return line


def failure_report(folder: Any, count: int, failures: dict[int, Any]) -> str:
    """Which processes did not finish and why, from their progress files and the launcher's exit codes
    (``failures``: rank -> torch's ProcessFailure)."""
    lines = []
    for rank, state in enumerate(read_progress(folder, count)):
        failure = failures.get(rank)
        code = f" ({_exit(failure.exitcode)})" if failure is not None else ""
        if state is None:
            lines.append(f"process {rank} failed before drawing{code}; its message is above" if failure
                         else f"process {rank} stopped before drawing")
        elif state["error"]:
            lines.append(stopped_line(state) + code)
        elif state["done"] < state["count"]:
            stopper = failure is None or failure.exitcode == -signal.SIGTERM  # the launcher's stop
            lines.append(stopped_line({**state, "error": "stopped by the launcher"}) if stopper
                         else stopped_line(state) + code)
    return "; ".join(lines or ["the processes stopped (see above)"]) + RESUME


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _text(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)
