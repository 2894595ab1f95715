"""Parallel text for sequence-to-sequence students: corpora, cleaning, stable splits, subwords.

Sources (``load_parallel``):

* ``trans-de-en``: sentence pairs from Debian's German-English dictionary
  (``/usr/share/trans/de-en``, ``make data``): its lines are ``German :: English``, each side a
  ``|``-separated list of aligned entries whose alternatives are separated by ``;``. The pairs are
  the aligned entries that are sentences on both sides (:func:`dictionary_pairs`, documented
  there and tested), deduplicated, and split by a stable hash (:func:`stable_split`).
* a folder in the layout fairseq's IWSLT-14 preparation leaves: ``train.de``, ``train.en``,
  ``valid.*``, ``test.*``, one sentence per line (:func:`read_fairseq_folder`);
* a TSV file whose header names the languages (``de<TAB>en``), split by the same stable hash.

The direction is ``src`` → ``tgt`` (``--src de --tgt en``, either way round). Subwords: one
joint sentencepiece model (``vocab_size``) trained on the training split only, cached by the hash
of its input and settings; its file and SHA-256 travel with the data (``DataSplits.tokenizer``)
and are written to every run folder. Training pairs whose longer side, with its begin and end
tokens, exceeds ``max_len`` are skipped, dev and test pairs truncated; both counts are logged. A
fairseq folder whose text carries subword-nmt joins (``@@ ``, as prepare-iwslt14.sh leaves it)
has them removed first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from l2t.data.examples import SequencePairs
from l2t.data.splits import DataSplits
from l2t.errors import L2TError
from l2t.types import Seq2SeqTask

log = logging.getLogger(__name__)

DICTIONARY = Path("/usr/share/trans/de-en")
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SENTENCE_END = (".", "?", "!")
MIN_WORDS = 4

_MARKUP = [
    re.compile(r"\{[^{}]*\}"),  # {n}, {vt}: grammar
    re.compile(r"\[[^\[\]]*\]"),  # [ugs.], [Ös.], [Am.]: usage labels
    re.compile(r"<[^<>]*>"),  # <Ablösebetrag>: spelling variants
    re.compile(r"\([^()]*\)"),  # (optional words), (explanations)
]
_SLASH = re.compile(r"(\w[\w’'-]*)/[\w’'-]+")  # kontrolliert/beamtshandelt -> kontrolliert


def clean(text: str) -> str:
    """A dictionary entry as plain text: markup in braces, brackets, angle brackets and parentheses
    removed, slash alternatives reduced to their first, spaces normalised (a space before
    punctuation closed up)."""
    for pattern in _MARKUP:
        text = pattern.sub(" ", text)
    text = _SLASH.sub(r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s+([.,;:?!])", r"\1", text)


_BPE = re.compile(r"@@( |$)")  # subword-nmt's continuation marks
_LEFTOVER = re.compile(r"[/\[\]{}<>;]")  # markup or alternatives that cleaning could not resolve


def is_sentence(text: str) -> bool:
    """Ends in ``.``, ``?`` or ``!``; at least 4 words; no fragment (``…``); nothing left of the
    dictionary's markup (a multi-word alternative ``chop /are on the block``, say)."""
    return (text.endswith(SENTENCE_END) and len(text.split()) >= MIN_WORDS and not text.startswith(("…", "..."))
            and not _LEFTOVER.search(text))


