"""`hf-hundredpage prune` (book §6.3): magnitude sparsity measured on the reloaded weights, structured pruning that
gives exactly the model its saved config describes, identities at keep 1 / remove 0, the least influential block
removed, GQA groups kept consistent, and bad input refused before any output folder exists."""

import gzip
import json
from itertools import islice

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from hf_hundredpage.cli import main
from hf_hundredpage.compression import prune_model
from hf_hundredpage.data import embedded_corpus_files
from hf_hundredpage.models import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.outputs import staging_dir
from hf_hundredpage.tokenization import train_bpe_tokenizer


pytestmark = pytest.mark.usefixtures("one_thread")


def _lines(split: str, n: int) -> list[str]:
    with gzip.open(embedded_corpus_files()[split], "rt", encoding="utf-8") as f:
        return [line.strip() for line in islice(f, n) if line.strip()]


@pytest.fixture(scope="module")
def texts():
    return {"train": _lines("train", 150), "validation": _lines("validation", 4)}


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_bpe_tokenizer(texts["train"], vocab_size=300)


def _special(tokenizer) -> dict:
    return {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def transformer(tokenizer, **overrides):
    torch.manual_seed(0)
    config = dict(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                  max_position_embeddings=128, **_special(tokenizer))
    return HundredPageTransformerForCausalLM(HundredPageTransformerConfig(**{**config, **overrides})).eval()


def llama(tokenizer, num_key_value_heads=2):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=3, num_attention_heads=4,
                                        num_key_value_heads=num_key_value_heads, max_position_embeddings=128,
                                        **_special(tokenizer))).eval()


def rnn(tokenizer):
    torch.manual_seed(0)
    return HundredPageRNNForCausalLM(HundredPageRNNConfig(vocab_size=len(tokenizer), hidden_size=32,
                                                          num_hidden_layers=3, **_special(tokenizer))).eval()


def save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run(model_dir, out, method, texts, **kwargs):
    return prune_model(model_dir, out, method, calibration_texts=texts["train"], eval_texts=texts["validation"],
                       calibration_tokens=512, calibration_seq_len=64, generate_tokens=4, print_fn=lambda _: None,
                       **kwargs)


def reload(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def logits(model, tokenizer, texts):
    ids = torch.tensor([tokenizer(texts["validation"][0])["input_ids"][:40]])
    with torch.no_grad():
        return model(ids).logits


def block_linears(model) -> dict[str, torch.Tensor]:
    return {name: m.weight for name, m in model.model.layers.named_modules() if isinstance(m, torch.nn.Linear)}


def check_structured(folder, tokenizer, texts) -> torch.nn.Module:
    """The saved model has exactly the tensors its config describes, loads with the Auto classes and generates
    the same tokens with and without the KV cache."""
    model = reload(folder)
    fresh = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert model.num_parameters() == fresh.num_parameters()
    prompt = torch.tensor([tokenizer(texts["validation"][0])["input_ids"][:6]])
    kwargs = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    cached = model.generate(prompt, use_cache=True, **kwargs)
    assert cached.shape[1] == prompt.shape[1] + 8
    torch.testing.assert_close(cached, model.generate(prompt, use_cache=False, **kwargs))
    return model


# ------------------------------------------------------------------------------------------------- magnitude


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_reaches_the_sparsity_on_the_reloaded_weights(tmp_path, tokenizer, texts, scope):
    model = transformer(tokenizer)
    embedding_nonzero = int(torch.count_nonzero(model.model.embed_tokens.weight))
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "magnitude", texts, sparsity=0.6,
                 scope=scope)
    pruned = reload(tmp_path / "out")
    weights = block_linears(pruned)
    assert len(weights) == 3 * 6  # q, k, v, o, up, down in each of 3 blocks
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    if scope == "layer":  # every weight matrix on its own
        for w in weights.values():
            assert int((w == 0).sum()) == round(0.6 * w.numel())
    else:  # ranked together: 60% overall, and the matrices end up with different sparsities
        assert zeros == round(0.6 * total)
        assert len({round(float((w == 0).float().mean()), 2) for w in weights.values()}) > 1
    assert report["sparsity"]["pruned_weights"] == pytest.approx(zeros / total)
    assert int(torch.count_nonzero(pruned.model.embed_tokens.weight)) == embedding_nonzero  # embeddings untouched
    assert report["after"]["parameters"] == report["before"]["parameters"]
    assert report["after"]["nonzero_parameters"] == report["before"]["nonzero_parameters"] - zeros
    saved = json.loads((tmp_path / "out" / "prune_report.json").read_text())
    assert saved["sparsity"] == report["sparsity"] and saved["after"]["bits_per_byte"] > 0
    assert (tmp_path / "out" / "README.md").is_file()


def test_magnitude_2_4_pattern_keeps_two_of_every_four(tmp_path, tokenizer, texts):
    report = run(save(llama(tokenizer), tokenizer, tmp_path / "m"), tmp_path / "out", "magnitude", texts,
                 pattern="2:4")
    for name, w in block_linears(reload(tmp_path / "out")).items():
        nonzero = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        assert bool((nonzero == 2).all()), name
    assert report["sparsity"]["pruned_weights"] == 0.5


