"""One denoising step as a fixed-shape function, and the runner that applies it k times on the device.

``make_step`` builds the step of ``schedule``'s module docstring around a UNet: everything that changes from
step to step or frame to frame (the timestep, the coefficient row, the latent, the noise, the text
embedding) is a tensor argument, so one compiled function, and one CUDA graph of it, serves every step of
every sculpt of a given batch size. ``StepRunner`` holds that function's static input buffers (the graph
reads them in place) and runs the k steps, keeping each step's x_t and x0.

The timestep and the coefficients are one for the whole batch (a batch of frames at one step), or one per row
(``per_row``: the stream batch of ``sculpt.stream``, each row a frame at a step of its own).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

StepFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


def make_step(unet: nn.Module, dtype: torch.dtype, guided: bool, channels_last: bool) -> StepFn:
    """The step ``(x, noise, emb, t, coef) -> (x_t, x0, next, finite)``.

    x, noise: float32 [B, C, h, w]; emb: [B, L, D] in ``dtype`` ([2B, L, D] when ``guided``: the empty
    prompt's rows, then the prompt's); t: float32 scalar, or [B] (a timestep per row); coef: float32
    [len(COEFFICIENTS)], or [B, len(COEFFICIENTS)] (a row per row). Returns x_t and x0 (float32 [B, C, h, w]:
    the step's noisy input and its predicted clean latent), the next step's input, and whether x0 is finite
    (bool scalar, all rows). The UNet runs in ``dtype``; the update in float32.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(x: Tensor, noise: Tensor, emb: Tensor, t: Tensor, coef: Tensor):
        c = coef.reshape(-1, coef.shape[-1], 1, 1, 1).unbind(1)  # each [1 or B, 1, 1, 1]: broadcasts per row
        x_t = c[0] * x + c[1] * noise
        sample = x_t.to(dtype).contiguous(memory_format=memory_format)
        if guided:
            sample = torch.cat([sample, sample])
            t = torch.cat([t, t]) if t.ndim else t
        out = unet(sample, t, encoder_hidden_states=emb, return_dict=False)[0].float()
        if guided:
            unconditioned, conditioned = out.chunk(2)
            out = unconditioned + c[11] * (conditioned - unconditioned)
        x0 = c[2] * x_t + c[3] * out
        eps = c[4] * x_t + c[5] * out
        denoised = c[6] * x_t + c[7] * x0
        following = c[8] * denoised + c[9] * eps + c[10] * noise
        return x_t, denoised, following, torch.isfinite(denoised).all()

    return step


class StepRunner:
    """k steps of one fixed shape on one device: eager, compiled, or replayed from a CUDA graph (``graphs``).

    ``latent_shape`` = [B, C, h, w]; ``emb_shape`` = [B or 2B, L, D]; ``per_row``: ``t`` is [B] and ``coef``
    [B, coefficients] (else a scalar and [coefficients]). Build it on the thread that will use it; with
    ``graphs`` the constructor compiles and captures (seconds to minutes on the first shape).
    """

    def __init__(self, step: StepFn, latent_shape: tuple[int, ...], emb_shape: tuple[int, ...],
                 coefficients: int, device: torch.device, dtype: torch.dtype, graphs: bool,
                 per_row: bool = False) -> None:
        self.step = step
        self.latent_shape = tuple(latent_shape)
        rows = (latent_shape[0],) if per_row else ()
        self.x = torch.randn(latent_shape, device=device)
        self.noise = torch.randn(latent_shape, device=device)
        self.emb = torch.zeros(emb_shape, device=device, dtype=dtype)
        self.t = torch.full(rows, 500.0, device=device)
        self.coef = torch.full((*rows, coefficients), 0.5, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[Tensor, ...] | None = None  # the graph's, which it rewrites in place
        if graphs:
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):  # warm-up (compilation, cuDNN choices) off the capture
                for _ in range(3):
                    self._call()
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.outputs = self._call()

    def _call(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.step(self.x, self.noise, self.emb, self.t, self.coef)

    def once(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One step on the buffers as they stand -> (x_t, x0, next, finite) of ``make_step``, queued on the
        device's stream. With a graph these are its own output tensors, rewritten by the next replay."""
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        return self._call()

    def run(self, latent: Tensor, noise: Tensor, emb: Tensor, ts: Tensor, coefs: Tensor,
            cancelled: Callable[[], bool] | None = None) -> tuple[Tensor, Tensor, Tensor] | None:
        """The steps for ``latent`` (float32 [B, C, h, w] on the device), with ``ts`` [k] and ``coefs`` [k, n]
        on the device -> (xts [k, B, C, h, w], x0s [k, B, C, h, w], all-finite bool scalar), fresh tensors
        queued on the device's stream (not waited for). None if ``cancelled()`` turned true between steps."""
        self.x.copy_(latent)
        self.noise.copy_(noise)
        self.emb.copy_(emb)
        k = ts.shape[0]
        xts = torch.empty((k, *self.latent_shape), device=self.x.device)
        x0s = torch.empty_like(xts)
        finite = torch.ones((), dtype=torch.bool, device=self.x.device)
        for i in range(k):
            if cancelled is not None and cancelled():
                return None
            self.t.copy_(ts[i])
            self.coef.copy_(coefs[i])
            x_t, x0, following, ok = self.once()
            xts[i].copy_(x_t)
            x0s[i].copy_(x0)
            finite &= ok
            self.x.copy_(following)
        return xts, x0s, finite
