"""Machine translation: parallel text readers, the dictionary corpus's filter and stable split,
subwords, search, BLEU, and a tiny end-to-end run (generated fixtures; no download)."""

import json
import math

import pytest
import torch

from l2t.cli import main
from l2t.data.parallel import clean, dictionary_pairs, is_sentence, load_parallel, read_fairseq_folder, read_tsv, stable_split
from l2t.errors import L2TError

from conftest import TINY

DE = ["Das Haus ist sehr groß.", "Ich habe heute keine Zeit.", "Wo ist der nächste Bahnhof?", "Er liest gern alte Bücher.",
      "Wir gehen morgen ins Kino.", "Die Katze schläft auf dem Sofa.", "Kannst du mir bitte helfen?", "Es regnet schon seit Tagen."]
EN = ["The house is very big.", "I have no time today.", "Where is the nearest station?", "He likes reading old books.",
      "We are going to the cinema tomorrow.", "The cat is sleeping on the sofa.", "Can you help me, please?",
      "It has been raining for days."]


@pytest.fixture(autouse=True)
def _spm_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("L2T_DATA_DIR", str(tmp_path / "data"))  # subword models cached here, not in ~


def fairseq_folder(folder, n_train=40):
    folder.mkdir()
    for split, n in (("train", n_train), ("valid", 8), ("test", 8)):
        rows = [(DE[i % 8], EN[i % 8]) for i in range(n)]
        (folder / f"{split}.de").write_text("\n".join(d for d, _ in rows) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(e for _, e in rows) + "\n", encoding="utf-8")
    return folder


def test_the_dictionary_filter_keeps_clean_sentence_pairs(tmp_path):
    dictionary = tmp_path / "de-en"
    dictionary.write_text("\n".join([
        "# Version :: test",
        "Haus {n} | Das Haus ist sehr groß. | Das ist unser Haus [ugs.]. :: house | The house is very big. | This is our house.",
        "Zeit {f} | Ich habe (heute) keine Zeit. :: time | I have no time (today).",
        "fragen | Wo ist der nächste Bahnhof? :: to ask | Where is the nearest station?; Where’s the next station?",
        "a | b | Er liest gern alte Bücher. :: only two | He likes reading old books.",  # misaligned: skipped
        "x | … und dann ging er nach Hause. :: x | … and then he went home.",  # a fragment
        "y | Er hat es kontrolliert/beamtshandelt heute. :: y | He checked/inspected it today.",
        "z | Das ist nicht gut genug. :: z | It’s not / It isn’t good enough.",  # an alternative left: dropped
        "Haus {n} | Das Haus ist sehr groß. :: house | The house is very big.",  # a duplicate
        "zu kurz. :: too short.",
    ]) + "\n", encoding="utf-8")
    pairs = dictionary_pairs(dictionary)
    assert pairs == [
        ("Das Haus ist sehr groß.", "The house is very big."),
        ("Das ist unser Haus.", "This is our house."),
        ("Ich habe keine Zeit.", "I have no time."),
        ("Wo ist der nächste Bahnhof?", "Where is the nearest station?"),
        ("Er hat es kontrolliert heute.", "He checked it today."),
    ]
    assert clean("Aal {m} [cook.] <Aale> (auf der Karte) blau/grün .") == "Aal blau."
    assert not is_sentence("Kurz.") and not is_sentence("Kein Satzende hier") and is_sentence("Das ist ein Satz!")


def test_the_split_is_stable_and_no_sentence_crosses_splits():
    pairs = [(f"Satz Nummer {i} ist hier.", f"Sentence number {i} is here.") for i in range(400)]
    pairs += [("Satz Nummer 7 ist hier.", "A second version of seven."), ("Noch ein anderer Satz hier.", "Sentence number 9 is here.")]
    a, b = stable_split(pairs), stable_split(list(pairs))
    assert a == b and sum(map(len, a.values())) == len(pairs)
    assert 300 < len(a["train"]) < 400 and a["dev"] and a["test"]
    for side in (0, 1):
        sets = {k: {p[side] for p in v} for k, v in a.items()}
        assert not (sets["train"] & sets["dev"]) and not (sets["train"] & sets["test"]) and not (sets["dev"] & sets["test"])
    where = {p: k for k, v in a.items() for p in v}
    assert where[pairs[7]] == where[pairs[400]] and where[pairs[9]] == where[pairs[401]]  # groups stay together


