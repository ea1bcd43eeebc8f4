"""`hf-hundredpage quantize` (book §6.3): post-training quantization through transformers' quantizers.

Every method on the book's transformer, the book's RNN and a stock Llama: the saved folder reloads with
`AutoModelForCausalLM.from_pretrained` alone and gives the greedy tokens the quantized model gave before saving;
quality stays within a measured tolerance of float32 on a briefly trained model; `--compare` gives one sane row per
method; bad input fails with one line and writes nothing. Tiny models and a 512-token BPE vocabulary keep it fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.cli import main as cli
from hf_hundredpage.compression.quantize import (
    FULL_PRECISION,
    METHODS,
    greedy_tokens,
    parameter_memory,
    resolve_skip_modules,
    unsupported_reason,
)
from hf_hundredpage.data import load_text_dataset
from hf_hundredpage.hub.cards import _format_count
from hf_hundredpage.tokenization import train_bpe_tokenizer


pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("bitsandbytes", reason="the bnb-* methods need bitsandbytes")

KINDS = ("transformer", "rnn", "llama")
EVAL_DOCUMENTS = 40  # validation documents scored by --compare in these tests
NEW_TOKENS = 16  # greedy tokens of the round-trip checks


def _skip_if_unsupported(method: str) -> None:
    reason = unsupported_reason(method)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def corpus():
    return load_text_dataset()


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_bpe_tokenizer(corpus["train"]["text"][:300], vocab_size=512)


def _model(kind: str, tokenizer):
    torch.manual_seed(0)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer))
    if kind == "transformer":
        return HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128, **special))
    if kind == "rnn":
        return HundredPageRNNForCausalLM(HundredPageRNNConfig(hidden_size=64, num_hidden_layers=2, **special))
    return LlamaForCausalLM(LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=128, **special))


def _train(model, tokenizer, texts: list[str], steps: int) -> None:
    """`steps` AdamW steps on random 64-token windows of `texts` (BOS before each document), as in pretraining."""
    ids = torch.tensor([i for text in texts for i in [tokenizer.bos_token_id, *tokenizer(text)["input_ids"]]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 65, (16,), generator=generator)
        batch = torch.stack([ids[s : s + 64] for s in starts])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizer, corpus) -> dict[str, Path]:
    """A saved folder (model + tokenizer) of each kind; the transformer trained for 200 steps (bits per byte
    4.40 -> 3.07 on the validation split), the others random (their round trip is what is tested)."""
    root = tmp_path_factory.mktemp("models")
    folders = {}
    for kind in KINDS:
        model = _model(kind, tokenizer)
        if kind == "transformer":
            _train(model, tokenizer, corpus["train"]["text"][:300], steps=200)
        folders[kind] = root / kind
        model.save_pretrained(folders[kind])
        tokenizer.save_pretrained(folders[kind])
    return folders


@pytest.fixture(scope="module")
def compare_report(model_dirs, tmp_path_factory):
    """One `--compare` run of every method on the trained transformer: (stdout, JSON report, PNG path)."""
    out = tmp_path_factory.mktemp("compare")
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli(["quantize", str(model_dirs["transformer"]), "--compare", "--max_new_tokens", "32",
                    "--eval_max_documents", str(EVAL_DOCUMENTS),
                    "--json", str(out / "compare.json"), "--plot", str(out / "compare.png")])
    assert code == 0
    return stdout.getvalue(), json.loads((out / "compare.json").read_text()), out / "compare.png"


# ------------------------------------------------------------------------------------------------ round trips


def _is_quantized(linear: torch.nn.Module) -> bool:
    """A block linear replaced by bitsandbytes (Linear8bitLt / Linear4bit) or holding a torchao tensor subclass."""
    return type(linear) is not torch.nn.Linear or type(linear.weight) is not torch.nn.Parameter


# Tests that need torchao are marked ``torchao``: README's test command runs them again once the [quantize] extra is in.
METHOD_PARAMS = [pytest.param(m, marks=pytest.mark.torchao) if METHODS[m].backend == "torchao" else m for m in METHODS]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHOD_PARAMS)
def test_saved_model_reloads_with_the_same_greedy_tokens(kind, method, model_dirs, tmp_path, capsys):
    _skip_if_unsupported(method)
    out, report = tmp_path / "quantized", tmp_path / "result.json"
    code = cli(["quantize", str(model_dirs[kind]), str(out), "--method", method, "--eval_max_documents", "4",
                "--max_new_tokens", str(NEW_TOKENS), "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(report.read_text())

    reloaded = AutoModelForCausalLM.from_pretrained(out)  # as a user loads it: no device map, no guard
    from transformers import AutoTokenizer

    tokens = greedy_tokens(reloaded, AutoTokenizer.from_pretrained(out), max_new_tokens=NEW_TOKENS)
    assert tokens == result["greedy_tokens"] and len(tokens) == NEW_TOKENS

    # lm_head (the default --skip_modules) stays a float nn.Linear; the block linears are quantized.
    assert type(reloaded.lm_head) is torch.nn.Linear and reloaded.lm_head.weight.dtype == torch.float32
    block_linears = [m for n, m in reloaded.named_modules() if ".layers." in n and isinstance(m, torch.nn.Linear)]
    quantized = [m for m in block_linears if _is_quantized(m)]
    assert len(quantized) == len(block_linears) > 0  # the RNN's hidden_proj too (its recurrence reads it via the module)

    saved = json.loads((out / "config.json").read_text())["quantization_config"]
    recorded = saved.get("llm_int8_skip_modules") or saved.get("modules_to_not_convert")
    assert recorded == ["lm_head"] == result["skip_modules"]
    if kind != "llama":  # the book's models ship their code for trust_remote_code loading
        assert "auto_map" in saved_config(out) and list(out.glob("modeling_*.py"))

    card = (out / "README.md").read_text()
    assert f"--method {method}" in card and "| Bytes on disk (model files) |" in card and "`lm_head`" in card
    assert f"same {NEW_TOKENS} greedy tokens" in card
    # The parameter count is the model's, not the number of stored values (4-bit weights are packed two per byte).
    original = AutoModelForCausalLM.from_pretrained(model_dirs[kind]).num_parameters()
    assert f"It has {_format_count(original)} parameters." in card


def saved_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


@pytest.mark.torchao
def test_loads_with_trust_remote_code_where_hf_hundredpage_is_absent(model_dirs, tmp_path):
    """The quantized folders of the book's models load in a process that never imports hf_hundredpage."""
    expected = {}
    pairs = [("transformer", "bnb-nf4"), ("rnn", "torchao-int8wo" if unsupported_reason("torchao-int8wo") is None
                                          else "bnb-int8")]
    for kind, method in pairs:
        out = tmp_path / f"{kind}-{method}"
        assert cli(["quantize", str(model_dirs[kind]), str(out), "--method", method, "--eval_max_documents", "2",
                    "--max_new_tokens", str(NEW_TOKENS), "--json", str(tmp_path / f"{kind}.json")]) == 0
        expected[str(out)] = json.loads((tmp_path / f"{kind}.json").read_text())["greedy_tokens"]
    script = f"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(1)
