"""``latent-instrument bench``: how fast the instrument is, against the interpolation app it replaces.

For each device (cpu, cuda, mps), decoder (fast: ``--model``, else the TAESD architecture; full:
``--full-model``, else the SD 1.5 VAE architecture; without a model named, randomly initialised weights,
since timing does not depend on weight values), dtype and size it measures:

- **decode**: one frame, latent -> uint8 picture on the host, median and p99, for the plain path
  (``Autoencoder.decode`` + conversion) and the accelerated one (``accel.FastDecoder``);
- **live**: the real render thread (``render.Renderer``) during a knob sweep: synthetic MIDI CC messages
  (mod wheel -> position, with a little noise so that no frame repeats) put into the ``EventQueue`` at
  200 per second; frames published to the mailbox per second, control event -> frame latency (p50, p99),
  the loop's overhead beyond the decode, and process/device memory at the start and the end;
- **baseline**: one slider move of the simple interpolation app: both images encoded again with the full
  VAE, SLERP, full decode, fp32, 512x512 (what a page rerun costs);
- **soak** (``--soak SECONDS``): a long sweep, memory sampled as it goes; flat within 5% is the target;
- **sculpt** (``--sculpt-steps 1,4``): the live loop with the sculpt stage on (``sculpt``): on a GPU every
  frame sculpted under the sweep (frames per second, the loop's overhead beyond the UNet and the decode); on
  a CPU moves and rests (display frames per second while moving, the sculpted frame's arrival after a rest
  against its own UNet steps + decode), each beside the plain diffusers loop.

It prints a table and writes ``<out>/<name>.md`` and ``.json``, naming the machine, torch, every setting and
the decoders timed. Modules: ``timing`` (one frame, the app's slider move), ``sweep`` (the live rows and the
soak), ``sculpt`` (the sculpt rows), ``report`` (lines, targets, Markdown), ``machine`` (what the run ran
on), ``command`` (the CLI). The rows are plain functions (``decode_times``, ``live_sweep``,
``slider_move_times``), so the tests run a tiny configuration end to end.
"""

from instrument.bench.command import configure_bench, run_bench
from instrument.bench.sweep import FLAT_OUT_FPS, live_sweep
from instrument.bench.timing import DECODER_ARCH, decode_times, slider_move_times, summary

__all__ = [
    "DECODER_ARCH",
    "FLAT_OUT_FPS",
    "configure_bench",
    "decode_times",
    "live_sweep",
    "run_bench",
    "slider_move_times",
    "summary",
]
