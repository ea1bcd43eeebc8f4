"""hf_hundredpage.finetuning (loading, LoRA configs, the CPU 4-bit guard, merge-adapter, exact match) and the
built-in instruction data of hf_hundredpage.data.instructions."""

import json
import re
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from bitsandbytes.functional import has_avx512bf16
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
)

from hf_hundredpage import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.cli import main as cli
from hf_hundredpage.data import default_tokenizer_path
from hf_hundredpage.data.builtin.instructions import (
    DAYS,
    MONTHS,
    TASK_FAMILIES,
    make_instruction_dataset,
    save_instruction_dataset,
)
from hf_hundredpage.data.instructions import load_instruction_dataset
from hf_hundredpage.evaluation.exact_match import evaluate_exact_match
from hf_hundredpage.finetuning import (
    HundredPageModelConfig,
    get_peft_config,
    guard_cpu_4bit,
    load_model,
    load_tokenizer,
    merge_adapter,
)
from hf_hundredpage.generation import chat_turn_end


REPO = Path(__file__).resolve().parents[1]
ALL_BLOCK_LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


def tiny_transformer(tokenizer, **overrides):
    config = dict(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=2, num_hidden_layers=1,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return HundredPageTransformerForCausalLM(HundredPageTransformerConfig(**{**config, **overrides}))


@pytest.fixture(scope="module")
def model_dir(tokenizer, tmp_path_factory):
    """A saved tiny transformer without MLP biases (so that bitsandbytes' CPU bug shows as wrong numbers, not an
    error), 64 wide (bitsandbytes repacks only layers with at least one 64-value quantization block per row)."""
    folder = tmp_path_factory.mktemp("base")
    tiny_transformer(tokenizer, mlp_bias=False, hidden_size=64, num_attention_heads=4).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def lora_params(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


# --------------------------------------------------------------------------------------------------- loading


def test_arguments_reject_bad_values():
    with pytest.raises(ValueError, match="dtype must be one of"):
        HundredPageModelConfig(model_name_or_path="m", dtype="float8")
    with pytest.raises(ValueError, match="exclusive"):
        HundredPageModelConfig(model_name_or_path="m", load_in_4bit=True, load_in_8bit=True)
    with pytest.raises(ValueError, match="nf4 or fp4"):
        HundredPageModelConfig(model_name_or_path="m", bnb_4bit_quant_type="int4")


def test_load_tokenizer_pads_with_eos_and_keeps_the_padding_side(tokenizer, tmp_path):
    no_pad = AutoTokenizer.from_pretrained(default_tokenizer_path(), padding_side="left")
    no_pad.pad_token = None
    no_pad.save_pretrained(tmp_path)
    loaded = load_tokenizer(HundredPageModelConfig(model_name_or_path=str(tmp_path)))
    assert loaded.pad_token == loaded.eos_token == "<|eos|>" and loaded.padding_side == "left"
    assert load_tokenizer(HundredPageModelConfig(model_name_or_path=str(tmp_path), tokenizer_name_or_path=default_tokenizer_path())).pad_token == "<|pad|>"


def test_load_model_records_an_absolute_base_and_rejects_missing_folders(model_dir, monkeypatch):
    monkeypatch.chdir(model_dir.parent)
    model = load_model(HundredPageModelConfig(model_name_or_path=model_dir.name, dtype="bfloat16"))
    assert model.name_or_path == str(model_dir.resolve()) and model.dtype == torch.bfloat16
    with pytest.raises(FileNotFoundError, match="model folder ./missing does not exist"):
        load_model(HundredPageModelConfig(model_name_or_path="./missing"))


def test_load_model_as_a_classifier(model_dir):
    model = load_model(HundredPageModelConfig(model_name_or_path=str(model_dir)), task="sequence-classification",
                       num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}, pad_token_id=2)
    assert model.score.out_features == 3 and model.config.pad_token_id == 2 and model.config.id2label[1] == "b"
    with pytest.raises(ValueError, match="task must be one of"):
        load_model(HundredPageModelConfig(model_name_or_path=str(model_dir)), task="seq2seq")


def test_load_model_in_8_and_4_bits(model_dir):
    eight = load_model(HundredPageModelConfig(model_name_or_path=str(model_dir), load_in_8bit=True))
    assert sum(isinstance(m, bnb.nn.Linear8bitLt) for m in eight.modules()) == 6
    four = load_model(HundredPageModelConfig(model_name_or_path=str(model_dir), load_in_4bit=True, use_bnb_nested_quant=True))
    layers = [m for m in four.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 6 and not any(m.support_avx512bf16_for_cpu for m in layers)  # guarded at load
    assert four.config.quantization_config.bnb_4bit_use_double_quant


# --------------------------------------------------------------------------------------------------- LoRA


def test_peft_config_targets(tokenizer):
    on = dict(model_name_or_path="m", use_peft=True)
    assert get_peft_config(HundredPageModelConfig(model_name_or_path="m"), tiny_transformer(tokenizer)) is None
    assert get_peft_config(HundredPageModelConfig(**on), tiny_transformer(tokenizer)).target_modules == ALL_BLOCK_LINEARS
    gated = get_peft_config(HundredPageModelConfig(**on), tiny_transformer(tokenizer, gated_mlp=True, hidden_act="silu"))
    assert gated.target_modules == ALL_BLOCK_LINEARS | {"gate_proj"}
    rnn = HundredPageRNNForCausalLM(HundredPageRNNConfig(vocab_size=50, hidden_size=8))
    assert get_peft_config(HundredPageModelConfig(**on), rnn).target_modules == {"input_proj", "hidden_proj"}
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50))
    assert get_peft_config(HundredPageModelConfig(**on), gpt2).target_modules == "all-linear"
    chosen = HundredPageModelConfig(**on, lora_target_modules=["q_proj"], lora_r=4, use_dora=True)
    config = get_peft_config(chosen, tiny_transformer(tokenizer))
    assert config.target_modules == {"q_proj"} and config.r == 4 and config.use_dora and config.task_type == "CAUSAL_LM"