def test_readers_of_parallel_text_and_their_errors(tmp_path):
    folder = fairseq_folder(tmp_path / "iwslt")
    splits = read_fairseq_folder(folder, "de", "en")
    assert splits["train"][0] == (DE[0], EN[0]) and len(splits["dev"]) == 8
    assert read_fairseq_folder(folder, "en", "de")["test"][1] == (EN[1], DE[1])  # either direction
    (folder / "valid.en").write_text("\n".join(EN[:7]) + "\n", encoding="utf-8")
    with pytest.raises(L2TError, match="valid.de has 8 lines but valid.en 7"):
        read_fairseq_folder(folder, "de", "en")
    (folder / "valid.en").write_bytes(b"ok\n" * 3 + b"\xff\xfe broken\n" + b"ok\n" * 4)
    with pytest.raises(L2TError, match=r"valid.en: not UTF-8 text \(line 4\)"):
        read_fairseq_folder(folder, "de", "en")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("en\tde\n" + "\n".join(f"{e}\t{d}" for d, e in zip(DE, EN)) + "\nbroken line\n", encoding="utf-8")
    assert read_tsv(tsv, "de", "en")[2] == (DE[2], EN[2])
    with pytest.raises(L2TError, match="names no column 'fr'"):
        read_tsv(tsv, "fr", "en")
    with pytest.raises(L2TError, match="cannot read .*missing.tsv"):
        read_tsv(tmp_path / "missing.tsv", "de", "en")
    # fairseq's prepared IWSLT carries subword-nmt joins: removed before sentencepiece sees the text
    bpe = fairseq_folder(tmp_path / "bpe")
    (bpe / "train.en").write_text("\n".join(e.replace("house", "hou@@ se") for e in [EN[i % 8] for i in range(40)]) + "\n")
    assert read_fairseq_folder(bpe, "de", "en")["train"][0] == (DE[0], EN[0])


def test_both_directions_of_a_corpus_share_one_split(tmp_path):
    pairs = [(f"Satz Nummer {i} ist hier.", f"Sentence number {i} is here.") for i in range(400)]
    (tmp_path / "de-en.tsv").write_text("de\ten\n" + "\n".join(f"{d}\t{e}" for d, e in pairs) + "\n", encoding="utf-8")
    (tmp_path / "en-de.tsv").write_text("en\tde\n" + "\n".join(f"{e}\t{d}" for d, e in pairs) + "\n", encoding="utf-8")
    for f in ("de-en.tsv", "en-de.tsv"):  # de->en and en->de of one file: the same pairs in each split
        forward = load_parallel(str(tmp_path / f), src="de", tgt="en", vocab_size=40).texts
        backward = load_parallel(str(tmp_path / f), src="en", tgt="de", vocab_size=40).texts
        assert 0 < len(forward["test"]) < 400
        for split in ("train", "dev", "test"):
            assert backward[split] == [(e, d) for d, e in forward[split]], (f, split)
    with pytest.raises(L2TError, match="unknown data.options vocab-size"):
        load_parallel(str(tmp_path / "de-en.tsv"), **{"vocab-size": 40})


def test_subwords_round_trip_and_batches_are_masked(tmp_path):
    data = load_parallel(str(fairseq_folder(tmp_path / "iwslt")), vocab_size=60, max_len=40)
    assert data.task.src_vocab == data.task.tgt_vocab and data.tokenizer.sha256
    tok = data.tokenizer
    assert tok.decode(tok.encode(DE[:3])) == DE[:3]
    batch = data.dev.chunks(4)[0]
    assert batch.inputs["tgt_in"][:, 0].eq(data.task.bos_id).all() and batch.mask.any()
    again = load_parallel(str(tmp_path / "iwslt"), vocab_size=60, max_len=40)  # cached and deterministic
    assert again.tokenizer == tok and torch.equal(again.train.tgt, data.train.tgt)
    short = load_parallel(str(tmp_path / "iwslt"), vocab_size=60, max_len=25)  # long training pairs skipped
    assert len(short.train) < len(data.train) and len(short.test) == len(data.test)  # test pairs truncated, kept


def test_bleu_is_sacrebleus():
    import sacrebleu

    from l2t.decode import corpus_bleu

    hyps, refs = ["the cat sat on the mat .", "a dog barked"], ["the cat sat on a mat .", "the dog barked loudly"]
    score, signature = corpus_bleu(hyps, refs)
    assert score == sacrebleu.corpus_bleu(hyps, [refs]).score and "tok:13a" in signature
    assert corpus_bleu(refs, refs)[0] == pytest.approx(100.0)


