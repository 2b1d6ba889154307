"""The whole frame as one function of fixed shape, and the static buffers (and CUDA graph) that run it.

``frame_function(ae, module, out_size, channels_last)``: diffusion latents [B, C, h, w] float32 ->
(frames [B, H, W, 3] uint8, finite: bool scalar tensor), all on the device, for the compiler and the graph.
``Pipeline``: one batch size of it with buffers allocated once: a CUDA graph needs them, and MPS grows
memory with every new shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from instrument.latent.fast import Mix
from instrument.pixels import pixels_to_uint8

FrameFunction = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def frame_function(ae: Any, module: torch.nn.Module, out_size: tuple[int, int],
                   channels_last: bool) -> FrameFunction:
    """Latents [B, C, h, w] -> (frames [B, H, W, 3] uint8 at ``out_size`` = (W, H), finite: bool tensor).

    ``module``: ``ae.decoder_module`` or a rewrite of it that computes the same (``decoders.subpixel``).
    ``finite`` is checked on the decoder's raw output, before the conversion clamps NaN away."""
    scale, shift = float(ae.latent_scale), float(ae.latent_shift)
    low, high = (float(v) for v in ae.pixel_range)
    dtype = ae.dtype

    def frame(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model_latents = (latents / scale + shift).to(dtype)
        if channels_last:
            model_latents = model_latents.contiguous(memory_format=torch.channels_last)
        pixels = module(model_latents)
        finite = torch.isfinite(pixels).all()
        return pixels_to_uint8((pixels.float() - low) / (high - low), out_size), finite

    return frame


class Pipeline:
    """One fixed batch size: static device buffers, the (compiled) frame function, maybe a CUDA graph.

    ``terms`` > 0 (batch 1 with a CUDA graph): the input is a ``Mix`` of that many terms, summed inside
    the graph from ``basis`` [terms, C*h*w] and ``weights`` [terms] (see ``load``); else ``static_in``."""

    def __init__(self, fn: FrameFunction, batch: int, latent_shape: tuple[int, int, int],
                 device: torch.device, graphs: bool, terms: int = 0) -> None:
        self.latent_shape = latent_shape
        self.basis: torch.Tensor | None = None
        self.static_in: torch.Tensor | None = None
        if terms:
            self.basis = torch.randn((terms, math.prod(latent_shape)), device=device)  # warm-up runs on it
            self.weights = torch.full((terms,), 1 / terms, device=device)
            self.rows: list[torch.Tensor | None] = [None] * terms  # the Mix vector in each basis row
        else:
            self.static_in = torch.randn((batch, *latent_shape), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.fn = fn
        if graphs:
            self.graph, self.static_out = self._capture(device)
        else:
            self.static_out = fn(self._input())

    def _capture(self, device: torch.device) -> tuple[torch.cuda.CUDAGraph, Any]:
        """Warm up off the capture (compilation, cuDNN choices), then capture one frame."""
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.fn(self._input())
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = self.fn(self._input())
        return graph, out

    def _input(self) -> torch.Tensor:
        if self.basis is None:
            return self.static_in
        # Multiply and sum, not a matrix product: exact for a single term of weight 1 (a plain latent),
        # and no TF32 whatever the process's matmul precision.
        return (self.weights[:, None] * self.basis).sum(0).view(1, *self.latent_shape)

    def load(self, source: torch.Tensor | Mix, pinned_weights: torch.Tensor,
             pinned_latent: torch.Tensor) -> None:
        """Put one frame's input in place (``terms`` > 0), stream-ordered, without waiting for the device.

        A ``Mix``: vectors not already in their rows are copied there (the rest of a frame's rows keep
        finite vectors of earlier mixes, weighted 0); a latent is row 0 with weight 1 (from the CPU through
        ``pinned_latent``). The weights go up through ``pinned_weights``. The pinned buffers must stay
        untouched until the frame is collected."""
        if isinstance(source, Mix):
            for row, vector in enumerate(source.vectors):
                if self.rows[row] is not vector:
                    self.basis[row].copy_(vector)
                    self.rows[row] = vector
            weights = source.weights
        else:
            if source.device.type == "cpu":
                pinned_latent.copy_(source)
                source = pinned_latent
            self.basis[0].copy_(source.reshape(-1), non_blocking=True)
            self.rows[0] = None
            weights = (1.0,)
        host = pinned_weights.numpy()
        host[:] = 0.0
        host[: len(weights)] = weights
        self.weights.copy_(pinned_weights, non_blocking=True)

    def run(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame(s) of the input in place; the returned tensors are reused by the next run."""
        if self.graph is not None:
            self.graph.replay()
            return self.static_out
        return self.fn(self._input())
