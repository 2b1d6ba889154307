"""The render's processes, as accelerate sees them: which one this is, its contiguous share of the frames,
and the few messages they exchange (the plan's digest at the start, each one's numbers at the end).

Started by ``accelerate launch`` (``render --processes N`` uses it) the processes join one torch.distributed
group over gloo: the messages are a few small Python objects, and gloo needs no GPU, so processes that share
a GPU (more processes than GPUs) work as well as one per GPU. Each process decodes on its own device
(``job.process_device``). Not started by accelerate, a render is a team of one and needs no group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from instrument.errors import UserError

TIMEOUT = timedelta(hours=2)  # the longest a process waits for the others at the start (loads, compiles)
WORLD_SIZE = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]  # (accelerate's)


def launched() -> bool:
    """Was this process started as one of several by a launcher (accelerate, torchrun, mpirun)?"""
    from accelerate.utils import get_int_from_env

    return get_int_from_env(WORLD_SIZE, 1) > 1


@dataclass
class Team:
    """This process's place among the render's processes: ``rank`` of ``size`` (``local_rank`` on its
    machine); ``state`` is accelerate's ``PartialState`` (None alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    state: Any = None

    @classmethod
    def join(cls) -> Team:
        """The team this process was started in: accelerate's processes, or one alone."""
        if not launched():
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=True, backend="gloo", timeout=TIMEOUT)  # (see the docstring)
        return cls(state.process_index, state.num_processes, state.local_process_index, state)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: list[Any]) -> list[Any]:
        """This process's contiguous share of ``items`` (the first ``len % size`` shares one longer)."""
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)

    def gather(self, item: Any) -> list[Any]:
        """Every process's ``item``, in rank order (every process calls it)."""
        if self.state is None:
            return [item]
        from accelerate.utils import gather_object

        return gather_object([item])

    def agree(self, what: str, value: str) -> None:
        """UserError (in every process) unless every process has the same ``value`` for ``what``."""
        values = self.gather(value)
        differ = [str(rank) for rank, v in enumerate(values) if v != values[0]]
        if differ:
            raise UserError(f"{what} differs between the processes (process {', '.join(differ)} against "
                            "process 0): do they run the same version on the same files?")
