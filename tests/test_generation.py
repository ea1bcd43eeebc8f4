"""Tests of the book's sampling controls (§5.4): presence / frequency penalties and ``hf-hundredpage generate``."""

import json
import shutil
from collections import Counter

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

import hf_hundredpage.data
from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.cli import main as cli_main
from hf_hundredpage.generation import (
    FrequencyPenaltyLogitsProcessor,
    PresencePenaltyLogitsProcessor,
    build_logits_processors,
    load_for_generation,
)


INF = float("inf")
# One row, vocabulary of 6, tokens seen so far [1, 1, 3]: count = [0, 2, 0, 1, 0, 0].
SCORES = torch.tensor([[1.0, 2.0, 0.5, 1.5, -1.0, 0.0]])
SEEN = torch.tensor([[1, 1, 3]])


# --------------------------------------------------------------------------------------------------------------
# The penalties against the book's formulas, numbers written out by hand
# --------------------------------------------------------------------------------------------------------------


def test_presence_and_frequency_penalties_match_hand_computed_rows():
    # presence 0.5: tokens 1 and 3 occur -> each loses 0.5 once.
    presence = PresencePenaltyLogitsProcessor(0.5)(SEEN, SCORES.clone())
    torch.testing.assert_close(presence, torch.tensor([[1.0, 1.5, 0.5, 1.0, -1.0, 0.0]]), rtol=0, atol=1e-6)
    # frequency 0.2: token 1 (twice) loses 0.4, token 3 (once) loses 0.2.
    frequency = FrequencyPenaltyLogitsProcessor(0.2)(SEEN, SCORES.clone())
    torch.testing.assert_close(frequency, torch.tensor([[1.0, 1.6, 0.5, 1.3, -1.0, 0.0]]), rtol=0, atol=1e-6)
    # both, as `generate` applies the list: 2.0 - 0.5 - 0.4 = 1.1 and 1.5 - 0.5 - 0.2 = 0.8.
    both = build_logits_processors(presence_penalty=0.5, frequency_penalty=0.2)(SEEN, SCORES.clone())
    torch.testing.assert_close(both, torch.tensor([[1.0, 1.1, 0.5, 0.8, -1.0, 0.0]]), rtol=0, atol=1e-6)


def test_negative_penalties_encourage_repetition():
    out = build_logits_processors(presence_penalty=-0.5, frequency_penalty=-0.2)(SEEN, SCORES.clone())
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.9, 0.5, 2.2, -1.0, 0.0]]), rtol=0, atol=1e-6)


def test_batch_rows_are_penalised_independently():
    ids = torch.tensor([[1, 1, 3], [4, 4, 4]])
    scores = torch.zeros(2, 6)
    out = FrequencyPenaltyLogitsProcessor(0.5)(ids, scores)
    expected = torch.tensor([[0.0, -1.0, 0.0, -0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -1.5, 0.0]])
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    presence = PresencePenaltyLogitsProcessor(0.5)(ids, scores)
    expected = torch.tensor([[0.0, -0.5, 0.0, -0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -0.5, 0.0]])
    torch.testing.assert_close(presence, expected, rtol=0, atol=0)


def test_pad_tokens_of_left_padded_rows_are_not_counted():
    padded = torch.tensor([[0, 0, 1, 1, 3], [4, 4, 4, 4, 4]])  # row 0 left-padded with pad id 0
    scores = torch.zeros(2, 6)
    with_pad = FrequencyPenaltyLogitsProcessor(0.5, pad_token_id=0)(padded, scores)
    expected = torch.tensor([[0.0, -1.0, 0.0, -0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -2.5, 0.0]])
    torch.testing.assert_close(with_pad, expected, rtol=0, atol=0)
    # Without `pad_token_id` the two pads count as token 0, which then loses 2 * 0.5.
    without = FrequencyPenaltyLogitsProcessor(0.5)(padded, scores)
    assert without[0, 0].item() == -1.0
    presence = PresencePenaltyLogitsProcessor(0.5, pad_token_id=0)(padded, scores)
    assert presence[0, 0].item() == 0.0 and presence[0, 1].item() == -0.5


def test_prompt_ignore_length_counts_only_generated_tokens():
    ids = torch.tensor([[5, 5, 1, 1, 3]])  # a 2-token prompt [5, 5], then [1, 1, 3] generated
    out = build_logits_processors(presence_penalty=0.5, frequency_penalty=0.2, prompt_ignore_length=2)(ids, SCORES)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.1, 0.5, 0.8, -1.0, 0.0]]), rtol=0, atol=1e-6)
    counted = build_logits_processors(presence_penalty=0.5, frequency_penalty=0.2)(ids, SCORES)
    assert counted[0, 5].item() == pytest.approx(0.0 - 0.5 - 0.4)  # the prompt's token 5, twice


