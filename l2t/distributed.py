"""Teacher steps spread over processes and machines with ``torch.distributed`` (``torchrun``).

    torchrun --nproc-per-node 2 -m l2t teach --config fashion/fashion_lenet --out runs/t
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m l2t teach ...

Episode ``e`` of every teacher step runs on rank ``e mod world_size``; each rank sends its
episodes' results (hypergradient, memory, metrics) to every other in one ``all_reduce`` of a
float64 table with a row per episode (a row is non-zero on its owner only, so the sum is exact).
Every rank then applies the same update in episode order, so **the teacher after S steps is
bit-identical for any world size** with the same number of episodes and the same threads per
process (intra-op parallel reductions may round differently with a different thread count).
Rank 0 writes the run folder; the others write nothing. A resumed run broadcasts rank 0's
config and checkpoint, so other machines need the data but not the run folder. Ranks beyond
the number of episodes idle (and say so). gloo on CPU, NCCL on CUDA (one GPU per local rank).
No pickles travel: only tensors.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from l2t.pytree import tensors as tensor_leaves
from l2t.pytree import tree_flatten, tree_unflatten

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a job (``size == 1``: alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owner(self, episode: int) -> int:
        return episode % self.size


ALONE = World()


def world_from_env() -> World:
    """The world torchrun describes in the environment (``WORLD_SIZE``, ``RANK``, ...), or alone."""
    from l2t.errors import L2TError

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return ALONE
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise L2TError(f"WORLD_SIZE={size} but {', '.join(missing)} unset: launch with torchrun")
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def init(device: str) -> World:
    """Join the process group of a torchrun job (gloo on CPU, NCCL on CUDA), once; alone
    otherwise."""
    import torch.distributed as dist

    world = world_from_env()
    if world.size > 1 and not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(world.local_rank)
        # ranks wait inside a collective while others finish their episodes (more ranks than
        # episodes, or an uneven share): the timeout must outlast the longest episode
        timeout = datetime.timedelta(hours=float(os.environ.get("L2T_DIST_TIMEOUT_HOURS", "24")))
        # A job torchrun restarted (--max-restarts) meets again in the store of the first attempt:
        # give each attempt its own key prefix, so stale keys of the failed one are never read.
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                              is_master=world.rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True",
                              timeout=timeout)
        store = dist.PrefixStore(f"l2t/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=world.rank, world_size=world.size,
                                timeout=timeout)
        atexit.register(_leave)
        log.info("rank %d of %d (local %d of %d) joined", world.rank, world.size, world.local_rank, world.local_size)
    return world


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def restarted() -> bool:
    """Whether torchrun restarted this job after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


@contextlib.contextmanager
def _collective() -> Iterator[None]:
    """A collective whose peer died (killed, crashed) is one error line, not a gloo traceback."""
    from l2t.errors import L2TError

    try:
        yield
    except RuntimeError as e:  # DistBackendError, DistNetworkError and gloo's errors are RuntimeErrors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise L2TError(f"another process of this torchrun job stopped ({first[:160]}); the job fails: run it again, "
                       "or give torchrun --max-restarts to resume from the last checkpoint by itself") from None


def _device(world: World) -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_text(text: str | None, world: World) -> str:
    """Rank 0's ``text`` on every rank (as bytes in a tensor)."""
    import torch.distributed as dist

    if world.size == 1:
        return text
    dev = _device(world)
    data = torch.tensor(list(text.encode()) if world.main else [], dtype=torch.uint8, device=dev)
    n = torch.tensor([data.numel()], dtype=torch.int64, device=dev)
    with _collective():
        dist.broadcast(n, 0)
        if not world.main:
            data = torch.empty(int(n), dtype=torch.uint8, device=dev)
        dist.broadcast(data, 0)
    return bytes(data.cpu().tolist()).decode()