def _greedy_by_hand(student, params, buffers, src, steps):
    """Full-prefix argmax through the module's forward: an independent greedy search."""
    module = __import__("l2t.decode", fromlist=["_module"])._module(student, params, buffers)
    out = []
    for row in src:
        prefix = [student.task.bos_id]
        for _ in range(steps):
            logits = module({"src": row[None], "tgt_in": torch.tensor([prefix])})[0, -1]
            logits[[student.task.pad_id, student.task.bos_id]] = float("-inf")
            token = int(logits.argmax())
            if token == student.task.eos_id:
                break
            prefix.append(token)
        out.append(prefix[1:])
    return out


@pytest.mark.parametrize("name,options", [("transformer", {"d_model": 16, "heads": 2, "ffn": 32, "enc_layers": 1, "dec_layers": 1}),
                                          ("lstm2", {"d_emb": 8, "d_hidden": 12}), ("lstm1", {"d_emb": 8, "d_hidden": 12})])
def test_beam_search_with_one_beam_is_greedy(name, options):
    from l2t.decode import beam_search
    from l2t.students import create_student
    from l2t.types import Seq2SeqTask

    student = create_student(name, Seq2SeqTask(30, 30, 0, 1, 2, 12), **options)
    params, buffers = student.init(4)
    src = torch.randint(3, 30, (5, 7))
    src[2, 5:] = 0
    src[torch.arange(5), torch.tensor([6, 6, 4, 6, 6])] = 2
    assert beam_search(student, params, buffers, src, beam=1, max_len=12) == _greedy_by_hand(student, params, buffers, src, 12)
    wide = beam_search(student, params, buffers, src, beam=4, max_len=12)
    assert len(wide) == 5 and all(isinstance(t, int) for hyp in wide for t in hyp)


