r"""Data parallelism with ``torch.distributed`` (launched by ``torchrun``), shared by the trainers.

The pattern every trainer follows, so that N processes reproduce one process on the same global batch
up to floating-point reduction order:

1. every rank draws the *global* batch (collocation points, probes) from the same seeded generator,
   so randomness does not depend on the number of ranks and a checkpoint resumes on any number;
2. each rank keeps its contiguous shard (:meth:`DistContext.shard`);
3. each rank computes the loss as a mean over its shard and back-propagates;
4. :meth:`DistContext.average_gradients` all-reduces the gradients and divides by the world size,
   which equals the gradient of the global mean when the shards are equal (hence the requirement
   that batch sizes divide by the world size);
5. only rank 0 writes files (:attr:`DistContext.is_main`).

Launch::

    torchrun --nproc_per_node=2 -m sciml pinn train CONFIG           # one machine, 2 processes
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST0 --master_port=29500 \
             --nproc_per_node=4 -m sciml pinn train CONFIG           # on node 0 (node_rank=1 on node 1)

The backend is ``nccl`` when the device is CUDA and ``gloo`` otherwise; ``--backend`` overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import Tensor

__all__ = ["DistContext", "init_distributed", "launched_by_torchrun", "DistributedUnsupported",
           "require_single_process"]


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


class DistributedUnsupported(RuntimeError):
    """A command that has no data-parallel mode was launched on several processes."""


def require_single_process(command: str, why: str) -> None:
    """Refuse, with the reason and what to do instead, when ``command`` runs under torchrun with more
    than one process (each process would otherwise silently repeat the same run)."""
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        raise DistributedUnsupported(
            f"`sciml {command}` has no data-parallel mode ({why}). Run it as one process "
            f"(`python -m sciml {command} ...`), or start independent runs with different --seed values. "
            f"Data parallelism is available in `sciml pinn train | transfer | family`.")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank, world_size, local_rank: as set by torchrun (0, 1, 0 when not distributed).
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (single process).
        device: this process's device (``cuda:local_rank`` on GPU machines).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard_slice(self, n: int, what: str = "batch") -> slice:
        """The contiguous slice of ``n`` items this rank owns; ``n`` must divide by the world size so
        that averaging per-rank gradients equals the gradient of the global mean."""
        if n % self.world_size:
            raise ValueError(f"{what} of {n} does not divide by the {self.world_size} processes; choose a "
                             f"multiple of {self.world_size} so that every rank holds an equal shard")
        k = n // self.world_size
        return slice(self.rank * k, (self.rank + 1) * k)

    def split_slice(self, n: int, what: str = "items") -> slice:
        """This rank's contiguous share of ``n`` independent items (family members), as even as can be:
        the first ``n % world_size`` ranks hold one more."""
        if n < self.world_size:
            raise ValueError(f"{n} {what} cannot be spread over {self.world_size} processes; "
                             f"launch at most {n} processes")
        sizes = self.split_sizes(n)
        lo = sum(sizes[: self.rank])
        return slice(lo, lo + sizes[self.rank])

    def split_sizes(self, n: int) -> list[int]:
        """How many of ``n`` items each rank holds under :meth:`split_slice`, in rank order."""
        k, r = divmod(n, self.world_size)
        return [k + (rank < r) for rank in range(self.world_size)]

    def shard(self, t: Tensor, what: str = "batch") -> Tensor:
        return t[self.shard_slice(t.shape[0], what)]

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """All-reduce ``.grad`` of ``params`` and divide by the world size (one flattened bucket)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        ps = [p for p in params if p.grad is not None]
        if not ps:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        dist.all_reduce(flat)
        flat /= self.world_size
        off = 0
        for p in ps:
            n = p.grad.numel()
            p.grad.copy_(flat[off : off + n].view_as(p.grad))
            off += n

    def all_reduce_mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Average scalar metrics over ranks (for logging the global loss)."""
        return {k: v / self.world_size for k, v in self.all_reduce(values).items()}

    def all_reduce(self, values: Mapping[str, float], op: str = "sum") -> dict[str, float]:
        """``op`` (``"sum"`` or ``"max"``) of scalar values over ranks, in float64."""
        if not self.distributed:
            return dict(values)
        import torch.distributed as dist

        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                         device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return dict(zip(keys, t.tolist()))

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (any picklable object, e.g. a checkpoint) on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def broadcast_(self, tensors: Iterable[Tensor]) -> None:
        """Copy rank 0's values into every rank's tensors (identical initialisation)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t.data, src=0)

    def gather_objects(self, obj):
        """Every rank's ``obj`` on rank 0 (a list in rank order), ``None`` elsewhere."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Wait for every rank, then leave the process group (end of a command)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()


def init_distributed(device: str = "auto", backend: str = "auto") -> DistContext:
    """Set up from torchrun's environment; a plain process gets a single-process context.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; with CUDA each process takes ``cuda:LOCAL_RANK``.
        backend: ``"auto"`` (nccl for CUDA, gloo otherwise), ``"gloo"`` or ``"nccl"``.
    """
    from .runtime import resolve_device

    dev = resolve_device(device)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(device=dev)
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", 0))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"--backend must be auto, gloo or nccl, got {backend!r}")
    if backend == "nccl" and dev.type != "cuda":
        raise ValueError("--backend nccl needs --device cuda; use gloo on CPU")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, backend, dev)