def broadcast_tree(tree: Any, world: World) -> Any:
    """Rank 0's pytree of tensors and ints on every rank (the others pass one of the same shape)."""
    import torch.distributed as dist

    if world.size == 1:
        return tree
    dev = _device(world)
    leaves, spec = tree_flatten(tree)
    out = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            t = leaf.detach().to(dev).clone()
            with _collective():
                dist.broadcast(t, 0)
            out.append(t.to(leaf.device))
        elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            t = torch.tensor([leaf], dtype=torch.float64, device=dev)
            with _collective():
                dist.broadcast(t, 0)
            out.append(type(leaf)(t.item()))
        else:
            out.append(leaf)
    return tree_unflatten(out, spec)


def allreduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    import torch.distributed as dist

    if world.size == 1:
        return values
    t = values.to(_device(world))
    with _collective():
        dist.all_reduce(t)
    return t.to(values.device)


def barrier(world: World) -> None:
    import torch.distributed as dist

    if world.size > 1:
        with _collective():
            dist.barrier()


STATUS = {"ok": 1.0, "non-finite": 2.0, "diverged": 3.0}
_HEAD = ("status", "outer_loss", "dev_measure", "dev_error", "seconds", "rank")


def gather_episodes(local: dict[int, Any], step: int, episodes: int, params: dict[str, torch.Tensor], memory: Any,
                    world: World) -> list[Any]:
    """Every episode's result on every rank, in episode order. ``local`` maps the episodes this
    rank ran to their :class:`~l2t.teach.EpisodeResult`; ``params`` and ``memory`` give the shapes
    of a hypergradient and of a memory. The values travel as float64, which holds float32 and
    float64 exactly, so every rank sees what the owner computed, bit for bit."""
    from l2t.teach import EpisodeResult

    if world.size == 1:
        return [local[e] for e in range(episodes)]
    keys = list(params)
    sizes = [params[k].numel() for k in keys]
    mem_leaves, mem_spec = tree_flatten(memory)
    mem_tensors = [m for m in mem_leaves if isinstance(m, torch.Tensor)]
    width = len(_HEAD) + sum(sizes) + sum(m.numel() for m in mem_tensors)
    table = torch.zeros(episodes, width, dtype=torch.float64)
    for e, r in local.items():
        head = torch.tensor([STATUS[r.status], r.outer_loss, r.dev_measure, r.dev_error, r.seconds, world.rank],
                            dtype=torch.float64)
        grads = [r.grads[k].detach().double().reshape(-1).cpu() if r.grads else torch.zeros(n, dtype=torch.float64)
                 for k, n in zip(keys, sizes)]
        mems = [m.detach().double().reshape(-1).cpu() for m in tensor_leaves(r.memory)]
        table[e] = torch.cat([head, *grads, *mems])
    table = allreduce_sum(table, world)
    status = {v: k for k, v in STATUS.items()}
    out = []
    for e in range(episodes):
        row, pos = table[e], len(_HEAD)
        head = dict(zip(_HEAD, row[:pos].tolist()))
        grads = {}
        for k, n in zip(keys, sizes):
            grads[k] = row[pos : pos + n].view(params[k].shape).to(params[k])
            pos += n
        rebuilt = []
        for leaf in mem_leaves:
            if isinstance(leaf, torch.Tensor):
                rebuilt.append(row[pos : pos + leaf.numel()].view(leaf.shape).to(leaf))
                pos += leaf.numel()
            else:
                rebuilt.append(leaf)
        out.append(EpisodeResult(step, e, status[head["status"]], head["outer_loss"],
                                 grads, tree_unflatten(rebuilt, mem_spec), head["dev_measure"], head["dev_error"],
                                 head["seconds"], local[e].reason if e in local else "", int(head["rank"])))
    return out


def agree(error: str | None, world: World) -> None:
    """Raise rank 0's error (an :class:`~l2t.errors.L2TError` message, or ``None``) on every rank,
    so that a check only rank 0 can make (its run folder) stops the whole job with one line."""
    from l2t.errors import AgreedError

    message = broadcast_text(error or "", world) if world.size > 1 else (error or "")
    if message:
        raise AgreedError(message)
