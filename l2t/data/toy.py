"""A generated sequence task for tests and smoke runs: reverse a string of tokens.

Each source is 2 to ``max_len`` symbols drawn uniformly from ``symbols`` symbols; its target is the
same string reversed. Sequences have different lengths, so every batch is padded and masked: the
smallest real seq2seq problem on which the padding contract can be checked. Token ids: 0 padding,
1 begin, 2 end, symbols from 3.
"""

from __future__ import annotations

import torch

from l2t.data.examples import SequencePairs
from l2t.data.splits import DataSplits
from l2t.errors import L2TError
from l2t.types import Seq2SeqTask

PAD, BOS, EOS, FIRST = 0, 1, 2, 3


def _pairs(n: int, symbols: int, max_len: int, g: torch.Generator) -> SequencePairs:
    lengths = torch.randint(2, max_len + 1, (n,), generator=g)
    tokens = torch.randint(FIRST, FIRST + symbols, (n, max_len), generator=g)
    src = torch.full((n, max_len + 1), PAD, dtype=torch.long)  # symbols, EOS
    tgt = torch.full((n, max_len + 2), PAD, dtype=torch.long)  # BOS, reversed symbols, EOS
    for i, length in enumerate(lengths.tolist()):
        s = tokens[i, :length]
        src[i, :length], src[i, length] = s, EOS
        tgt[i, 0], tgt[i, 1 : length + 1], tgt[i, length + 1] = BOS, s.flip(0), EOS
    return SequencePairs(src, tgt, PAD)


def load_reverse(
    *, train_size: int | None = None, dev_size: int | None = None, test_size: int | None = None,
    split_seed: int = 0, symbols: int = 6, max_len: int = 7,
) -> DataSplits:
    """``train_size`` / ``dev_size`` / ``test_size`` pairs (default 512 / 128 / 128), generated
    from ``split_seed``."""
    sizes = [512 if train_size is None else train_size, 128 if dev_size is None else dev_size,
             128 if test_size is None else test_size]
    if min(sizes) < 1:
        raise L2TError(f"toy-reverse: split sizes must be positive, got {sizes}")
    g = torch.Generator().manual_seed(split_seed)
    train, dev, test = (_pairs(n, symbols, max_len, g) for n in sizes)
    task = Seq2SeqTask(src_vocab=FIRST + symbols, tgt_vocab=FIRST + symbols, pad_id=PAD, bos_id=BOS, eos_id=EOS,
                       max_len=max_len + 2)
    return DataSplits("toy-reverse", train, dev, test, task)