def test_zero_penalties_leave_scores_unchanged():
    assert len(build_logits_processors()) == 0
    assert len(build_logits_processors(presence_penalty=0.3)) == 1
    scores = torch.randn(3, 11)
    ids = torch.randint(0, 11, (3, 7))
    assert torch.equal(PresencePenaltyLogitsProcessor(0.0)(ids, scores), scores)
    assert torch.equal(FrequencyPenaltyLogitsProcessor(0.0)(ids, scores), scores)


def test_ids_beyond_the_output_vocabulary_are_ignored():
    # An embedding larger than lm_head: id 7 cannot be scored over 6 outputs and must not break the scatter.
    out = FrequencyPenaltyLogitsProcessor(1.0)(torch.tensor([[7, 2]]), torch.zeros(1, 6))
    assert out.tolist() == [[0.0, 0.0, -1.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5", True, None])
def test_bad_penalties_raise(bad):
    with pytest.raises(ValueError, match="finite float"):
        PresencePenaltyLogitsProcessor(bad)
    with pytest.raises(ValueError, match="frequency_penalty"):
        build_logits_processors(frequency_penalty=bad)
    with pytest.raises(ValueError, match="prompt_ignore_length"):
        FrequencyPenaltyLogitsProcessor(0.1, prompt_ignore_length=-1)


def test_composition_with_warpers_depends_on_order():
    # Penalty then temperature 0.5: (x - 0.2 count) / 0.5; temperature then penalty: x / 0.5 - 0.2 count.
    frequency, temperature = FrequencyPenaltyLogitsProcessor(0.2), TemperatureLogitsWarper(0.5)
    first = LogitsProcessorList([frequency, temperature])(SEEN, SCORES.clone())
    torch.testing.assert_close(first, torch.tensor([[2.0, 3.2, 1.0, 2.6, -2.0, 0.0]]), rtol=0, atol=1e-6)
    second = LogitsProcessorList([temperature, frequency])(SEEN, SCORES.clone())
    torch.testing.assert_close(second, torch.tensor([[2.0, 3.6, 1.0, 2.8, -2.0, 0.0]]), rtol=0, atol=1e-6)

    # Presence 1.2 then top-2: [1.0, 0.8, 0.5, 0.3, -1, 0] keeps tokens 0 and 1 -> token 0 wins.
    presence, top_k = PresencePenaltyLogitsProcessor(1.2), TopKLogitsWarper(top_k=2)
    first = LogitsProcessorList([presence, top_k])(SEEN, SCORES.clone())
    torch.testing.assert_close(first, torch.tensor([[1.0, 0.8, -INF, -INF, -INF, -INF]]), rtol=0, atol=1e-6)
    # Top-2 then presence: tokens 1 (2.0) and 3 (1.5) survive, then both lose 1.2 -> token 1 wins.
    second = LogitsProcessorList([top_k, presence])(SEEN, SCORES.clone())
    torch.testing.assert_close(second, torch.tensor([[-INF, 0.8, -INF, 0.3, -INF, -INF]]), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# Inside model.generate
# --------------------------------------------------------------------------------------------------------------


def _constant_logits_rnn(bias: torch.Tensor, **config) -> HundredPageRNNForCausalLM:
    """An RNN whose logits are `bias` whatever the input: `lm_head` (which has a bias, book §3.3) weights zeroed."""
    model = HundredPageRNNForCausalLM(
        HundredPageRNNConfig(vocab_size=bias.numel(), hidden_size=8, num_hidden_layers=1, **config)
    )
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.copy_(bias)
    return model.eval()


def _greedy_with_frequency_penalty(bias: list[float], prompt: list[int], penalty: float, steps: int) -> list[int]:
    """Independent reference: greedy decoding of constant logits with `bias[t] - penalty * count[t]` in Python."""
    counts, out = Counter(prompt), []
    for _ in range(steps):
        logits = [b - penalty * counts[t] for t, b in enumerate(bias)]
        best = max(range(len(logits)), key=lambda t: (logits[t], -t))  # first maximum, as torch.argmax
        out.append(best)
        counts[best] += 1
    return out


def test_frequency_penalty_stops_greedy_repetition_inside_generate():
    bias = [0.0] * 16
    bias[0] = bias[1] = -100.0  # pad and eos are never chosen
    bias[7], bias[8], bias[9] = 3.0, 2.0, 1.0
    model = _constant_logits_rnn(torch.tensor(bias), pad_token_id=0, eos_token_id=1)
    prompt = torch.tensor([[3, 4]])
    kwargs = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False, pad_token_id=0)

    plain = model.generate(prompt, **kwargs)[0, 2:].tolist()
    assert plain == [7] * 12

    penalised = model.generate(prompt, logits_processor=build_logits_processors(frequency_penalty=1.5), **kwargs)
    penalised = penalised[0, 2:].tolist()
    assert penalised == _greedy_with_frequency_penalty(bias, [3, 4], 1.5, 12)
    # By hand: 7 (3) | 8 (2 > 1.5) | 7 (1.5 > 1) | 9 (1 > 0.5) | 8 (0.5 > 0) | then every logit is <= 0 and the
    # first unused tokens at 0 win in id order (2, 5, 6; 3 and 4 are at -1.5 from the prompt), 7 back at 0 after 6.
    assert penalised == [7, 8, 7, 9, 8, 2, 5, 6, 7, 10, 11, 12]
    assert plain.count(7) == 12 and penalised.count(7) == 3


def test_penalties_compose_with_sampling_inside_generate():
    # A presence penalty of 1e4 removes every used token from reach: sampled tokens are then all distinct,
    # while temperature / top-k / top-p still apply (top_k=16 keeps the whole vocabulary of 16).
    bias = torch.zeros(16)
    bias[0] = bias[1] = -1e9
    bias[7] = 5.0
    model = _constant_logits_rnn(bias, pad_token_id=0, eos_token_id=1)
    prompt = torch.tensor([[3]])
    torch.manual_seed(0)
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=10,
        do_sample=True,
        temperature=0.7,
        top_k=16,
        top_p=0.99,
        pad_token_id=0,
        logits_processor=build_logits_processors(presence_penalty=1e4),
    )[0, 1:].tolist()
    assert len(set(out)) == 10 and 3 not in out and not {0, 1} & set(out)


# --------------------------------------------------------------------------------------------------------------
# Loading and the generate CLI on each model kind
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(hf_hundredpage.data.default_tokenizer_path())


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizer):
    """Tiny models of every kind, saved with the package tokenizer: {kind: folder}."""
    root = tmp_path_factory.mktemp("generation_models")
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    models = {
        "transformer": HundredPageTransformerForCausalLM(
            HundredPageTransformerConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, **ids)
        ),
        "rnn": HundredPageRNNForCausalLM(HundredPageRNNConfig(hidden_size=16, num_hidden_layers=1, **ids)),
        "gpt2": GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=256, **ids)),
    }
    dirs = {}
    for kind, model in models.items():
        dirs[kind] = root / kind
        model.save_pretrained(dirs[kind])
        tokenizer.save_pretrained(dirs[kind])

    # A LoRA adapter over the saved transformer, without a tokenizer of its own (it comes from the base).
    base = AutoModelForCausalLM.from_pretrained(str(dirs["transformer"]))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    dirs["lora"] = root / "lora"
    get_peft_model(base, lora).save_pretrained(dirs["lora"])
    return dirs


