"""`hf_hundredpage.alignment.kl_to_reference` against the definition, KL(p ‖ q) = Σ p (log p − log q), computed here
with `torch.distributions.kl_divergence` one sequence at a time, without padding."""

from contextlib import nullcontext

import pytest
import torch
from torch.distributions import Categorical, kl_divergence
from transformers import LlamaConfig, LlamaForCausalLM

from hf_hundredpage.alignment import kl_to_reference
from hf_hundredpage.alignment.preference_rate import completion_ids
from hf_hundredpage.data.builtin.preferences import make_preference_dataset
from hf_hundredpage.tokenization import train_bpe_tokenizer


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    data = make_preference_dataset(60, seed=3)
    tokenizer = train_bpe_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in data["train"]], vocab_size=300)

    def llama(seed):
        torch.manual_seed(seed)
        return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                            pad_token_id=tokenizer.pad_token_id)).eval()

    return data["test"].select(range(5)), tokenizer, llama(0), llama(1)


def reference_kl(policy, reference, tokenizer, rows) -> tuple[float, int]:
    total, count = 0.0, 0
    for row in rows:
        for answer in (row["chosen"], row["rejected"]):
            prompt_ids, answer_ids = completion_ids(tokenizer, row["prompt"], answer)
            ids = torch.tensor([prompt_ids + answer_ids])
            with torch.no_grad():
                p, q = policy(ids).logits[0], reference(ids).logits[0]
            positions = slice(len(prompt_ids) - 1, ids.shape[1] - 1)
            kl = kl_divergence(Categorical(logits=p[positions]), Categorical(logits=q[positions]))
            total, count = total + kl.sum().item(), count + kl.numel()
    return total / count, count


def test_kl_matches_the_definition_with_padding_and_batches(setup):
    rows, tokenizer, policy, reference = setup
    expected, tokens = reference_kl(policy, reference, tokenizer, rows)
    assert expected > 0.01  # two different random models
    for batch_size in (1, 3, 16):  # right padding inside a batch must not change a sequence's positions
        result = kl_to_reference(policy, lambda: nullcontext(reference), tokenizer, rows, batch_size=batch_size)
        assert result["num_tokens"] == tokens
        assert result["kl"] == pytest.approx(expected, rel=1e-4)
        assert result["max_kl"] >= result["kl"]


def test_kl_of_a_model_to_itself_is_zero_and_max_examples_caps_the_rows(setup):
    rows, tokenizer, policy, _ = setup
    result = kl_to_reference(policy, lambda: nullcontext(policy), tokenizer, rows, max_examples=2)
    assert result["kl"] == pytest.approx(0.0, abs=1e-6)
    assert result["num_tokens"] == reference_kl(policy, policy, tokenizer, rows.select(range(2)))[1]
