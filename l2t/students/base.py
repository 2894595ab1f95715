"""A functional view on an ``nn.Module`` student.

The module only defines the architecture. Training works on explicit ``params`` / ``buffers``
dicts through :func:`torch.func.functional_call`, so the unrolled inner loop can hold many
versions of the weights at once and differentiate through them; the module's own parameters are
never written to.

**Exact replay of stochastic layers.** A training-mode forward pass draws its randomness (dropout
masks, stochastic depth, anything that samples from torch's generators) from generators seeded
with the batch's seed, derived from ``(episode seed, step)``, and restores the global generators
afterwards. The methods that recompute a step on the way back (``reverse``, ``checkpoint``,
``reversible``, ``truncated``) therefore see the very masks of the forward pass. A layer that
draws from anything else (numpy, Python's ``random``, an unseeded generator of its own) cannot be
replayed; :meth:`Student.check_replay` finds it by running one step twice and names it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from l2t.errors import L2TError
from l2t.pytree import tensors
from l2t.registry import Registry
from l2t.types import Batch, ClassificationTask, HeadOutputs, Params, Task

STUDENTS: Registry[nn.Module] = Registry("student")

#: ``train``: batch statistics, running statistics updated, stochastic layers on (seeded);
#: ``eval``: running statistics, stochastic layers off (test time);
#: ``batch_stats``: batch statistics, stochastic layers off (the exact dev objective, see
#: :class:`~l2t.inner.InnerProblem`).
MODES = ("train", "eval", "batch_stats")


def he_init(module: nn.Module) -> None:
    """He-normal convolution weights (fan out), as the ResNet / WRN / DenseNet papers use."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def image_task(task: Task, name: str) -> ClassificationTask:
    """A convolutional student needs a classification task on ``(C, H, W)`` inputs."""
    if not isinstance(task, ClassificationTask):
        raise L2TError(f"{name} is an image classifier; the data set poses a {task.kind} task")
    if len(task.input_shape) != 3:
        raise L2TError(f"{name} expects images (C, H, W), got input shape {task.input_shape}")
    return task