KINDS = ["transformer", "rnn", "gpt2", "lora"]


def _generate(capsys, *argv) -> str:
    capsys.readouterr()
    assert cli_main(["generate", *map(str, argv)]) == 0
    return capsys.readouterr().out


def test_adapter_points_at_its_base_and_loads_on_top_of_it(model_dirs):
    with open(model_dirs["lora"] / "adapter_config.json") as f:
        assert json.load(f)["base_model_name_or_path"] == str(model_dirs["transformer"])
    assert not (model_dirs["lora"] / "tokenizer.json").exists()

    model, tok = load_for_generation(model_dirs["lora"])
    base, _ = load_for_generation(model_dirs["transformer"])
    assert isinstance(model, PeftModel) and not model.training
    assert len(tok) == base.config.vocab_size  # the tokenizer came from the base folder

    ids = torch.tensor([[0, 265, 300, 400]])
    fresh = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(model_dirs["transformer"])),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]),
    )
    fresh.load_adapter(str(model_dirs["lora"]), adapter_name="default")  # PEFT's own loader, as a reference
    with torch.no_grad():
        adapted, reference, plain = model(ids).logits, fresh.eval()(ids).logits, base(ids).logits
    torch.testing.assert_close(adapted, reference)
    assert not torch.allclose(adapted, plain)  # the adapter changes the function