def test_peft_config_for_classifiers_trains_the_head(model_dir):
    args = HundredPageModelConfig(model_name_or_path=str(model_dir), use_peft=True, lora_modules_to_save=["embed_tokens"])
    classifier = load_model(args, task="sequence-classification", num_labels=2, pad_token_id=2)
    config = get_peft_config(args, classifier, "SEQ_CLS")
    assert config.task_type == "SEQ_CLS" and config.modules_to_save == ["embed_tokens", "score"]
    peft_model = get_peft_model(classifier, config)
    trainable = set(lora_params(peft_model))
    assert any(".score." in n for n in trainable) and all("lora_" in n or "modules_to_save" in n for n in trainable)


# --------------------------------------------------------------------------------------------------- QLoRA on CPU


def qlora_model(model_dir):
    args = HundredPageModelConfig(model_name_or_path=str(model_dir), load_in_4bit=True, use_peft=True, lora_r=4, lora_dropout=0.0)
    model = load_model(args)
    config = get_peft_config(args, model)
    config.init_lora_weights = False  # random A and B: every LoRA parameter gets a non-zero gradient
    torch.manual_seed(0)
    return get_peft_model(model, config)


def test_qlora_trains_on_cpu(model_dir):
    model = qlora_model(model_dir)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 6
    trainable = lora_params(model)
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    ids = torch.randint(5, 300, (4, 12), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad and p.dtype.is_floating_point}
    model.train()
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def generate_then_train_one_step(model, ids, generate_first: bool, save_dir: Path):
    if generate_first:  # an eval-mode, no-grad forward: what bitsandbytes repacks 4-bit weights on
        model.eval()
        model.generate(input_ids=ids[:, :6], attention_mask=torch.ones_like(ids[:, :6]), max_new_tokens=3, do_sample=False, pad_token_id=2)
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in lora_params(model).items()}
    torch.optim.SGD(lora_params(model).values(), lr=0.1).step()
    model.save_pretrained(save_dir)
    quantized = {k: v.clone() for k, v in model.get_base_model().state_dict().items() if "lora_" not in k}
    return loss.item(), grads, load_file(save_dir / "adapter_model.safetensors"), quantized


