"""Encoder-decoder students for sequence-to-sequence tasks (L2T-DLF section 4.2): two LSTMs and a
Transformer.

Every student maps ``{"src": (B, S), "tgt_in": (B, T)}`` token ids (padded with the task's
``pad_id``) to next-token logits ``(B, T, V)`` under teacher forcing, and offers ``encode`` and
``decode`` for search (``encode(src) -> (memory, src_mask)``; ``decode(tgt_in, memory, src_mask)``
returns the logits, and the LSTMs also their final states). Padding never reaches a real position: source keys are
masked in every attention, recurrent states stop at a sequence's last real token, and the decoder
is causal (its padding comes after the real tokens).

Everything is written from differentiable primitives (the LSTM cell by hand, attention as
``softmax(QKᵀ/√d)V``), so double backward works on every device: cuDNN's fused RNNs and the fused
attention kernels cannot be differentiated twice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from l2t.errors import L2TError
from l2t.students.base import STUDENTS
from l2t.types import Seq2SeqTask, Task


def seq2seq_task(task: Task, name: str) -> Seq2SeqTask:
    if not isinstance(task, Seq2SeqTask):
        raise L2TError(f"{name} is a sequence-to-sequence student; the data set poses a {task.kind} task")
    return task


def sinusoids(length: int, dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encodings ``(length, dim)`` (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=dtype, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=dtype, device=device) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim, dtype=dtype, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, causal: bool,
           dropout: nn.Module | None = None) -> torch.Tensor:
    """``softmax(q kᵀ / √d) v`` over ``(..., T, d)`` queries and ``(..., S, d)`` keys;
    ``key_mask (B, S)`` is True at real keys."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, [H,] T, S)
    if key_mask is not None:
        shape = (key_mask.shape[0],) + (1,) * (scores.dim() - 2) + (key_mask.shape[1],)
        scores = scores.masked_fill(~key_mask.view(shape), float("-inf"))
    if causal:
        T, S = scores.shape[-2:]
        future = torch.ones(T, S, dtype=torch.bool, device=scores.device).triu(S - T + 1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v


# --------------------------------------------------------------------------------------------
# Transformer


class MultiHeadAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        B, T, D = x.shape
        S, H = memory.shape[1], self.heads

        def split(t, n):
            return t.view(B, n, H, D // H).transpose(1, 2)  # (B, H, n, D/H)

        out = attend(split(self.q(x), T), split(self.k(memory), S), split(self.v(memory), S), key_mask, causal, self.drop)
        return self.o(out.transpose(1, 2).reshape(B, T, D))


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int, dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.up, self.down, self.drop = nn.Linear(d, ffn), nn.Linear(ffn, d), nn.Dropout(dropout)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(self.act(self.up(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + SelfAttn(LN x)``, then ``x + FFN(LN x)``."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), MultiHeadAttention(d, heads, dropout)
        self.ln2, self.ffn = nn.LayerNorm(d), FeedForward(d, ffn, dropout, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, h, key_mask, causal=False))
        return x + self.drop(self.ffn(self.ln2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm: causal self-attention, attention to the source, feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(d), MultiHeadAttention(d, heads, dropout)
        self.ln2, self.cross_attn = nn.LayerNorm(d), MultiHeadAttention(d, heads, dropout)
        self.ln3, self.ffn = nn.LayerNorm(d), FeedForward(d, ffn, dropout, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(y)
        y = y + self.drop(self.self_attn(h, h, None, causal=True))
        y = y + self.drop(self.cross_attn(self.ln2(y), memory, src_mask, causal=False))
        return y + self.drop(self.ffn(self.ln3(y)))


class Transformer(nn.Module):
    """Pre-norm Transformer encoder-decoder with sinusoidal positions; the output projection is
    the target embedding (tied), and with one vocabulary the source embedding is shared too."""

    classifier = None  # the output is tied to the embedding: no linear head of its own

    def __init__(self, task: Seq2SeqTask, d_model: int, heads: int, ffn: int, enc_layers: int, dec_layers: int,
                 dropout: float, share_embeddings: bool, activation: str = "relu") -> None:
        super().__init__()
        if min(d_model, heads, ffn, enc_layers, dec_layers) < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError("transformer sizes must be positive and dropout in [0, 1)")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.pad_id, self.d = task.pad_id, d_model
        self.tgt_embed = nn.Embedding(task.tgt_vocab, d_model)
        shared = share_embeddings and task.src_vocab == task.tgt_vocab
        self.src_embed = None if shared else nn.Embedding(task.src_vocab, d_model)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, heads, ffn, dropout, activation) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, heads, ffn, dropout, activation) for _ in range(dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for emb in (self.tgt_embed, self.src_embed):
            if emb is not None:
                nn.init.normal_(emb.weight, std=self.d**-0.5)

    def _embed(self, table: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        x = table(tokens) * math.sqrt(self.d)  # (B, L, d)
        return self.drop(x + sinusoids(tokens.shape[1], self.d, x.dtype, x.device))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src (B, S)`` -> ``(memory (B, S, d), src_mask (B, S))``."""
        mask = src != self.pad_id
        x = self._embed(self.tgt_embed if self.src_embed is None else self.src_embed, src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_ln(x), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """``tgt_in (B, T)`` -> logits ``(B, T, V)``."""
        y = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            y = layer(y, memory, src_mask)
        return F.linear(self.dec_ln(y), self.tgt_embed.weight)

    def forward(self, inputs: dict) -> torch.Tensor:
        memory, mask = self.encode(inputs["src"])
        return self.decode(inputs["tgt_in"], memory, mask)


@STUDENTS.register("transformer", task="seq2seq")
def transformer(*, task: Task, d_model: int = 256, heads: int = 4, ffn: int = 512, enc_layers: int = 3,
                dec_layers: int = 3, dropout: float = 0.1, share_embeddings: bool = True, activation: str = "relu") -> nn.Module:
    """Transformer encoder-decoder (pre-norm), by default 3+3 layers, d 256, 4 heads, FFN 512.

    ``activation`` of the feed-forward layers: relu | gelu (smooth: no kinks in finite-difference checks)."""
    return Transformer(seq2seq_task(task, "transformer"), d_model, heads, ffn, enc_layers, dec_layers, dropout,
                       share_embeddings, activation)


@STUDENTS.register("transformer_iwslt", task="seq2seq")
def transformer_iwslt(*, task: Task) -> nn.Module:
    """fairseq's transformer_iwslt_de_en: 6+6 layers, d 512, FFN 1024, 4 heads, dropout 0.3 (GPU-sized)."""
    return transformer(task=task, d_model=512, heads=4, ffn=1024, enc_layers=6, dec_layers=6, dropout=0.3)


# --------------------------------------------------------------------------------------------
# LSTMs


class LSTMLayer(nn.Module):
    """One LSTM layer over time, by hand: ``(B, L, d_in)`` -> ``(B, L, d_h)`` and the state at each
    sequence's last real step (a masked step keeps the state)."""

    def __init__(self, d_in: int, d_h: int) -> None:
        super().__init__()
        self.ih, self.hh = nn.Linear(d_in, 4 * d_h), nn.Linear(d_h, 4 * d_h, bias=False)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None):
        h, c = state
        gates_x = self.ih(x)  # (B, L, 4 d_h), all steps at once
        outs = []
        for t in range(x.shape[1]):
            i, f, g, o = (gates_x[:, t] + self.hh(h)).chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if mask is not None:
                keep = mask[:, t, None]
                h_new, c_new = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            h, c = h_new, c_new
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c)


class LSTMSeq2Seq(nn.Module):
    """Stacked LSTM encoder and decoder; the decoder starts from the encoder's final states. With
    ``attention`` each decoder output attends to the encoder's outputs (Luong et al. 2015, dot
    product, ``tanh(W[h; context])`` before the output layer)."""

    def __init__(self, task: Seq2SeqTask, d_emb: int, d_hidden: int, layers: int, attention: bool, dropout: float) -> None:
        super().__init__()
        if min(d_emb, d_hidden, layers) < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError("lstm sizes must be positive and dropout in [0, 1)")
        self.pad_id, self.d_hidden, self.attention = task.pad_id, d_hidden, attention
        self.src_embed, self.tgt_embed = nn.Embedding(task.src_vocab, d_emb), nn.Embedding(task.tgt_vocab, d_emb)
        self.encoder = nn.ModuleList(LSTMLayer(d_emb if i == 0 else d_hidden, d_hidden) for i in range(layers))
        self.decoder = nn.ModuleList(LSTMLayer(d_emb if i == 0 else d_hidden, d_hidden) for i in range(layers))
        self.combine = nn.Linear(2 * d_hidden, d_hidden) if attention else None
        self.out = nn.Linear(d_hidden, task.tgt_vocab)
        self.drop = nn.Dropout(dropout)

    def encode(self, src: torch.Tensor):
        """``src (B, S)`` -> ``((outputs (B, S, d), final states per layer), src_mask)``."""
        mask = src != self.pad_id
        x = self.drop(self.src_embed(src))
        zeros = x.new_zeros(src.shape[0], self.d_hidden)
        states = []
        for layer in self.encoder:
            x, state = layer(x, (zeros, zeros), mask)
            states.append(state)
            x = self.drop(x)
        return (x, states), mask

    def decode(self, tgt_in: torch.Tensor, memory, src_mask: torch.Tensor, states=None):
        """``tgt_in (B, T)`` -> logits ``(B, T, V)`` (and, for step-wise search, the new states)."""
        enc_out, enc_states = memory
        states = enc_states if states is None else states
        y, new_states = self.drop(self.tgt_embed(tgt_in)), []
        for layer, state in zip(self.decoder, states):
            y, state = layer(y, state)
            new_states.append(state)
            y = self.drop(y)
        if self.combine is not None:
            context = attend(y, enc_out, enc_out, src_mask, causal=False)  # (B, T, d)
            y = self.drop(torch.tanh(self.combine(torch.cat([y, context], dim=-1))))
        return self.out(y), new_states

    def forward(self, inputs: dict) -> torch.Tensor:
        memory, mask = self.encode(inputs["src"])
        return self.decode(inputs["tgt_in"], memory, mask)[0]


@STUDENTS.register("lstm1", task="seq2seq")
def lstm1(*, task: Task, d_emb: int = 256, d_hidden: int = 256, dropout: float = 0.1) -> nn.Module:
    """One-layer LSTM encoder-decoder without attention."""
    return LSTMSeq2Seq(seq2seq_task(task, "lstm1"), d_emb, d_hidden, 1, False, dropout)


@STUDENTS.register("lstm2", task="seq2seq")
def lstm2(*, task: Task, d_emb: int = 256, d_hidden: int = 256, dropout: float = 0.1) -> nn.Module:
    """Two-layer LSTM encoder-decoder with dot-product attention (Luong et al. 2015)."""
    return LSTMSeq2Seq(seq2seq_task(task, "lstm2"), d_emb, d_hidden, 2, True, dropout)