def test_magnitude_on_the_rnn_with_a_sparsity_curve(tmp_path, tokenizer, texts):
    report = run(save(rnn(tokenizer), tokenizer, tmp_path / "m"), tmp_path / "out", "magnitude", texts,
                 sparsity=0.5, scope="layer", curve=[0.9, 0.2])
    assert [p["sparsity"] for p in report["curve"]] == [0.0, 0.2, 0.5, 0.9]
    assert report["curve"][2]["bits_per_byte"] == report["after"]["bits_per_byte"]
    assert report["curve"][0]["bits_per_byte"] == report["before"]["bits_per_byte"]
    assert (tmp_path / "out" / "sparsity_curve.png").stat().st_size > 1000
    for w in block_linears(reload(tmp_path / "out")).values():  # input_proj and hidden_proj of each unit
        assert int((w == 0).sum()) == round(0.5 * w.numel())


# ------------------------------------------------------------------------------------------------- layers


def test_remove_zero_layers_is_the_identity(tmp_path, tokenizer, texts):
    model = transformer(tokenizer)
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "layers", texts, remove=0)
    assert report["removed_layers"] == [] and len(report["block_influence"]) == 3
    torch.testing.assert_close(logits(reload(tmp_path / "out"), tokenizer, texts), logits(model, tokenizer, texts))


def test_remove_one_layer_drops_the_near_identity_block(tmp_path, tokenizer, texts):
    model = transformer(tokenizer)
    with torch.no_grad():  # block 1 adds nothing to the residual stream: its output equals its input
        block = model.model.layers[1]
        for linear in (block.self_attn.o_proj, block.mlp.down_proj):
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "layers", texts, remove=1)
    assert report["removed_layers"] == [1]
    assert report["block_influence"][1] == pytest.approx(0.0, abs=1e-6)
    assert min(report["block_influence"][0], report["block_influence"][2]) > 1e-3
    pruned = check_structured(tmp_path / "out", tokenizer, texts)
    assert pruned.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1]
    torch.testing.assert_close(pruned.model.layers[1].mlp.up_proj.weight, model.model.layers[2].mlp.up_proj.weight)
    torch.testing.assert_close(logits(pruned, tokenizer, texts), logits(model, tokenizer, texts))
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert report["after"]["safetensors_bytes"] < report["before"]["safetensors_bytes"]


@pytest.mark.parametrize("family", ["llama", "rnn"])
def test_remove_layers_of_llama_and_the_rnn(tmp_path, tokenizer, texts, family):
    model = {"llama": llama, "rnn": rnn}[family](tokenizer)
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "layers", texts, remove=2)
    pruned = check_structured(tmp_path / "out", tokenizer, texts)
    assert pruned.config.num_hidden_layers == len(pruned.model.layers) == 1
    kept = ({0, 1, 2} - set(report["removed_layers"])).pop()
    influence = report["block_influence"]
    assert all(influence[kept] >= influence[i] for i in report["removed_layers"])
    torch.testing.assert_close(pruned.model.layers[0].state_dict(), model.model.layers[kept].state_dict())


# ------------------------------------------------------------------------------------------------- mlp


def test_mlp_keep_one_is_the_identity(tmp_path, tokenizer, texts):
    model = transformer(tokenizer, gated_mlp=True, hidden_act="silu")
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "mlp", texts, keep=1.0)
    assert report["intermediate_size"] == {"before": 256, "after": 256}
    torch.testing.assert_close(logits(reload(tmp_path / "out"), tokenizer, texts), logits(model, tokenizer, texts))


@pytest.mark.parametrize("family", ["transformer", "llama"])
def test_mlp_keeps_the_important_neurons(tmp_path, tokenizer, texts, family):
    model = transformer(tokenizer) if family == "transformer" else llama(tokenizer)
    width = model.config.intermediate_size
    dead = list(range(0, width, 2))  # every other neuron of block 0 writes nothing: importance 0
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[:, dead] = 0
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "mlp", texts, keep=0.5)
    assert report["kept_neurons"][0] == list(range(1, width, 2))
    pruned = check_structured(tmp_path / "out", tokenizer, texts)
    assert pruned.config.intermediate_size == width // 2
    for layer in pruned.model.layers:
        assert layer.mlp.up_proj.out_features == layer.mlp.down_proj.in_features == width // 2
    if family == "transformer":  # biases follow their neurons
        old_bias = model.model.layers[0].mlp.up_proj.bias
        torch.testing.assert_close(pruned.model.layers[0].mlp.up_proj.bias, old_bias[1::2])
    # block 0 lost only neurons that wrote nothing: its output is unchanged
    x = torch.randn(2, 5, model.config.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(pruned.model.layers[0].mlp(x), model.model.layers[0].mlp(x))


# ------------------------------------------------------------------------------------------------- heads


def test_heads_of_llama_prune_whole_kv_groups(tmp_path, tokenizer, texts):
    model = llama(tokenizer)
    with torch.no_grad():  # in block 0, the two query heads of KV group 0 write nothing
        model.model.layers[0].self_attn.o_proj.weight[:, :16] = 0
    report = run(save(model, tokenizer, tmp_path / "m"), tmp_path / "out", "heads", texts, keep=0.5)
    assert report["kept_heads"][0] == [2, 3]
    assert all(heads in ([0, 1], [2, 3]) for heads in report["kept_heads"])  # whole groups
    pruned = check_structured(tmp_path / "out", tokenizer, texts)
    config = pruned.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 8)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["head_dim"] == 8
    attn, old = pruned.model.layers[0].self_attn, model.model.layers[0].self_attn
    torch.testing.assert_close(attn.k_proj.weight, old.k_proj.weight[8:16])
    torch.testing.assert_close(attn.q_proj.weight, old.q_proj.weight[16:32])
    x = torch.randn(1, 5, 32)
    with torch.no_grad():  # block 0 lost only heads that wrote nothing
        pos = pruned.model.rotary_emb(x, torch.arange(5)[None])
        torch.testing.assert_close(attn(x, pos, None)[0], old(x, pos, None)[0])