def test_guarded_4bit_model_evaluates_then_trains_like_a_fresh_one(model_dir, tmp_path):
    """STACK_NOTES: after `generate`, an unguarded 4-bit layer on an AVX512-BF16 CPU gives other LoRA gradients
    and saves other weights. Guarded (what `load_model` does), generate-then-train equals train-only exactly."""
    ids = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    after_generate, fresh = qlora_model(model_dir), qlora_model(model_dir)
    for model in (after_generate, fresh):
        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert guard_cpu_4bit(model) == len(layers) == 6 and not any(m.support_avx512bf16_for_cpu for m in layers)
    loss_a, grads_a, adapter_a, base_a = generate_then_train_one_step(after_generate, ids, True, tmp_path / "a")
    loss_b, grads_b, adapter_b, base_b = generate_then_train_one_step(fresh, ids, False, tmp_path / "b")
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 12
    for name in grads_a:
        assert grads_a[name].abs().sum() > 0
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=0, atol=1e-6)
    for name in adapter_a:
        torch.testing.assert_close(adapter_a[name], adapter_b[name], rtol=0, atol=1e-6)
    assert base_a.keys() == base_b.keys() and all(torch.equal(base_a[k], base_b[k]) for k in base_a)


@pytest.mark.slow
@pytest.mark.skipif(not has_avx512bf16(), reason="the repacking bug needs a CPU with AVX512-BF16")
def test_unguarded_4bit_model_diverges_after_generate(model_dir, tmp_path):
    """The counterpart of the test above, without the guard: the bug is real on this hardware."""
    ids = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    models = []
    for _ in range(2):
        model = qlora_model(model_dir)
        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.support_avx512bf16_for_cpu = True  # undo the guard
        models.append(model)
    _, grads_a, _, base_a = generate_then_train_one_step(models[0], ids, True, tmp_path / "a")
    _, grads_b, _, base_b = generate_then_train_one_step(models[1], ids, False, tmp_path / "b")
    assert max((grads_a[n] - grads_b[n]).abs().max().item() for n in grads_a) > 1e-3
    assert not all(torch.equal(base_a[k], base_b[k]) for k in base_a)


def test_guard_refuses_a_model_already_repacked(model_dir):
    model = load_model(HundredPageModelConfig(model_name_or_path=str(model_dir), load_in_4bit=True))
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = has_avx512bf16()
    with torch.no_grad():
        model.eval()(torch.tensor([[5, 6, 7]]))
    if has_avx512bf16():
        with pytest.raises(ValueError, match="reload the model and call guard_cpu_4bit"):
            guard_cpu_4bit(model)
    else:
        assert guard_cpu_4bit(model) == 6
    assert guard_cpu_4bit(tiny_transformer(AutoTokenizer.from_pretrained(default_tokenizer_path()))) == 0


# --------------------------------------------------------------------------------------------------- merging


def save_random_adapter(model_dir, adapter_dir, task="causal-lm", **load_kwargs):
    args = HundredPageModelConfig(model_name_or_path=str(model_dir), use_peft=True, lora_r=4)
    base = load_model(args, task=task, **load_kwargs)
    config = get_peft_config(args, base, "SEQ_CLS" if task == "sequence-classification" else "CAUSAL_LM")
    config.init_lora_weights = False
    torch.manual_seed(0)
    model = get_peft_model(base, config).eval()
    model.save_pretrained(adapter_dir)
    return model