def dictionary_pairs(path: str | Path = DICTIONARY) -> list[tuple[str, str]]:
    """The sentence pairs of a trans-format dictionary (``German :: English`` lines), in file order.

    Each line's two sides are split at `` | `` into aligned entries (a line whose sides have
    different counts is skipped); of an entry's ``;``-separated alternatives the first is kept;
    the text is :func:`clean`-ed; a pair is kept when both sides are sentences (:func:`is_sentence`).
    Exact duplicates go."""
    path = Path(path)
    if not path.is_file():
        raise L2TError(f"no dictionary at {path} (install Debian's trans-de-en: make data)")
    pairs, seen = [], set()
    with open(path, encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#") or " :: " not in line:
                continue
            de, _, en = line.rstrip("\n").partition(" :: ")
            de_parts, en_parts = de.split(" | "), en.split(" | ")
            if len(de_parts) != len(en_parts):
                continue
            for d, e in zip(de_parts, en_parts):
                d, e = clean(d.split("; ")[0]), clean(e.split("; ")[0])
                if is_sentence(d) and is_sentence(e) and (d, e) not in seen:
                    seen.add((d, e))
                    pairs.append((d, e))
    return pairs


def stable_split(pairs: list[tuple[str, str]], dev: float = 0.05, test: float = 0.05) -> dict[str, list[tuple[str, str]]]:
    """Train / dev / test by a hash that never changes between runs or machines, such that **no
    sentence of either side is in two splits**: pairs that share a source or a target sentence
    form one group (union-find), and a group goes to a split by the SHA-1 of the pair at its root
    (fixed for a given list of pairs)."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[int, str], int] = {}
    for i, (s, t) in enumerate(pairs):
        for key in ((0, s), (1, t)):
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    out: dict[str, list] = {"train": [], "dev": [], "test": []}
    root_key: dict[int, float] = {}
    for i, pair in enumerate(pairs):
        r = find(i)
        if r not in root_key:
            s, t = pairs[r]
            root_key[r] = int(hashlib.sha1(f"{s}\t{t}".encode()).hexdigest()[:12], 16) / 16**12
        u = root_key[r]
        out["test" if u < test else "dev" if u < test + dev else "train"].append(pair)
    return out


def _split_in_file_order(pairs: list[tuple[str, str]], flipped: bool) -> dict[str, list[tuple[str, str]]]:
    """:func:`stable_split` of ``pairs`` as the file orders its languages, then each pair turned
    round when ``flipped``: both directions of a corpus get the same split."""
    splits = stable_split(pairs)
    return {k: [(b, a) for a, b in v] for k, v in splits.items()} if flipped else splits


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise L2TError(f"{path}: not UTF-8 text (line {line})") from None
    except OSError as e:
        raise L2TError(f"cannot read {path}: {e.strerror}") from None


def read_fairseq_folder(folder: str | Path, src: str, tgt: str) -> dict[str, list[tuple[str, str]]]:
    """``train``, ``valid`` (the dev split) and ``test`` pairs of a folder of ``SPLIT.LANG`` files;
    line counts must agree; a pair with an empty side is skipped (and counted)."""
    folder = Path(folder)
    out = {}
    for split, stem in (("train", "train"), ("dev", "valid"), ("test", "test")):
        a, b = folder / f"{stem}.{src}", folder / f"{stem}.{tgt}"
        for f in (a, b):
            if not f.is_file():
                raise L2TError(f"{folder}: missing {f.name} (a folder of train/valid/test.{src} and .{tgt} files)")
        sa, sb = _read_lines(a), _read_lines(b)
        if len(sa) != len(sb):
            raise L2TError(f"{folder}: {a.name} has {len(sa)} lines but {b.name} {len(sb)}")
        if any("@@ " in line for line in sa[:1000] + sb[:1000]):  # fairseq's prepare-iwslt14.sh applies BPE
            log.info("%s: subword-nmt joins (@@ ) removed from %s", folder, split)
            sa, sb = ([_BPE.sub("", line) for line in lines] for lines in (sa, sb))
        pairs = [(s.strip(), t.strip()) for s, t in zip(sa, sb)]
        kept = [(s, t) for s, t in pairs if s and t]
        if len(kept) < len(pairs):
            log.info("%s: %d %s pairs with an empty side skipped", folder, len(pairs) - len(kept), split)
        out[split] = kept
    return out


def read_tsv(path: str | Path, src: str, tgt: str) -> list[tuple[str, str]]:
    """``(src, tgt)`` pairs of a TSV file whose header names its languages (``de<TAB>en``)."""
    return _tsv_pairs(path, src, tgt)[0]


def _tsv_pairs(path: str | Path, src: str, tgt: str) -> tuple[list[tuple[str, str]], bool]:
    """:func:`read_tsv`, and whether the file puts ``tgt``'s column before ``src``'s."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise L2TError(f"{path}: empty")
    header = [h.strip() for h in lines[0].split("\t")]
    for lang in (src, tgt):
        if lang not in header:
            raise L2TError(f"{path}: the header {header} names no column {lang!r} (--src/--tgt)")
    i, j = header.index(src), header.index(tgt)
    pairs, bad = [], 0
    for number, line in enumerate(lines[1:], 2):
        cols = line.split("\t")
        if len(cols) != len(header) or not cols[i].strip() or not cols[j].strip():
            bad += 1
            continue
        pairs.append((cols[i].strip(), cols[j].strip()))
    if bad:
        log.info("%s: %d lines with a missing or empty column skipped", path, bad)
    return pairs, j < i


@dataclass(frozen=True)
class Tokenizer:
    """A sentencepiece model file and its SHA-256 (checked when a run folder is reused)."""

    path: str
    sha256: str

    def model(self):
        spm = _require_sentencepiece()
        try:
            return spm.SentencePieceProcessor(model_file=self.path)
        except (RuntimeError, OSError) as e:
            raise L2TError(f"{self.path} is not a sentencepiece model: {str(e).splitlines()[0]}") from None

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.model().encode(texts)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.model().decode(ids)


def _require_sentencepiece():
    try:
        import sentencepiece as spm
    except ImportError:
        raise L2TError("sequence data needs sentencepiece: pip install 'l2t[nmt]'") from None
    return spm


def train_tokenizer(sentences: list[str], vocab_size: int, cache: Path) -> Tokenizer:
    """A joint unigram sentencepiece model of ``vocab_size`` pieces on ``sentences``, cached in
    ``cache`` by the hash of its input and settings (training is deterministic: one thread, input
    unshuffled)."""
    spm = _require_sentencepiece()
    key = hashlib.sha256(("\n".join(sentences) + f"\n#vocab={vocab_size},unigram,v1").encode()).hexdigest()[:16]
    prefix = cache / f"spm-{key}"
    model = prefix.with_suffix(".model")
    if not model.is_file():
        tmp = cache / f".spm-{key}-{os.getpid()}"
        text = tmp.with_suffix(".txt")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        except OSError as e:
            raise L2TError(f"cannot write the subword model's cache in {cache} ({e.strerror}); set $L2T_DATA_DIR "
                           "to a writable folder") from None
        try:
            spm.SentencePieceTrainer.train(
                input=str(text), model_prefix=str(tmp), vocab_size=vocab_size, model_type="unigram",
                character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, num_threads=1,
                shuffle_input_sentence=False, input_sentence_size=0, hard_vocab_limit=False,
                minloglevel=2)
        except RuntimeError as e:
            raise L2TError(f"sentencepiece could not train a {vocab_size}-piece model: {str(e).splitlines()[0]}") from None
        finally:
            text.unlink(missing_ok=True)
        os.replace(tmp.with_suffix(".model"), model)
        tmp.with_suffix(".vocab").unlink(missing_ok=True)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    return Tokenizer(str(model), sha)


def _encode(pairs: list[tuple[str, str]], sp, max_len: int, split: str) -> SequencePairs:
    """``pairs`` as padded token ids by the sentencepiece processor ``sp``."""
    src_ids, tgt_ids = sp.encode([s for s, _ in pairs]), sp.encode([t for _, t in pairs])
    rows, dropped, cut = [], 0, 0
    for s, t in zip(src_ids, tgt_ids):
        if max(len(s), len(t)) + 2 > max_len:
            if split == "train":
                dropped += 1
                continue
            cut += 1
            s, t = s[: max_len - 2], t[: max_len - 2]
        rows.append((s + [EOS], [BOS] + t + [EOS]))
    if dropped:
        log.info("%s: %d pairs longer than %d subwords skipped", split, dropped, max_len)
    if cut:
        log.info("%s: %d pairs truncated to %d subwords", split, cut, max_len)
    if not rows:
        raise L2TError(f"the {split} split has no pair of at most {max_len} subwords")
    S, T = max(len(s) for s, _ in rows), max(len(t) for _, t in rows)
    src = torch.full((len(rows), S), PAD, dtype=torch.long)
    tgt = torch.full((len(rows), T), PAD, dtype=torch.long)
    for i, (s, t) in enumerate(rows):
        src[i, : len(s)] = torch.tensor(s)
        tgt[i, : len(t)] = torch.tensor(t)
    return SequencePairs(src, tgt, PAD)


def load_parallel(source: str, *, src: str = "de", tgt: str = "en", vocab_size: int = 8000, max_len: int = 64,
                  train_size: int | None = None, dev_size: int | None = None, test_size: int | None = None,
                  cache: Path | None = None, **unknown) -> DataSplits:
    """``source``: ``trans-de-en``, a fairseq-layout folder or a ``.tsv`` file (see the module)."""
    if unknown:
        raise L2TError(f"unknown data.options {', '.join(sorted(unknown))} for parallel text; known: src, tgt, "
                       "vocab_size, max_len")
    _require_sentencepiece()
    try:
        import sacrebleu  # noqa: F401  (the test BLEU at the end of every run: say so before training)
    except ImportError:
        raise L2TError("translation needs sacrebleu for BLEU: pip install 'l2t[nmt]'") from None
    if vocab_size < 16 or max_len < 4:
        raise L2TError(f"parallel data: vocab_size must be at least 16 and max_len at least 4, got {vocab_size}, {max_len}")
    if source == "trans-de-en":
        if {src, tgt} != {"de", "en"}:
            raise L2TError(f"trans-de-en is German-English: --src and --tgt must be de and en, got {src}, {tgt}")
        splits = _split_in_file_order(dictionary_pairs(), flipped=src == "en")
    elif Path(source).is_dir():
        splits = read_fairseq_folder(source, src, tgt)
    elif source.endswith(".tsv"):
        pairs, flipped = _tsv_pairs(source, src, tgt)
        splits = _split_in_file_order([(t, s) for s, t in pairs] if flipped else pairs, flipped)
    else:
        raise L2TError(f"unknown parallel data {source!r}: trans-de-en, a folder of train/valid/test.LANG files, or a .tsv")
    for name, limit in (("train", train_size), ("dev", dev_size), ("test", test_size)):
        if limit is not None:
            if limit < 1:
                raise L2TError(f"{name}_size must be at least 1, got {limit}")
            splits[name] = splits[name][:limit]
        if not splits[name]:
            raise L2TError(f"{source}: the {name} split is empty")
    from l2t.data import data_root

    tok = train_tokenizer([s for pair in splits["train"] for s in pair], vocab_size, cache or data_root("spm"))
    sp = tok.model()
    vocab = sp.get_piece_size()
    encoded = {name: _encode(pairs, sp, max_len, name) for name, pairs in splits.items()}
    task = Seq2SeqTask(src_vocab=vocab, tgt_vocab=vocab, pad_id=PAD, bos_id=BOS, eos_id=EOS, max_len=max_len)
    name = source if source == "trans-de-en" else Path(source).stem
    return DataSplits(f"{name}-{src}-{tgt}", encoded["train"], encoded["dev"], encoded["test"], task, tokenizer=tok,
                      texts={k: v for k, v in splits.items()})
