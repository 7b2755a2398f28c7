"""Small helpers for data-parallel training with `torch.distributed` (DDP).

Training scales out with one process per device, launched by `torchrun`:

    torchrun --nproc_per_node=4 train.py            # one machine, 4 processes
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \\
             --rdzv_backend=c10d --rdzv_endpoint=host0:29500 train.py   # two machines

where `train.py` is an ordinary script:

    from multirec import MultimodalRecommender
    from multirec.distributed import init_from_env, is_main

    init_from_env()                     # NCCL with CUDA, else gloo; no-op outside torchrun
    model = MultimodalRecommender(encoders=..., device="cuda", batch_size=128).fit(data)
    if is_main():
        model.save_pretrained("model")

`fit` notices the initialised process group (`TrainConfig.distributed="auto"`): every rank
trains on its shard of the users with `DistributedDataParallel`, so `batch_size` is per
process and the global batch is `batch_size * world_size`. All ranks end with identical
weights; only rank 0 shows progress bars and writes checkpoints.

For tests and examples on one machine without `torchrun`, `launch(fn, world_size, *args)`
spawns the processes itself (gloo on 127.0.0.1) and returns each rank's result.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "is_distributed", "rank", "world_size", "local_rank", "is_main", "init_from_env", "launch",
    "all_reduce_sum", "all_gather", "barrier",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside distributed runs)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 outside distributed runs)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """Rank on this machine (`LOCAL_RANK` set by torchrun; the rank otherwise)."""
    return int(os.environ.get("LOCAL_RANK", rank()))


def is_main() -> bool:
    """True on rank 0 (and outside distributed runs): the process that writes files."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group described by torchrun's environment; returns (rank, world_size).

    Outside torchrun (no `RANK`/`WORLD_SIZE` variables) this does nothing and returns (0, 1).
    The backend defaults to NCCL when CUDA is available, else gloo; with CUDA each process
    uses the GPU `cuda:LOCAL_RANK`.
    """
    if not dist.is_available() or "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return rank(), world_size()
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend)
    return rank(), world_size()


def all_reduce_sum(values: list[float] | np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Sum float64 `values` over all ranks (identical result on every rank)."""
    t = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """`tensor` from every rank, in rank order (same shape and dtype on all ranks)."""
    if not is_distributed():
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(out, tensor.contiguous())
    return out


def barrier() -> None:
    """Wait for all ranks (no-op outside distributed runs)."""
    if is_distributed():
        dist.barrier()


# ---------------------------------------------------------------------- local launcher
def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo",
           threads: int | None = None, timeout_s: float = 600.0) -> list[Any]:
    """Run `fn(rank, world_size, *args)` in `world_size` new processes joined in a process group.

    Like `torchrun --nproc_per_node=world_size` on 127.0.0.1, for tests and examples; `fn`
    must be importable (a module-level function). Returns the ranks' return values in rank
    order, sent back through a queue (tensors in them are converted to numpy arrays). An
    exception in any rank is raised here.

        def work(rank, world, data):
            return MultimodalRecommender(epochs=5, show_progress=False).fit(data).history_.epochs

        histories = launch(work, 2, data)
    """
    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    threads = threads or max(1, (os.cpu_count() or 1) // world_size)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    procs = mp.start_processes(_worker, args=(fn, world_size, port, backend, threads, queue, args),
                               nprocs=world_size, join=False, start_method="spawn")
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout_s
    while not procs.join(timeout=0.05):  # raises ProcessRaisedException if a rank failed
        while not queue.empty():
            r, value = queue.get()
            results[r] = value
        if time.monotonic() > deadline:
            for p in procs.processes:
                p.kill()
            raise TimeoutError(f"launch(): the {world_size} processes did not finish in {timeout_s} s")
    while not queue.empty():
        r, value = queue.get()
        results[r] = value
    return [results.get(r) for r in range(world_size)]


def _worker(r: int, fn: Callable[..., Any], n: int, port: int, backend: str, threads: int,
            queue: Any, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r),
                      WORLD_SIZE=str(n), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(n))
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(r)
    dist.init_process_group(backend, rank=r, world_size=n)
    try:
        queue.put((r, _to_numpy(fn(r, n, *args))))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
