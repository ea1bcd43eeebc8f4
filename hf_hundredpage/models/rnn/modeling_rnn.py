"""The Elman RNN language model of *The Hundred-Page Language Models Book*, chapter 3, as a `transformers` model.

Reads top to bottom: the recurrence (book §3.1) -> one Elman unit (§3.3) -> the stacked model -> heads. Each unit
keeps its two matrices as `nn.Linear` layers (`input_proj`: the book's `W` and `b`; `hidden_proj`: the book's `U`),
so PEFT can target them and bitsandbytes can quantize them. The input projection of a whole sequence is one matrix
product; only `h_{t-1} U` is sequential, and it runs in a recurrence with a hand-written backward pass (BPTT)
instead of autograd over a Python loop of small ops. The hidden state travels in transformers' `DynamicCache`
(recurrent-state layers), so each generated token costs the same whatever the context length.
This folder imports nothing from the rest of `hf_hundredpage`, so `trust_remote_code` users get working code.
"""

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_rnn import HundredPageRNNConfig


class ElmanRecurrence(torch.autograd.Function):
    """`h_t = tanh(a_t + h_{t-1} @ weight)` for t = 0..T-1, where `a_t = x_t W + b` is precomputed (book §3.1).

    Forward: one `addmm` and one in-place `tanh` per step. Backward: back-propagation through time written out,
    one `mm` per step plus a single large product for the gradient of `weight`:
    `dz_t = (dL/dh_t + dz_{t+1} weight^T) * (1 - h_t^2)`, `dL/da_t = dz_t`, `dL/dweight = sum_t h_{t-1}^T dz_t`.
    """

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, h0: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        a = inputs.transpose(0, 1).contiguous()  # (T, B, E): each step reads and writes contiguous rows
        states = torch.empty_like(a)
        h = h0
        for t in range(a.shape[0]):
            torch.addmm(a[t], h, weight, out=states[t])
            h = states[t].tanh_()
        ctx.save_for_backward(h0, weight, states)
        return states.transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: torch.Tensor):
        h0, weight, states = ctx.saved_tensors
        tanh_grad = 1 - states * states  # d tanh(z_t) / dz_t for every step at once
        grad_z = grad_states.transpose(0, 1) * tanh_grad  # the part of dz_t that comes from h_t's own output
        weight_t = weight.t()
        carry = torch.zeros_like(h0)  # dL/dh_t flowing back from step t+1, i.e. dz_{t+1} @ weight^T
        for t in range(states.shape[0] - 1, -1, -1):
            torch.addcmul(grad_z[t], carry, tanh_grad[t], out=grad_z[t])
            carry = grad_z[t] @ weight_t
        previous = torch.cat((h0.unsqueeze(0), states[:-1]), dim=0)
        size = states.shape[-1]
        grad_weight = previous.reshape(-1, size).t() @ grad_z.reshape(-1, size)
        return grad_z.transpose(0, 1), carry, grad_weight


