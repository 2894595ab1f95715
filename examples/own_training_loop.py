"""A trained l2t teacher as the loss of your own PyTorch training loop.

    python examples/own_training_loop.py                         # trains a small teacher first (seconds)
    python examples/own_training_loop.py --teacher runs/demo/teach

Your model, ``torch.optim.SGD`` and a ``DataLoader``; the teacher only replaces the loss. It reads
the student's state every ``state_every`` steps (the step, the training accuracy it has seen, and
the model's predictions on the dev split) and sets the loss's coefficients for the next phase.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from l2t import TeacherLoss
from l2t.data import load_digits


def small_teacher(folder: str) -> str:
    """A teacher trained for a few seconds on digits (l2t's tiny config), for the example."""
    from l2t.config import load_config
    from l2t.teach import teach

    return str(teach(load_config("tiny"), folder, progress=False).teacher_path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", help="a teacher file or teach run folder (default: train a small one)")
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    teacher = args.teacher or small_teacher(tempfile.mkdtemp(prefix="l2t-example-"))

    torch.manual_seed(0)
    data = load_digits()  # 1000 train / 300 dev / 497 test, standardised
    train = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=50, shuffle=True, drop_last=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)

    # the loss: the teacher reads the model's state on the dev split; total_steps sets its t/T
    criterion = TeacherLoss.load(teacher, data.dev.x, data.dev.y, total_steps=args.epochs * len(train))
    step = 0
    for _ in range(args.epochs):
        for x, y in train:
            loss = criterion(model(x), y, step=step, model=model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1

    model.eval()
    with torch.no_grad():
        error = (model(data.test.x).argmax(-1) != data.test.y).float().mean().item()
    # the bilinear loss is scaled by 4/c so that its gradient starts at cross entropy's; its value
    # is about −2/c + cross entropy (−20 + CE for c = 0.1), not a cross entropy itself
    print(f"{step} steps; last loss value {loss.item():.2f}; test error {100 * error:.2f}%")


if __name__ == "__main__":
    main()