class _Scripted(torch.nn.Module):
    """A fake translation model. Sentence i (its source's first token ``n``) prefers tokens 4, 5,
    ... and the end token after ``n - 2`` of them; a source starting with 3 prefers to end at once,
    but a longer answer (token 4, then an end of probability ~1) has the better length-normalised
    score: a search that kept extending a finished sentence would find it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode(self, src):
        return src[:, :1].float(), src != 0

    def decode(self, tgt_in, memory, src_mask):
        B, L = tgt_in.shape
        logits = torch.full((B, L, 12), -5.0)
        n = memory[:, 0].long()
        for r in range(L):
            logits[:, r, 4 + r % 6] = 0.0
            logits[:, r, 10] = -1.0  # a runner-up that never ends
            logits[:, r, 2] = torch.where(r + 1 >= n - 2, 1.0, -3.0)
        early = n == 3
        logits[early, 0, 2], logits[early, 0, 4] = 0.0, -0.1
        logits[early, 1:, 2] = 5.0
        return logits


def test_beam_search_answers_do_not_depend_on_the_batch():
    from types import SimpleNamespace

    from l2t.decode import beam_search
    from l2t.types import Seq2SeqTask

    module = _Scripted()
    student = SimpleNamespace(task=Seq2SeqTask(12, 12, 0, 1, 2, 16), module=module, name="scripted")
    params = {"w": module.w.detach()}
    src = torch.tensor([[3, 2], [6, 2], [9, 2]])
    for beam in (1, 3):
        alone = [beam_search(student, params, {}, src[i : i + 1], beam=beam, max_len=12)[0] for i in range(3)]
        assert beam_search(student, params, {}, src, beam=beam, max_len=12) == alone
        if beam == 1:  # greedy: the first end token ends the sentence
            assert alone == [[], [4, 5, 6], [4, 5, 6, 7, 8, 9]]


def test_factored_phi_is_the_dense_one_and_expected_ngrams_by_hand():
    from l2t.losses import create_loss
    from l2t.objectives import expected_ngrams
    from l2t.teachers import ScheduleTeacher

    dense = ScheduleTeacher(12, 8, knots=2, init_gain=[1.4, 0.6], init_smoothing=[0.3, 0.1]).double()
    factored = ScheduleTeacher(12, 8, knots=2, init_gain=[1.4, 0.6], init_smoothing=[0.3, 0.1], factored=True).double()
    assert ScheduleTeacher(8000, 8).factored and not dense.factored  # a vocabulary is factored by default
    assert not ScheduleTeacher(100, 8).factored  # a label set (CIFAR-100) is not: its Φ is drawn as Fig. 4
    s = torch.rand(8, dtype=torch.float64)
    z, y = torch.randn(3, 4, 12, dtype=torch.float64), torch.randint(0, 12, (3, 4))
    loss = create_loss("bilinear", **dense.loss_kwargs())
    torch.testing.assert_close(loss(z, y, dense(s)[0]), loss(z, y, factored(s)[0]))
    p = torch.tensor([[0.5, 0.4, 0.2]])  # the targets' probabilities under teacher forcing
    logits = torch.log(torch.stack([p, 1 - p], -1))
    value = expected_ngrams(logits, torch.zeros(1, 3, dtype=torch.long), torch.tensor([[True, True, True]]), n=2)
    torch.testing.assert_close(value, torch.tensor([[(0.5 + 0.2) / 2, (0.4 + 0.08) / 2, 0.2 / 2]]))


def test_a_tiny_translation_run_end_to_end(tmp_path, capsys, monkeypatch):
    folder = fairseq_folder(tmp_path / "iwslt", n_train=64)
    monkeypatch.chdir(tmp_path)
    common = ["--config", str(TINY), "--data", str(folder), "--student", "transformer", "--src", "de", "--tgt", "en",
              "--set", 'student.options={"d_model": 32, "heads": 2, "ffn": 64, "enc_layers": 1, "dec_layers": 1}',
              "--set", 'data.options={"vocab_size": 60, "max_len": 40}', "--set", "data.train_size=null",
              "--batch-size", "16", "--steps", "40", "--lr", "0.3", "--set", "beam=2", "--no-progress"]
    assert main(["train", "--loss", "ce", "--out", str(tmp_path / "ce"), *common]) == 0
    out = capsys.readouterr().out
    assert "test BLEU" in out
    summary = json.loads((tmp_path / "ce" / "summary.json").read_text())
    assert 0 <= summary["test_bleu"] <= 100 and "tok:13a" in summary["bleu_signature"] and summary["beam"] == 2
    assert (tmp_path / "ce" / "spm.model").is_file()
    assert main(["translate", str(tmp_path / "ce"), DE[0], DE[1], "--beam", "1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{DE[0]}\n\n{DE[2]}\n"))
    assert main(["translate", str(tmp_path / "ce"), "--beam", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # a blank line stays blank: lines match
    # --src/--tgt survive a --set of data.options (here: the other direction, read from the same folder)
    assert main(["config", "--show", *common, "--src", "en", "--tgt", "de"]) == 0
    assert '"src": "en", "tgt": "de"}' in capsys.readouterr().out
    # a teacher (the schedule teacher, factored over the vocabulary) and its student
    assert main(["teach", "--out", str(tmp_path / "t"), "--teacher", "schedule", "--set", "outer.steps=2",
                 "--set", 'teacher.options={"factored": true}',
                 "--set", "outer.optimizer=adam", "--set", "outer.lr=0.05", *common]) == 0
    assert main(["train", "--loss", f"teacher:{tmp_path / 't'}", "--out", str(tmp_path / "s"), *common]) == 0
    assert "test BLEU" in capsys.readouterr().out
    # resuming the teacher's run on data whose subword model differs is refused
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    cfg["data"]["options"]["vocab_size"] = 50
    (tmp_path / "t" / "config.json").write_text(json.dumps(cfg))
    assert main(["teach", "--resume", str(tmp_path / "t"), "--no-progress"]) == 2
    assert "is not the subword model of this data" in capsys.readouterr().err
    # so is a teacher's student on data of another subword model
    other = [c if c != 'data.options={"vocab_size": 60, "max_len": 40}' else 'data.options={"vocab_size": 50, "max_len": 40}'
             for c in common]
    assert main(["train", "--loss", f"teacher:{tmp_path / 't'}", "--out", str(tmp_path / "s2"), *other]) == 2
    assert "is not the subword model of this data" in capsys.readouterr().err and not (tmp_path / "s2").exists()
    # a damaged subword model in a run folder is one error line
    (tmp_path / "ce" / "spm.model").write_bytes(b"not a model")
    assert main(["translate", str(tmp_path / "ce"), DE[0]]) == 2
    assert "is not a sentencepiece model" in capsys.readouterr().err
    assert math.isfinite(summary["dev_ce"])


def test_a_tiny_translation_experiment_reports_bleu(tmp_path, capsys, monkeypatch):
    folder = fairseq_folder(tmp_path / "iwslt", n_train=64)
    monkeypatch.chdir(tmp_path)
    common = ["--config", str(TINY), "--data", str(folder), "--student", "lstm1", "--src", "de", "--tgt", "en",
              "--set", 'student.options={"d_emb": 16, "d_hidden": 16}', "--set", 'data.options={"vocab_size": 60, "max_len": 40}',
              "--set", "data.train_size=null", "--batch-size", "16", "--steps", "20", "--set", "beam=1", "--no-progress"]
    assert main(["experiment", "--out", str(tmp_path / "x"), "--set", 'losses=["ce", "label_smoothing", "l2t-dlf"]',
                 "--set", "lr_grid=[0.3, 0.1]", "--set", "tune_seeds=1", "--set", "eval_seeds=2", "--teacher", "schedule",
                 "--set", "outer.steps=1", "--set", "outer.optimizer=adam", "--set", "outer.lr=0.05", *common]) == 0
    results = (tmp_path / "x" / "results.md").read_text()
    assert "Test BLEU (beam 1; sacrebleu nrefs:1" in results and "| test BLEU, mean ± std over 2 seeds |" in results
    assert "L2T-DLF (schedule teacher)" in results and "dev token error (%)" in results
    bleu = [json.loads((tmp_path / "x" / "ce" / f"seed{s}" / "summary.json").read_text())["test_bleu"] for s in (0, 1)]
    assert all(0 <= b <= 100 for b in bleu)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "x"), "--out", str(tmp_path / "r")]) == 0
    table = (tmp_path / "r" / "report.md").read_text()
    assert "Test BLEU (sacrebleu" in table and f"| {sum(bleu) / 2:.2f} ± " in table  # cross entropy's mean
    # a BLEU run and an image run never share a table
    assert main(["train", "--config", str(TINY), "--loss", "ce", "--out", str(tmp_path / "img"), "--steps", "5", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "x"), str(tmp_path / "img"), "--out", str(tmp_path / "r2")]) == 2
    assert "cannot share a table" in capsys.readouterr().err


@pytest.fixture
def multi30k_server(tmp_path, monkeypatch):
    """Multi30k's six files, generated, served from localhost under their remote names; SOURCES
    points there with the generated files' sums (tests never reach the real network)."""
    import functools
    import gzip
    import http.server
    import importlib
    import threading

    dl = importlib.import_module("l2t.data.download")  # the module (l2t.data.download is also its function)

    served = tmp_path / "served"
    served.mkdir()
    for remote, n in (("train", 48), ("val", 8), ("test_2016_flickr", 8)):
        for lang, text in (("de", DE), ("en", EN)):
            (served / f"{remote}.{lang}.gz").write_bytes(gzip.compress(("\n".join(text[i % 8] for i in range(n)) + "\n").encode()))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    real = dl.SOURCES["multi30k"]
    assert real[0].url == ("https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/"
                           "data/task1/raw/train.de.gz")  # pinned to the commit its sums were computed from
    monkeypatch.setitem(dl.SOURCES, "multi30k", [
        s._replace(url=base + s.url.rsplit("/", 1)[1], md5=dl.md5sum(served / s.url.rsplit("/", 1)[1])) for s in real])
    yield served
    server.shutdown()
    server.server_close()