class HundredPageRNNLayer(GradientCheckpointingLayer):
    """One Elman unit (book §3.1, §3.3): `h_t = tanh(x_t W + h_{t-1} U + b)` over a whole sequence.

    `input_proj.weight` is the book's `Wh.T` and `input_proj.bias` its `b`; `hidden_proj.weight` is `Uh.T`.
    Positions where `attention_mask` is 0 get a zero pre-activation, so a left-padded row keeps `h = 0` until
    its first real token: padded and unpadded rows give the same states for the real tokens.
    """

    def __init__(self, config: HundredPageRNNConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.input_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.hidden_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def recurrent_matrix(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """`U` such that the recurrence is `h @ U`: `hidden_proj.weight.T` for a plain `nn.Linear`; for a wrapped
        one (a PEFT adapter, a bitsandbytes layer) it is read through the module itself (`eye @ W^T = W^T`), so the
        adapter or the quantized weight applies exactly as in a forward call; so is a plain layer whose weight is a
        quantized tensor subclass (torchao), which has no transpose."""
        if type(self.hidden_proj) is nn.Linear and type(self.hidden_proj.weight) is nn.Parameter:
            return self.hidden_proj.weight.t().to(dtype)
        return self.hidden_proj(torch.eye(self.hidden_size, dtype=dtype, device=device))

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        pre_activation = self.input_proj(hidden_states)
        if attention_mask is not None:
            pre_activation = pre_activation * attention_mask[..., None].to(pre_activation.dtype)

        batch_size = hidden_states.shape[0]
        h0 = None
        if cache is not None:
            layer = cache.layers[self.layer_idx]
            if layer.is_recurrent_states_initialized[0]:
                h0 = layer.recurrent_states[0]
        if h0 is None:
            h0 = pre_activation.new_zeros(batch_size, self.hidden_size)

        weight = self.recurrent_matrix(pre_activation.dtype, pre_activation.device)
        states = ElmanRecurrence.apply(pre_activation, h0.to(pre_activation.dtype), weight)
        if cache is not None:
            cache.update_recurrent_state(states[:, -1].detach(), self.layer_idx)
        return states


class HundredPageRNNPreTrainedModel(PreTrainedModel):
    config_class = HundredPageRNNConfig
    config: HundredPageRNNConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HundredPageRNNLayer"]
    _can_compile_fullgraph = False
    _supports_sdpa = False
    _supports_flex_attn = False
    _supports_attention_backend = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also maps every Auto class to this file's classes in `config.auto_map`, so that one saved folder serves
        `AutoModel`, `AutoModelForCausalLM` and `AutoModelForSequenceClassification` with `trust_remote_code`."""
        module = type(self).__module__.rsplit(".", 1)[-1]
        config_module = type(self.config).__module__.rsplit(".", 1)[-1]
        self.config.auto_map = {
            "AutoConfig": f"{config_module}.{type(self.config).__name__}",
            "AutoModel": f"{module}.HundredPageRNNModel",
            "AutoModelForCausalLM": f"{module}.HundredPageRNNForCausalLM",
            "AutoModelForSequenceClassification": f"{module}.HundredPageRNNForSequenceClassification",
            **(getattr(self.config, "auto_map", None) or {}),
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, HundredPageRNNLayer):
            # torch.nn.RNN's initialisation keeps tanh units out of saturation at the start of training.
            bound = 1.0 / math.sqrt(module.hidden_size)
            for param in (module.input_proj.weight, module.input_proj.bias, module.hidden_proj.weight):
                init.uniform_(param, -bound, bound)


class HundredPageRNNModel(HundredPageRNNPreTrainedModel):
    """Token embeddings (book §3.5) followed by `num_hidden_layers` stacked Elman units (§3.3)."""

    def __init__(self, config: HundredPageRNNConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([HundredPageRNNLayer(config, i) for i in range(config.num_hidden_layers)])
        self.dropout = nn.Dropout(config.dropout)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        r"""
        attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
            1 for real tokens, 0 for padding. During cached generation it may cover the whole context: only its
            last `sequence_length` columns are used.
        cache (`Cache`, *optional*):
            A `DynamicCache` built from this config; it carries every unit's last hidden state.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if attention_mask is not None:
            attention_mask = attention_mask[:, -inputs_embeds.shape[1] :]
            if bool(attention_mask.all()):
                attention_mask = None

        hidden_states = inputs_embeds
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            if i > 0:
                hidden_states = self.dropout(hidden_states)
            hidden_states = layer(hidden_states, attention_mask=attention_mask, cache=cache if use_cache else None)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=all_hidden_states,
        )


class HundredPageRNNForCausalLM(HundredPageRNNPreTrainedModel, GenerationMixin):
    """The RNN language model (book §3.4): logits at t are `fc(h_{L-1}[t])`, `fc` (here `lm_head`) with a bias."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: HundredPageRNNConfig):
        super().__init__(config)
        self.model = HundredPageRNNModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Targets for next-token prediction; shifted inside the model, `-100` is ignored.
        logits_to_keep (`int` or `torch.Tensor`, *optional*):
            Compute logits only for the last `logits_to_keep` positions (0 = all).
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states
        )


def last_token_indices(input_ids, attention_mask, pad_token_id, seq_len, device):
    """Index of each row's last real token, for left or right padding (book §5.6 pools the last token).

    Uses `attention_mask` when given, else the rightmost token that is not `pad_token_id`.
    """
    positions = torch.arange(seq_len, device=device)
    if attention_mask is not None:
        return (positions * attention_mask.to(device=device, dtype=positions.dtype)).argmax(-1)
    if input_ids is not None and pad_token_id is not None:
        return (positions * (input_ids != pad_token_id).to(device=device, dtype=positions.dtype)).argmax(-1)
    return torch.full((1,), seq_len - 1, device=device)


class HundredPageRNNForSequenceClassification(HundredPageRNNPreTrainedModel):
    """The RNN as a classifier (book §5.6): a linear `score` head on the last real token's hidden state."""

    def __init__(self, config: HundredPageRNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = HundredPageRNNModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutputWithPast:
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        logits = self.score(outputs.last_hidden_state)
        batch_size, seq_len = logits.shape[:2]
        if attention_mask is None and self.config.pad_token_id is None and batch_size != 1:
            raise ValueError("Pass attention_mask or set config.pad_token_id to classify padded batches.")
        last = last_token_indices(input_ids, attention_mask, self.config.pad_token_id, seq_len, logits.device)
        pooled_logits = logits[torch.arange(batch_size, device=logits.device), last]

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled_logits, config=self.config)

        return SequenceClassifierOutputWithPast(
            loss=loss, logits=pooled_logits, cache=outputs.cache, hidden_states=outputs.hidden_states
        )


__all__ = [
    "HundredPageRNNPreTrainedModel",
    "HundredPageRNNModel",
    "HundredPageRNNForCausalLM",
    "HundredPageRNNForSequenceClassification",
]
