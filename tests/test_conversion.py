"""`hf-hundredpage convert-book`: the notebooks' .pth files -> Hugging Face folders with the same logits."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from hf_hundredpage.cli import main as cli
from tests.book_reference import (
    DecoderLanguageModel,
    RecurrentLanguageModel,
    save_rnn_checkpoint,
    save_transformer_checkpoint,
)


def save_word_tokenizer(folder):
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate("the cat sat on a mat".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]").save_pretrained(folder)


@pytest.fixture
def book_rnn(tmp_path):
    torch.manual_seed(0)
    model = RecurrentLanguageModel(vocab_size=9, emb_dim=16, num_layers=2, pad_idx=0).eval()
    path = tmp_path / "news_rnn_model.pth"
    save_rnn_checkpoint(model, path, vocab_size=9, emb_dim=16, num_layers=2, pad_index=0)
    save_word_tokenizer(tmp_path / "news_rnn_tokenizer")  # where the notebook saves it
    return model, path


@pytest.fixture
def book_transformer(tmp_path):
    torch.manual_seed(0)
    model = DecoderLanguageModel(vocab_size=9, emb_dim=16, num_heads=4, num_blocks=2, pad_idx=0).eval()
    (tmp_path / "models" / "Decoder_LM").mkdir(parents=True)
    path = tmp_path / "models" / "Decoder_LM" / "Decoder_LM.pth"
    save_transformer_checkpoint(model, path, vocab_size=9, emb_dim=16, num_heads=4, num_blocks=2, pad_idx=0)
    return model, path


@pytest.mark.parametrize("which", ["book_rnn", "book_transformer"])
def test_convert_book_checkpoint_end_to_end(tmp_path, which, request, capsys):
    book, path = request.getfixturevalue(which)
    out = tmp_path / "converted"
    tokenizer_args = [] if which == "book_rnn" else ["--tokenizer", str(tmp_path / "tok")]
    if which == "book_transformer":
        save_word_tokenizer(tmp_path / "tok")
    assert cli(["convert-book", str(path), str(out), *tokenizer_args]) == 0
    assert "converted" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 3, 4], [4, 4, 8, 7, 3, 5, 6, 6]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, book(ids), rtol=0, atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("the cat").input_ids == [3, 4]
    assert model.config.pad_token_id == 0 and model.config.eos_token_id == tokenizer.eos_token_id == 2
    assert model.generation_config.eos_token_id == 2


def test_refuses_non_empty_output_dir(tmp_path, book_rnn, capsys):
    _, path = book_rnn
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("user data")
    assert cli(["convert-book", str(path), str(out)]) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "user data"
    assert cli(["convert-book", str(path), str(out), "--overwrite_output_dir"]) == 0
    # an overwrite replaces what a conversion writes and keeps the user's file (it used to delete the whole folder)
    assert (out / "model.safetensors").exists() and (out / "precious.txt").read_text() == "user data"


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"this is not a checkpoint", "cannot read"),
        ("truncated", "cannot read"),
        ({"weights": {}}, "unrecognised checkpoint keys"),
        ("wrong-shape", "has shape"),
        ("missing-param", "missing from the checkpoint"),
        ("pickled-code", "could run arbitrary code: refused"),
    ],
)
def test_bad_checkpoints_give_one_clear_error_and_write_nothing(tmp_path, book_rnn, payload, message, capsys):
    book, good_path = book_rnn
    bad = tmp_path / "bad.pth"
    if isinstance(payload, bytes):
        bad.write_bytes(payload)
    elif payload == "truncated":
        bad.write_bytes(good_path.read_bytes()[:200])
    elif payload == "wrong-shape":
        save_rnn_checkpoint(book, bad, vocab_size=9, emb_dim=8, num_layers=2, pad_index=0)
    elif payload == "missing-param":
        state = book.state_dict()
        del state["rnn.rnn_units.1.Uh"]
        torch.save(dict(state_dict=state, vocab_size=9, emb_dim=16, num_layers=2, pad_index=0), bad)
    elif payload == "pickled-code":
        torch.save({"state_dict": book, "vocab_size": 9}, bad)  # a whole module: refused by weights_only
    else:
        torch.save(payload, bad)
    out = tmp_path / "never"
    assert cli(["convert-book", str(bad), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert not list(tmp_path.glob(".never.*"))  # no staging leftovers


def test_cli_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        cli(["--help"])
    text = capsys.readouterr().out
    for command in ("convert-book", "train-tokenizer", "evaluate", "generate", "merge-adapter", "publish"):
        assert command in text


class _Payload:
    """A pickle whose loading would run a shell command (the `__reduce__` trick of malicious checkpoints)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_the_payload_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pth"
    torch.save({"state_dict": _Payload(marker), "vocab_size": 9}, bad)
    out = tmp_path / "never"
    assert cli(["convert-book", str(bad), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "loading them could run arbitrary code: refused" in err
    assert not marker.exists() and not out.exists()