def test_load_for_generation_errors(tmp_path, model_dirs):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_for_generation(tmp_path / "missing")
    adapter = tmp_path / "orphan_adapter"
    shutil.copytree(model_dirs["lora"], adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted_base")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="base_model_name_or_path"):
        load_for_generation(adapter)


@pytest.mark.parametrize("kind", KINDS)
def test_generate_cli_greedy_streams_what_no_stream_prints(kind, model_dirs, capsys):
    streamed = _generate(capsys, model_dirs[kind], "--prompt", "The history of", "--max_new_tokens", 8)
    printed = _generate(capsys, model_dirs[kind], "--prompt", "The history of", "--max_new_tokens", 8, "--no_stream")
    assert streamed.strip() and streamed == printed


@pytest.mark.parametrize("kind", KINDS)
def test_generate_cli_chat_with_sampling_controls_and_seed(kind, model_dirs, capsys):
    argv = [
        model_dirs[kind], "--prompt", "Tell me about rivers.", "--chat", "--system", "You are brief.",
        "--max_new_tokens", 8, "--temperature", 0.9, "--top_k", 500, "--top_p", 0.95, "--min_p", 0.0001,
        "--repetition_penalty", 1.1, "--presence_penalty", 0.5, "--frequency_penalty", 0.3,
    ]  # fmt: skip
    first = _generate(capsys, *argv, "--seed", 3)
    again = _generate(capsys, *argv, "--seed", 3, "--no_stream")
    other = _generate(capsys, *argv, "--seed", 4)
    assert first.strip() and first == again
    assert other != first  # sampling is on: 8 tokens from ~8000 nearly uniform ones do not repeat by chance


def test_generate_cli_is_greedy_by_default(model_dirs, tokenizer, capsys):
    text = _generate(capsys, model_dirs["transformer"], "--prompt", "The river", "--max_new_tokens", 6, "--no_stream")
    model = AutoModelForCausalLM.from_pretrained(str(model_dirs["transformer"])).eval()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer.encode("The river", add_special_tokens=False)]])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    assert text == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) + "\n"
    # Beam search cannot stream: it prints the completion at the end.
    beams = _generate(
        capsys, model_dirs["transformer"], "--prompt", "The river", "--max_new_tokens", 4, "--num_beams", 2
    )
    assert beams.strip()


def test_generate_cli_frequency_penalty_reaches_generate(tmp_path, tokenizer, capsys):
    the = tokenizer.encode(" the", add_special_tokens=False)[0]
    bias = torch.zeros(len(tokenizer))
    bias[tokenizer.all_special_ids] = -100.0
    bias[the] = 5.0
    special = dict(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model = _constant_logits_rnn(bias, **special)
    model.save_pretrained(tmp_path / "the_rnn")
    tokenizer.save_pretrained(tmp_path / "the_rnn")
    argv = [tmp_path / "the_rnn", "--prompt", "Once", "--max_new_tokens", 6, "--no_stream"]
    assert _generate(capsys, *argv) == " the" * 6 + "\n"
    # 5 - 10 * 1 < 0: after one " the", the unused tokens (logit 0) win.
    assert _generate(capsys, *argv, "--frequency_penalty", 10).count(" the") == 1


def test_generate_cli_errors_say_what_to_fix(tmp_path, model_dirs, tokenizer, capsys):
    no_template = tmp_path / "no_template"
    shutil.copytree(model_dirs["gpt2"], no_template)
    (no_template / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((no_template / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (no_template / "tokenizer_config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(no_template).chat_template is None

    cases = [
        ([no_template, "--prompt", "hi", "--chat"], "no chat template"),
        ([model_dirs["rnn"], "--prompt", "hi", "--system", "be brief"], "--system needs --chat"),
        ([model_dirs["rnn"], "--prompt", "hi", "--greedy", "--temperature", 0.5], "drop --greedy"),
        ([model_dirs["rnn"], "--prompt", "hi", "--top_p", 1.5], "--top_p must be in (0, 1]"),
        ([model_dirs["rnn"], "--prompt", "hi", "--presence_penalty", "nan"], "--presence_penalty must be a finite"),
        ([tmp_path / "missing", "--prompt", "hi"], "does not exist"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert cli_main(["generate", *map(str, argv)]) == 2
        assert message in capsys.readouterr().err