class ConvClassifier(nn.Module):
    """What the CIFAR students (ResNet, WRN, DenseNet-BC) share: He-initialised convolutions, and
    a head that averages the last feature map over space into the final linear layer ``fc``."""

    fc: nn.Linear

    def reset_parameters(self) -> None:
        he_init(self)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` feature map -> ``(B, classes)`` logits."""
        return self.fc(x.mean(dim=(2, 3)))


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Torch's default generators (CPU, and the device's on CUDA) seeded with ``seed`` inside,
    restored on the way out; a no-op for ``seed=None``."""
    if seed is None:
        yield
        return
    gens = [torch.default_generator]
    if device.type == "cuda":
        gens.append(torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()])
    states = [g.get_state() for g in gens]
    for g in gens:
        g.manual_seed(seed)
    try:
        yield
    finally:
        for g, s in zip(gens, states):
            g.set_state(s)


def _replayed(x: torch.Tensor, y: torch.Tensor) -> bool:
    """The same tensor up to rounding: two identical calls of a multi-threaded CPU kernel can
    differ in the last bits (measured: a float64 tanh layer of the detector, in one check-grad run
    of three); a dropout mask or any redrawn randomness changes values by far more than this."""
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if not x.is_floating_point():
        return torch.equal(x, y)
    if not all(torch.equal(f(x), f(y)) for f in (torch.isnan, torch.isposinf, torch.isneginf)):
        return False  # a NaN or Inf in one run and not at the same place in the other
    finite = torch.isfinite(x)
    scale = float(torch.where(finite, x, 0).abs().max()) if x.numel() else 0.0
    return bool(((x - y).abs() <= 1e-6 * max(scale, 1.0))[finite].all())


class Student:
    """``init(seed) -> (params, buffers)``; ``apply(params, buffers, inputs, mode, rng) -> (outputs, buffers)``."""

    def __init__(self, name: str, module: nn.Module, task: Task) -> None:
        self.name, self.module, self.task = name, module, task
        # the final classifier: the module's ``classifier`` attribute names it (None: it has no
        # linear head of its own, e.g. an output tied to an embedding); else the last nn.Linear
        heads = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        named = getattr(module, "classifier", "")
        if named != "":
            heads = [(n, m) for n, m in heads if n == named]
        self.head_name, self.head = heads[-1] if heads else (None, None)
        self._norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._replay_checked = False

    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def init(self, seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Params, Params]:
        """Fresh random weights, a pure function of ``seed`` (drawn on the CPU, then moved).

        The draws happen on a copy: the module itself is never written to."""
        module = copy.deepcopy(self.module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # layers first, in forward order; then networks with an initialisation of their own
            # (He for the convolutions of the CIFAR nets), outermost last, so it wins
            resettable = [m for m in module.modules() if hasattr(m, "reset_parameters")]
            for m in resettable:
                if not any(True for _ in m.children()):
                    m.reset_parameters()
            for m in reversed(resettable):
                if any(True for _ in m.children()):
                    m.reset_parameters()
        params = {k: v.detach().to(device=device, dtype=dtype) for k, v in module.named_parameters()}
        buffers = {
            k: v.detach().to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
            for k, v in module.named_buffers()
        }
        return params, buffers

    def _set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"Invalid student mode: {mode!r} ({' | '.join(MODES)})")
        self.module.train(mode == "train")
        if mode == "batch_stats":
            for m in self._norms:
                m.train(True)

    def apply(
        self, params: Params, buffers: Params, inputs: Any, mode: str = "train", *, rng: int | None = None,
        features: bool = False, aux: bool = False,
    ) -> tuple[torch.Tensor | HeadOutputs, Params]:
        """Forward pass on ``inputs`` (a pytree: an image batch, or source and target tokens).

        In ``train`` and ``batch_stats`` mode BatchNorm uses batch statistics and the returned
        buffers hold the updated running statistics (the input ``buffers`` are left untouched).
        In ``train`` mode stochastic layers draw from generators seeded with ``rng`` (see the
        module documentation). With ``features`` the outputs are :class:`HeadOutputs` (logits plus
        the final layer's input and weights); with ``aux`` they are ``(logits, aux_outputs)``, what
        the module's ``forward(inputs, aux=True)`` returns besides its logits (a detector: its
        boxes), for the task's fixed loss term."""
        if buffers:
            buffers = {k: v.clone() for k, v in buffers.items()}
        self._set_mode(mode)
        device = next(iter(params.values())).device
        with seeded(rng if mode == "train" else None, device):
            if aux:
                if features:
                    raise ValueError("apply: aux and features cannot be asked together")
                return functional_call(self.module, (params, buffers), (inputs,), {"aux": True}), buffers
            if not features:
                return functional_call(self.module, (params, buffers), (inputs,)), buffers
            if self.head is None:
                raise L2TError(f"student {self.name!r} has no final linear layer to take features from")
            seen: list[torch.Tensor] = []
            hook = self.head.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
            try:
                logits = functional_call(self.module, (params, buffers), (inputs,))
            finally:
                hook.remove()
        bias = params.get(f"{self.head_name}.bias")
        return HeadOutputs(logits, seen[-1], params[f"{self.head_name}.weight"], bias), buffers

    def check_replay(self, params: Params, buffers: Params, batch: Batch) -> None:
        """Run one training-mode forward pass twice with the batch's seed; if any layer's output
        differs between the two while its inputs agree, that layer draws randomness that cannot be
        replayed, and an :class:`~l2t.errors.L2TError` names it. Checked once per student."""
        if self._replay_checked:
            return
        runs: list[list[tuple[str, nn.Module, list, list]]] = [[], []]
        for run in runs:
            def record(name):
                def hook(module, args, out):
                    run.append((name, module, [t.detach().clone() for t in tensors(args)],
                                [t.detach().clone() for t in tensors(out)]))
                return hook

            handles = [m.register_forward_hook(record(n)) for n, m in self.module.named_modules()]
            try:
                with torch.no_grad():
                    self.apply(params, buffers, batch.inputs, "train", rng=batch.seed)
            finally:
                for h in handles:
                    h.remove()
        a, b = runs
        if [r[0] for r in a] != [r[0] for r in b]:
            raise L2TError(f"student {self.name!r}: two forward passes with the same seed took different paths "
                           "through the network; its randomness cannot be replayed by the step-wise methods")
        for (name, module, ins_a, outs_a), (_, _, ins_b, outs_b) in zip(a, b):
            same_in = len(ins_a) == len(ins_b) and all(_replayed(x, y) for x, y in zip(ins_a, ins_b))
            same_out = len(outs_a) == len(outs_b) and all(_replayed(x, y) for x, y in zip(outs_a, outs_b))
            if same_in and not same_out:
                where = f"layer {name!r} ({type(module).__name__})" if name else f"the network's own forward ({type(module).__name__})"
                raise L2TError(
                    f"student {self.name!r}: {where} draws randomness that cannot be replayed (it does not come "
                    "from torch's generators, which l2t seeds per step); the step-wise hypergradient methods would "
                    "differentiate a different run. Draw it from torch, or use --hypergrad unrolled"
                )
        self._replay_checked = True


def create_student(name: str, task: Task, **options) -> Student:
    """Build a registered student for ``task`` (a :class:`~l2t.types.ClassificationTask` or
    :class:`~l2t.types.Seq2SeqTask`)."""
    factory: Callable[..., nn.Module] = STUDENTS.get(name)
    try:
        module = factory(task=task, **options)
    except (TypeError, ValueError) as e:
        raise L2TError(f"bad options for student {name!r}: {e}") from None
    return Student(name, module, task)