def test_heads_of_llama_keep_query_heads_per_group(tmp_path, tokenizer, texts):
    report = run(save(llama(tokenizer), tokenizer, tmp_path / "m"), tmp_path / "out", "heads", texts, keep=0.5,
                 gqa="queries")
    assert all(heads[0] in (0, 1) and heads[1] in (2, 3) for heads in report["kept_heads"])  # one per group
    config = check_structured(tmp_path / "out", tokenizer, texts).config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 2, 8)


def test_heads_of_the_book_transformer_keep_head_dim(tmp_path, tokenizer, texts):
    report = run(save(transformer(tokenizer), tokenizer, tmp_path / "m"), tmp_path / "out", "heads", texts, keep=0.5)
    config = check_structured(tmp_path / "out", tokenizer, texts).config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 2, 16)
    assert report["heads"]["after"] == {"num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16}


# ------------------------------------------------------------------------------------------------- the command


def test_command_line_prunes_with_a_calibration_dataset(tmp_path, tokenizer, texts, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation"):
        (data / f"{split}.txt").write_text("\n".join(texts[split]) + "\n")
    model_dir = save(llama(tokenizer), tokenizer, tmp_path / "m")
    rc = main(["prune", str(model_dir), str(tmp_path / "out"), "--method", "layers", "--remove", "1",
               "--calibration_dataset", str(data), "--calibration_tokens", "256", "--eval_max_documents", "2",
               "--generate_tokens", "2"])
    assert rc == 0
    assert "bits per byte" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "prune_report.json").read_text())
    assert report["calibration_tokens"] == 256 and report["eval_documents"] == 2
    assert AutoConfig.from_pretrained(tmp_path / "out").num_hidden_layers == 2


BAD = [
    ("transformer", ["--method", "magnitude", "--sparsity", "0"], "--sparsity must be in (0, 1)"),
    ("transformer", ["--method", "magnitude", "--sparsity", "1.5"], "--sparsity must be in (0, 1)"),
    ("transformer", ["--method", "magnitude"], "needs --sparsity"),
    ("transformer", ["--method", "magnitude", "--pattern", "2:4", "--sparsity", "0.3"], "fixes the sparsity"),
    ("transformer", ["--method", "mlp", "--keep", "0"], "--keep must be in (0, 1]"),
    ("transformer", ["--method", "heads", "--keep", "1.5"], "--keep must be in (0, 1]"),
    ("transformer", ["--method", "layers", "--remove", "3"], "smaller than the number of blocks (3)"),
    ("transformer", ["--method", "layers", "--remove", "-1"], "non-negative integer"),
    ("transformer", ["--method", "layers", "--remove", "1", "--keep", "0.5"], "does not apply"),
    ("llama_mha", ["--method", "heads", "--keep", "0.75"], "valid --keep values here: 0.25, 0.5, 1"),
    ("rnn", ["--method", "mlp", "--keep", "0.5"], "hundredpage_rnn"),
    ("rnn", ["--method", "heads", "--keep", "0.5"], "hundredpage_rnn"),
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("models")
    return {"transformer": save(transformer(tokenizer), tokenizer, root / "transformer"),
            "rnn": save(rnn(tokenizer), tokenizer, root / "rnn"),
            "llama_mha": save(llama(tokenizer, num_key_value_heads=4), tokenizer, root / "llama_mha")}


@pytest.mark.parametrize("family, args, message", BAD)
def test_bad_input_is_one_line_and_no_output(tmp_path, model_dirs, capsys, family, args, message):
    out = tmp_path / "out"
    assert main(["prune", str(model_dirs[family]), str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-hundredpage prune: error: ") and "\n" not in err
    assert message in err
    assert not out.exists() and not staging_dir(out).exists()


def test_unknown_method_is_refused_by_argparse(tmp_path, model_dirs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", str(model_dirs["transformer"]), str(tmp_path / "out"), "--method", "distill"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'distill'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