def test_merge_adapter_cli_gives_the_adapter_model_logits(model_dir, tokenizer, tmp_path, capsys):
    adapter = save_random_adapter(model_dir, tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model_dir.resolve())
    adapter.get_base_model().generation_config.eos_token_id = [7, 1]
    adapter.get_base_model().generation_config.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")

    assert cli(["merge-adapter", str(tmp_path / "adapter"), str(tmp_path / "merged")]) == 0
    assert "Merged" in capsys.readouterr().out
    files = {p.name for p in (tmp_path / "merged").iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= files and "adapter_config.json" not in files
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters()) and merged.generation_config.eos_token_id == [7, 1]
    ids = torch.randint(5, 8000, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = adapter(ids).logits
        assert (expected - tiny_transformer(tokenizer)(ids).logits).abs().max() > 0.1  # the adapter matters
        torch.testing.assert_close(merged(ids).logits, expected, rtol=0, atol=1e-4)

    capsys.readouterr()
    assert cli(["merge-adapter", str(tmp_path / "adapter"), str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-hundredpage merge-adapter: error: output_dir") and "--overwrite_output_dir" in err and "\n" not in err
    assert cli(["merge-adapter", str(tmp_path / "adapter"), str(tmp_path / "merged"), "--overwrite_output_dir", "--dtype", "bfloat16"]) == 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").dtype == torch.bfloat16


def test_merge_adapter_rejects_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no adapter_config.json"):
        merge_adapter(tmp_path, tmp_path / "out")
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="is the adapter folder"):
        merge_adapter(tmp_path, tmp_path)


def test_merge_classifier_adapter(model_dir, tmp_path):
    adapter = save_random_adapter(model_dir, tmp_path / "adapter", task="sequence-classification", num_labels=3, pad_token_id=2)
    merged = merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert reloaded.num_labels == 3 and type(merged) is type(reloaded)
    ids = torch.tensor([[5, 9, 14, 2, 2], [7, 8, 9, 10, 11]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, adapter(ids).logits, rtol=0, atol=1e-4)


def test_merge_adapter_dequantizes_a_4bit_base(model_dir, tmp_path):
    load_model(HundredPageModelConfig(model_name_or_path=str(model_dir), load_in_4bit=True)).save_pretrained(tmp_path / "base4")
    save_random_adapter(tmp_path / "base4", tmp_path / "adapter")
    merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert "quantization_config" not in config
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in merged.modules())
    # Reference: the adapter over the same base, de-quantized by transformers itself.
    base = load_model(HundredPageModelConfig(model_name_or_path=str(tmp_path / "base4"))).dequantize()
    reference = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    ids = torch.tensor([[5, 9, 14, 20, 31]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reference(ids).logits, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------------- evaluation


def test_chat_turn_end(tokenizer):
    assert chat_turn_end(tokenizer) == (tokenizer.eos_token_id, "")
    book_gpt2 = AutoTokenizer.from_pretrained(default_tokenizer_path())
    book_gpt2.chat_template = (REPO / "recipes" / "configs" / "sft" / "chatml_gpt2.jinja").read_text()
    assert chat_turn_end(book_gpt2) == (tokenizer.eos_token_id, "\n<|im_end|>")  # <|im_end|> is plain text there
    plain = AutoTokenizer.from_pretrained(default_tokenizer_path())
    plain.chat_template = None
    assert chat_turn_end(plain) == (tokenizer.eos_token_id, "")


def reference_greedy_answer(model, tokenizer, messages, max_new_tokens):
    """Greedy decoding by hand (argmax of a full forward per token), independent of `generate`."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = model(ids).logits[0, -1].argmax().item()
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_evaluate_exact_match_against_hand_decoding(tokenizer):
    model = tiny_transformer(tokenizer).eval()
    questions = ["What comes after May?", "Sort the numbers: 3 1 2", "Hi", "What is 2 plus 2?", "Repeat after me: sun"]
    rows = []
    for i, question in enumerate(questions):
        answer = reference_greedy_answer(model, tokenizer, [{"role": "user", "content": question}], 5)
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answer if i % 2 == 0 else answer + " no"}]})
    by_batch = [evaluate_exact_match(model, tokenizer, rows, max_new_tokens=5, batch_size=size) for size in (1, 32)]
    for result in by_batch:
        assert result["exact_match"] == pytest.approx(3 / 5) and result["num_examples"] == 5
        assert [p["correct"] for p in result["predictions"]] == [True, False, True, False, True]
    assert [p["prediction"] for p in by_batch[0]["predictions"]] == [p["prediction"] for p in by_batch[1]["predictions"]]
    with pytest.raises(ValueError, match="'messages' column or 'prompt' and 'completion'"):
        evaluate_exact_match(model, tokenizer, [{"text": "x"}])


# --------------------------------------------------------------------------------------------------- instruction data


def expected_answer(question: str) -> str:
    """Each family's answer, recomputed from the question text alone."""
    kind, _, rest = question.partition(": ")
    if kind == "Repeat after me":
        return rest
    if kind == "Write in capitals":
        return rest.upper()
    if kind == "Reverse the words":
        return " ".join(reversed(rest.split()))
    if kind == "Sort the numbers":
        return " ".join(sorted(rest.split(), key=int))
    if match := re.fullmatch(r"What is (\d) plus (\d)\?", question):
        return str(int(match[1]) + int(match[2]))
    name = re.fullmatch(r"What comes after (\w+)\?", question)[1]
    cycle = DAYS if name in DAYS else MONTHS
    return cycle[(cycle.index(name) + 1) % len(cycle)]


def test_instruction_dataset_is_right_and_deterministic():
    data = make_instruction_dataset(700, seed=5)
    assert {k: len(v) for k, v in data.items()} == {"train": 560, "validation": 70, "test": 70}
    assert data["train"][:] == make_instruction_dataset(700, seed=5)["train"][:]
    assert data["train"][:] != make_instruction_dataset(700, seed=6)["train"][:]
    for split in data.values():
        for row in split:
            user, assistant = row["messages"]
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert assistant["content"] == expected_answer(user["content"])
    assert {t: data["test"]["task"].count(t) for t in TASK_FAMILIES} == {t: 10 for t in TASK_FAMILIES}
    train_questions = {row["messages"][0]["content"] for row in data["train"]}
    for row in data["test"]:
        if TASK_FAMILIES[row["task"]][1]:  # open families: unseen at test time
            assert row["messages"][0]["content"] not in train_questions

    pc = make_instruction_dataset(30, seed=5, format="prompt-completion", tasks=["sort"])
    assert all(r["prompt"].endswith("\nAnswer:") and r["completion"] == " " + expected_answer(r["prompt"][: -len("\nAnswer:")]) for r in pc["train"])
    with pytest.raises(ValueError, match="format must be one of"):
        make_instruction_dataset(10, format="chat")
    with pytest.raises(ValueError, match="unknown instruction tasks"):
        make_instruction_dataset(10, tasks=["divide"])


def test_instruction_dataset_round_trips_through_jsonl(tmp_path):
    paths = save_instruction_dataset(tmp_path / "data", n=50, seed=1, format="prompt-completion")
    assert sorted(p.name for p in paths.values()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    loaded = load_instruction_dataset(str(tmp_path / "data"))
    original = make_instruction_dataset(50, seed=1, format="prompt-completion")
    assert all(loaded[s][:] == original[s][:] for s in ("train", "validation", "test"))
    assert load_instruction_dataset("builtin:instructions", "prompt-completion", num_examples=50, seed=1)["test"][:] == original["test"][:]


def test_load_instruction_dataset_maps_columns_and_carves_splits(tmp_path):
    book_style = tmp_path / "instruct.jsonl"
    book_style.write_text("".join(json.dumps({"instruction": f"Say {i}", "solution": f" {i} "}) + "\n" for i in range(40)))
    data = load_instruction_dataset(str(book_style), instruction_column="instruction", response_column="solution", test_size=0.1)
    assert {k: len(v) for k, v in data.items()} == {"train": 32, "validation": 4, "test": 4}
    row = data["test"][0]["messages"]
    assert row[0]["content"].startswith("Say ") and row[1]["content"] == row[0]["content"][4:]
    with pytest.raises(ValueError, match="needs 'messages' or 'prompt' and 'completion'"):
        load_instruction_dataset(str(book_style))
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        load_instruction_dataset("./missing.jsonl")