def test_multi30k_downloads_from_localhost_into_the_fairseq_layout(tmp_path, multi30k_server):
    import importlib

    from l2t.data import load_data

    dl = importlib.import_module("l2t.data.download")

    root = tmp_path / "data" / "multi30k"
    with pytest.raises(L2TError, match="data set 'multi30k' not found.*--download"):
        load_data("multi30k")
    data = load_data("multi30k", download=True, options={"vocab_size": 60, "max_len": 40})
    assert data.name == "multi30k-de-en"
    assert (len(data.texts["train"]), len(data.texts["dev"]), len(data.texts["test"])) == (48, 8, 8)
    assert data.texts["dev"][2] == (DE[2], EN[2])
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".gz")) == [
        "test.de", "test.en", "train.de", "train.en", "valid.de", "valid.en"]
    assert not list(root.glob(".*part"))
    assert load_data("multi30k", options={"src": "en", "tgt": "de", "vocab_size": 60}).texts["test"][0] == (EN[0], DE[0])
    # a file that does not match its sum is refused and leaves nothing behind
    (root / "valid.en.gz").unlink()
    (multi30k_server / "val.en.gz").write_bytes(b"not the published file")
    with pytest.raises(L2TError, match="checksum mismatch"):
        dl.download("multi30k", root)
    assert not (root / "valid.en.gz").exists() and not list(root.glob(".*part"))
    # an unreachable server is one error line too
    monkeypatch_sources = [s._replace(url="http://127.0.0.1:9/none.gz") for s in dl.SOURCES["multi30k"]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(dl.SOURCES, "multi30k", monkeypatch_sources)
        with pytest.raises(L2TError, match="download of http://127.0.0.1:9/none.gz failed"):
            dl.download("multi30k", tmp_path / "elsewhere")
