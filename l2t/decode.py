"""Search with a sequence-to-sequence student: greedy and beam search, and BLEU by sacrebleu.

A student's module offers ``encode(src) -> (memory, src_mask)`` and ``decode(tgt_in, memory,
src_mask)`` (:mod:`l2t.students.seq2seq`). Search is never differentiated, so the student's
weights are loaded into a copy of its module, in eval mode. The Transformer is re-run on the
whole prefix at every step (no key-value cache: sentences here are short); the LSTMs carry their
states.

Beam search keeps ``beam`` hypotheses per sentence, extends each by every token, keeps the best
``beam`` by total log-probability; a hypothesis that emitted the end token is finished and kept
with its score; a sentence is done when ``beam`` hypotheses have finished, and the answer is the
finished one with the best score divided by its length (fairseq's length normalisation). With
``beam = 1`` it is greedy search: the first end token ends the sentence (a test).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from l2t.errors import L2TError
from l2t.pytree import tree_map
from l2t.students.seq2seq import LSTMSeq2Seq
from l2t.types import Params, Seq2SeqTask


def _module(student, params: Params, buffers: Params):
    """A copy of the student's module holding ``params`` and ``buffers``, on their device."""
    first = next(iter(params.values()))
    module = copy.deepcopy(student.module).to(device=first.device, dtype=first.dtype)
    module.load_state_dict({**params, **buffers}, strict=False)
    return module.eval()


def _last_logits(module, prefix: torch.Tensor, memory, src_mask: torch.Tensor, states):
    """Log-probabilities of the next token ``(N, V)`` after ``prefix (N, L)`` (and new states)."""
    out = module.decode(prefix if states is None else prefix[:, -1:], memory, src_mask, *([] if states is None else [states]))
    if isinstance(out, tuple):  # an LSTM: (logits, states)
        logits, states = out
    else:
        logits = out
    return F.log_softmax(logits[:, -1].float(), dim=-1), states


def _select(tree, index: torch.Tensor):
    """Rows ``index`` of every tensor of a pytree (memory, states)."""
    return tree_map(lambda t: t.index_select(0, index), tree)


