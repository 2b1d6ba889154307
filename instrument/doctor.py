"""``latent-instrument doctor``: what this machine offers the instrument, in one screen.

Device and precision, library versions, MIDI APIs and ports, the display, the models already in the Hugging
Face cache and where encoded anchors are kept. Every probe is guarded: a missing MIDI system or display is
reported, never fatal. ``--download`` fetches the family's default models once, for later offline use.
"""

from __future__ import annotations

import argparse
import os
import platform

from instrument.config import Config, ModelSettings
from instrument.midi.listener import quiet_stderr


def configure_doctor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--download", action="store_true", help="fetch the family's default decoders into the HF cache"
    )
    ModelSettings.add_arguments(parser)


def run_doctor(args: argparse.Namespace) -> int:
    config = ModelSettings.from_args(args)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    section("system")
    import torch

    line("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}")
    line("torch", torch.__version__)
    for name in ("diffusers", "huggingface_hub", "mido", "rtmidi", "pygame"):
        line(name, version_of(name))
    section("compute")
    device_report(config)
    section("MIDI")
    midi_report()
    section("display")
    display_report()
    section("models")
    if args.download:
        download(config)
    models_report(config)
    section("anchors")
    anchors_report(config)
    return 0


def section(title: str) -> None:
    print(f"\n{title}")


def line(name: str, value: object) -> None:
    print(f"  {name:<16} {value}")


def version_of(module: str) -> str:
    try:
        imported = __import__(module)
    except Exception as e:  # a broken install is worth reporting, whatever it raises
        return f"not available ({type(e).__name__}: {e})"
    return str(getattr(imported, "__version__", "installed"))


def device_report(config: ModelSettings) -> None:
    import torch

    from instrument.devices import DeviceError, resolve_device, resolve_dtype

    line("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available")
    line("mps", "available" if torch.backends.mps.is_available() else "not available")
    try:
        device = resolve_device(config.device)
        line("device", f"{device} (asked: {config.device})")
        line("dtype", f"{resolve_dtype(config.dtype, device)} (asked: {config.dtype})")
    except DeviceError as e:
        line("device", f"problem: {e}")


def midi_report() -> None:
    try:
        import rtmidi
    except Exception as e:
        line("rtmidi", f"not available ({e}); the keyboard and mouse still play")
        return
    # Probing must not start a JACK server as a side effect.
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    apis = rtmidi.get_compiled_api()
    line("APIs", ", ".join(rtmidi.get_api_name(api) for api in apis) or "none")
    for api in apis:
        name = rtmidi.get_api_name(api)
        for kind, cls in (("inputs", rtmidi.MidiIn), ("outputs", rtmidi.MidiOut)):
            try:
                with quiet_stderr():  # ALSA and JACK print their own complaints
                    port = cls(api)
                    ports = port.get_ports()
                    port.delete()
            except Exception as e:  # no ALSA sequencer, no JACK server, ...: report and go on
                line(f"{name} {kind}", f"unavailable ({type(e).__name__}: {e})")
                break
            line(f"{name} {kind}", ", ".join(ports) if ports else "no ports")


def display_report() -> None:
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        line(var, os.environ.get(var, "(unset)"))
    try:
        import pygame
    except Exception as e:
        line("pygame", f"not available ({e}); use --headless and record")
        return
    try:
        with quiet_stderr():
            pygame.display.init()
        from instrument.display.desktop import desktop_sizes

        driver = pygame.display.get_driver()
        line("SDL driver", driver)
        for i, (w, h) in enumerate(desktop_sizes()):  # (play --output-display N takes these numbers)
            line(f"display {i}", f"{w}x{h}" + (" (main)" if i == 0 else ""))
        if driver in ("dummy", "offscreen"):
            line("window", "none (headless driver): use --headless and record")
    except Exception as e:
        line("SDL driver", f"no display ({e}); use --headless and record")
    finally:
        pygame.display.quit()


def download(config: ModelSettings) -> None:
    from instrument.decoders import load_models

    online = {**config.to_dict(), "offline": False, "device": "cpu", "dtype": "fp32"}
    fast, full = load_models(Config(**online))
    line("fast decoder", fast.label + (f"\n{fast.notice}" if fast.notice else ""))
    line("full decoder", full.label if full else "none")


def models_report(config: ModelSettings) -> None:
    from instrument.decoders.loaders import DEFAULT_FAST, DEFAULT_FULL, hub_cache

    cache = hub_cache()
    line("HF cache", cache)
    repos = []
    if cache.is_dir():
        try:
            from huggingface_hub import scan_cache_dir

            repos = sorted(scan_cache_dir(cache).repos, key=lambda r: r.repo_id)
        except Exception as e:  # a damaged cache is reported, not fatal
            line("cached", f"could not scan ({type(e).__name__}: {e})")
    cached = {r.repo_id for r in repos}
    for role, defaults in (("default fast", DEFAULT_FAST), ("default full", DEFAULT_FULL)):
        source = defaults.get(config.family)
        if source is None:
            line(role, f"none for {config.family}")
        else:
            repo = "/".join(source.split("/")[:2])
            line(role, f"{source} ({'cached' if repo in cached else 'not cached'})")
    for repo in repos:
        line("cached", f"{repo.repo_id} ({repo.repo_type}, {repo.size_on_disk_str})")
    if not repos:
        line("cached", "no models")


def anchors_report(config: ModelSettings) -> None:
    try:
        from instrument.latent.anchors import AnchorCache

        root = AnchorCache(config.cache_dir or None).root
    except Exception as e:
        line("anchor cache", f"unknown ({type(e).__name__}: {e})")
        return
    entries = list(root.glob("*.safetensors")) if root.is_dir() else []
    size = sum(p.stat().st_size for p in entries) / 1e6
    line("anchor cache", f"{root} ({len(entries)} latents, {size:.1f} MB)")