tokens = {{}}
for folder in {list(expected)!r}:
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    ids = tokenizer("The history of", return_tensors="pt")["input_ids"]
    ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), ids], dim=1)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens={NEW_TOKENS}, min_new_tokens={NEW_TOKENS}, pad_token_id=tokenizer.pad_token_id)
    tokens[folder] = [type(model).__module__, out[0, ids.shape[1]:].tolist()]
print(json.dumps({{"imported": "hf_hundredpage" in sys.modules, "tokens": tokens}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] is False
    for folder, (module, tokens) in result["tokens"].items():
        assert module.startswith("transformers_modules.")  # the folder's own modeling code
        assert tokens == expected[folder]


# ------------------------------------------------------------------------------------------------ --compare


# Measured on this fixture (200 training steps; 40 validation documents; fp32 3.0733 bits per byte, the untrained
# model 4.40), bits per byte minus fp32's: bf16 +0.00012, bnb-int8 -0.00003, torchao-int8wo -0.00002,
# torchao-int8dq -0.00005, bnb-nf4 +0.00071, bnb-fp4 +0.00172. The tolerances leave 5-8x headroom.
BPB_TOLERANCE = {16: 0.001, 8: 0.001, 4: 0.01}


@pytest.mark.torchao
def test_compare_has_one_sane_row_per_method(compare_report):
    stdout, report, plot = compare_report
    rows = {row["method"]: row for row in report["rows"]}
    assert list(rows) == [*FULL_PRECISION, *METHODS]
    assert report["documents"] == EVAL_DOCUMENTS
    fp32 = rows["fp32"]
    for name, row in rows.items():
        reason = unsupported_reason(name) if name in METHODS else None
        if reason is not None:
            assert row["error"] == reason and ("CUDA" in reason or "not installed" in reason)  # int4: no GPU here
            continue
        assert "error" not in row, row
        assert row["tokens_per_second"] > 0 and row["eval_tokens"] == fp32["eval_tokens"] > 1000
        for key in ("disk_bytes", "memory_bytes", "bits_per_byte", "perplexity", "tokens_per_second"):
            assert row[f"{key}_ratio"] == pytest.approx(row[key] / fp32[key])
        if name != "fp32":
            assert row["disk_bytes"] < fp32["disk_bytes"] and row["memory_bytes"] < fp32["memory_bytes"]
    assert rows["bf16"]["memory_bytes_ratio"] == pytest.approx(0.5, abs=0.01)
    for name in ("bnb-nf4", "bnb-fp4"):  # 4-bit blocks beat 8-bit rows, which beat bf16 only by what lm_head keeps
        assert rows[name]["memory_bytes"] < rows["bnb-int8"]["memory_bytes"] < fp32["memory_bytes"] * 0.6
    if "error" not in rows["torchao-int8wo"]:  # torchao's int8 weights at their stored size, not the logical float32
        assert rows["torchao-int8wo"]["memory_bytes"] < rows["torchao-int8wo"]["memory_footprint"]

    table = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| method | bits | disk MB |") and len(table) == 1 + len(rows)
    int4_failed = any(line.startswith("| torchao-int4wo |") and "–" in line for line in table)
    assert int4_failed == ("error" in rows["torchao-int4wo"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


@pytest.mark.torchao
def test_quantized_quality_is_within_the_measured_tolerance_of_fp32(compare_report):
    _, report, _ = compare_report
    rows = {row["method"]: row for row in report["rows"] if "error" not in row}
    fp32 = rows["fp32"]["bits_per_byte"]
    assert fp32 < 3.3  # trained: a random model of this size scores ~4.3
    for name, row in rows.items():
        if name != "fp32":
            assert abs(row["bits_per_byte"] - fp32) <= BPB_TOLERANCE[row["bits"]], (name, row["bits_per_byte"], fp32)
    assert rows["bnb-nf4"]["bits_per_byte"] != fp32  # the weights really changed


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{model}", "{out}", "--compare"], "--compare saves no model"),
        (["{tmp}/missing", "{out}", "--method", "bnb-nf4"], "does not exist"),
        (["{model}", "{out}", "--method", "torchao-int4wo"], "torchao-int4wo needs"),  # a GPU, or torchao
        (["{model}", "--method", "bnb-int8"], "OUT is missing"),
        (["{model}", "{out}"], "--method is missing"),
        (["{model}", "{out}", "--method", "bnb-int8", "--skip_modules", "nope"], "matches no nn.Linear"),
        (["{model}", "{out}", "--method", "bnb-int8", "--plot", "{tmp}/p.png"], "--plot is for --compare"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, message, model_dirs, tmp_path, capsys):
    if message == "torchao-int4wo needs" and unsupported_reason("torchao-int4wo") is None:
        pytest.skip("torchao-int4wo is supported here (CUDA)")
    out = tmp_path / "out"
    argv = [a.format(model=model_dirs["transformer"], out=out, tmp=tmp_path) for a in args]
    assert cli(["quantize", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("hf-hundredpage quantize: error:")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_unknown_method_is_an_argparse_error(model_dirs, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        cli(["quantize", str(model_dirs["transformer"]), str(tmp_path / "out"), "--method", "int3"])
    assert raised.value.code == 2
    assert "invalid choice: 'int3'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_a_non_empty_out_is_kept(model_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli(["quantize", str(model_dirs["transformer"]), str(out), "--method", "bnb-int8"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------------------------------------------ helpers


def test_skip_modules_resolve_to_full_linear_names():
    names = ["model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj", "model.layers.1.mlp.up_proj", "lm_head"]
    assert resolve_skip_modules(names, ["up_proj"]) == ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]
    assert resolve_skip_modules(names, ["model.layers.0", "lm_head"]) == names[:2] + ["lm_head"]
    assert resolve_skip_modules(names, []) == []
    with pytest.raises(ValueError, match="pass names among down_proj, lm_head, up_proj"):
        resolve_skip_modules(names, ["proj"])


def test_parameter_memory_counts_unquantized_models_like_transformers(tokenizer):
    model = _model("llama", tokenizer)
    assert parameter_memory(model) == model.get_memory_footprint()