@torch.no_grad()
def beam_search(student, params: Params, buffers: Params, src: torch.Tensor, *, beam: int = 5,
                max_len: int | None = None) -> list[list[int]]:
    """Token ids of the best translation of every row of ``src (B, S)`` (without BOS and EOS)."""
    task = student.task
    if not isinstance(task, Seq2SeqTask):
        raise L2TError(f"student {student.name!r} does not translate: it is a {task.kind} student")
    if beam < 1:
        raise L2TError(f"beam must be at least 1, got {beam}")
    module = _module(student, params, buffers)
    B = src.shape[0]
    limit = max_len or min(task.max_len, int((src != task.pad_id).sum(1).max()) * 2 + 10)
    memory, src_mask = module.encode(src)
    states = memory[1] if isinstance(module, LSTMSeq2Seq) else None  # the LSTMs carry their states
    rows = torch.arange(B, device=src.device).repeat_interleave(beam)  # (B·k,) the sentence of each beam
    memory, src_mask = _select(memory, rows), src_mask.index_select(0, rows)
    if states is not None:
        states = _select(states, rows)
    prefix = torch.full((B * beam, 1), task.bos_id, dtype=torch.long, device=src.device)
    scores = torch.full((B, beam), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # all beams start equal: keep one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    for _ in range(limit):
        logp, states = _last_logits(module, prefix, memory, src_mask, states)  # (B·k, V)
        logp[:, [task.pad_id, task.bos_id]] = float("-inf")  # never predicted
        V = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(B, beam * V)
        top, idx = cand.topk(min(2 * beam, beam * V), dim=-1)  # room for beams that finish now
        new_rows, new_tokens, new_scores = [], [], []
        for b in range(B):
            kept = 0
            # a sentence with `beam` finished hypotheses is done: it is never extended again, so
            # its answer does not depend on the other sentences of the batch
            for rank, (s, i) in enumerate([] if len(finished[b]) >= beam else zip(top[b].tolist(), idx[b].tolist())):
                k, token = divmod(i, V)
                if s == float("-inf"):
                    break
                src_row = b * beam + k
                if token == task.eos_id:
                    if rank < beam and len(finished[b]) < beam:  # an end among the k best finishes a hypothesis
                        hyp = prefix[src_row, 1:].tolist()
                        finished[b].append((s / (len(hyp) + 1), hyp))
                    continue
                if kept < beam:
                    new_rows.append(src_row)
                    new_tokens.append(token)
                    new_scores.append(s)
                    kept += 1
            while kept < beam:  # not enough live beams: pad with dead ones
                new_rows.append(b * beam)
                new_tokens.append(task.pad_id)
                new_scores.append(float("-inf"))
                kept += 1
        order = torch.tensor(new_rows, device=src.device)
        prefix = torch.cat([prefix.index_select(0, order), torch.tensor(new_tokens, device=src.device)[:, None]], 1)
        scores = torch.tensor(new_scores, device=src.device).view(B, beam)
        if states is not None:
            states = _select(states, order)
        if all(len(f) >= beam for f in finished):  # every sentence has its beam finished hypotheses
            break
    out = []
    for b in range(B):
        if not finished[b]:  # nothing ended within the limit: the best live hypothesis
            k = int(scores[b].argmax())
            finished[b].append((0.0, prefix[b * beam + k, 1:].tolist()))
        out.append(max(finished[b], key=lambda f: f[0])[1])
    return [[t for t in hyp if t not in (task.pad_id, task.eos_id, task.bos_id)] for hyp in out]


def greedy(student, params: Params, buffers: Params, src: torch.Tensor, *, max_len: int | None = None) -> list[list[int]]:
    """Greedy search: the most likely token at every step (beam search with one beam)."""
    return beam_search(student, params, buffers, src, beam=1, max_len=max_len)


def translate(student, params: Params, buffers: Params, tokenizer, sentences: list[str], *, beam: int = 5,
              batch: int = 64) -> list[str]:
    """Detokenised translations of raw ``sentences``."""
    task = student.task
    sp = tokenizer.model()
    out = []
    for i in range(0, len(sentences), batch):
        ids = [s[: task.max_len - 1] + [task.eos_id] for s in sp.encode(sentences[i : i + batch])]
        src = torch.full((len(ids), max(len(s) for s in ids)), task.pad_id, dtype=torch.long,
                         device=next(iter(params.values())).device)
        for j, s in enumerate(ids):
            src[j, : len(s)] = torch.tensor(s)
        out += sp.decode(beam_search(student, params, buffers, src, beam=beam))
    return out


def corpus_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """Corpus BLEU by sacrebleu (13a tokenisation of detokenised text) and its signature."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise L2TError("BLEU needs sacrebleu: pip install 'l2t[nmt]'") from None
    bleu = BLEU()
    return bleu.corpus_score(hypotheses, [references]).score, str(bleu.get_signature())


def load_translator(run_dir):
    """``(student, params, buffers, tokenizer)`` of a seq2seq student's run folder (``l2t train``):
    its ``config.json``, ``student.safetensors`` and ``spm.model``; nothing else is read."""
    import hashlib
    from pathlib import Path

    from l2t.config import load_config
    from l2t.data.parallel import BOS, EOS, PAD, Tokenizer
    from l2t.io import load_tensors
    from l2t.runs import TOKENIZER_FILE
    from l2t.students import create_student

    run_dir = Path(run_dir)
    for name in ("config.json", "student.safetensors", TOKENIZER_FILE):
        if not (run_dir / name).is_file():
            raise L2TError(f"{run_dir} is not a translation student's run folder: it has no {name}")
    cfg = load_config(run_dir / "config.json")
    model = run_dir / TOKENIZER_FILE
    tok = Tokenizer(str(model), hashlib.sha256(model.read_bytes()).hexdigest())
    vocab = tok.model().get_piece_size()
    task = Seq2SeqTask(vocab, vocab, PAD, BOS, EOS, int(cfg.data.options.get("max_len", 64)))
    student = create_student(cfg.student.name, task, **cfg.student.options)
    tensors, _ = load_tensors(run_dir / "student.safetensors")
    params = {k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}
    buffers = {k[len("buffers."):]: v for k, v in tensors.items() if k.startswith("buffers.")}
    expected = {k: tuple(v.shape) for k, v in student.module.named_parameters()}
    if {k: tuple(v.shape) for k, v in params.items()} != expected:  # names and shapes (vocabulary, widths)
        raise L2TError(f"{run_dir / 'student.safetensors'} does not hold a {cfg.student.name} of this config")
    return student, params, buffers, tok
