"""The decoder transformer of *The Hundred-Page Language Models Book*, chapter 4, as a `transformers` model.

Reads top to bottom like `modeling_llama.py`: RMSNorm (book §4.7) -> rotary embedding (§4.4) -> MLP (§4.3) ->
sparse mixture of experts (§6.1, an option) -> attention (§4.2, §4.5) -> decoder block (§4.1) -> model -> heads.
Attention goes through transformers' attention interface (sdpa by default, eager, flex, flash when installed) and
the KV cache through transformers' `Cache`.
This folder imports nothing from the rest of `hf_hundredpage`, so `trust_remote_code` users get working code.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    MoeCausalLMOutputWithPast,
    MoeModelOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_transformer import HundredPageTransformerConfig


class HundredPageRMSNorm(nn.Module):
    """RMSNorm (book §4.7): `x / sqrt(mean(x**2) + eps) * weight`; the book calls `weight` `scale`."""

    def __init__(self, hidden_size: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class HundredPageRotaryEmbedding(nn.Module):
    """Rotary position embedding (book §4.4): position `p`, pair `j` rotated by the angle `p * theta**(-2j/d)`.

    Returns `cos` and `sin` of shape `(batch, seq, head_dim)`, laid out for the pairing the config asks for:
    interleaved pairs (2j, 2j+1) as in the book, or Llama's half split (j, j + d/2).
    """

    inv_freq: torch.Tensor

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__()
        self.config = config
        self.interleaved = config.rope_interleaved
        self.register_buffer("inv_freq", self.compute_inv_freq(config), persistent=False)

    @staticmethod
    def compute_inv_freq(config: HundredPageTransformerConfig) -> torch.Tensor:
        dim = config.head_dim
        return 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        if self.interleaved:
            emb = freqs.repeat_interleave(2, dim=-1)
        else:
            emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Llama's pairing: `(x1, x2) -> (-x2, x1)` on the two halves of the head dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_interleaved(x: torch.Tensor) -> torch.Tensor:
    """The book's pairing: each pair `(a, b)` of dims (2j, 2j+1) becomes `(-b, a)`."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((-b, a), dim=-1).flatten(-2)


def apply_rotary_pos_emb(q, k, cos, sin, interleaved: bool = True, unsqueeze_dim: int = 1):
    """Rotates queries and keys: `(a, b) -> (a cos - b sin, a sin + b cos)` for every pair (book §4.4)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    rotate = rotate_interleaved if interleaved else rotate_half
    return (q * cos) + (rotate(q) * sin), (k * cos) + (rotate(k) * sin)


class HundredPageMLP(nn.Module):
    """Position-wise MLP (book §4.3): `down(act(up(x)))`, or SwiGLU-style `down(act(gate(x)) * up(x))`."""

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__()
        self.gated = config.gated_mlp
        if self.gated:
            self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self.act_fn(self.up_proj(x)))


class HundredPageSparseMoeBlock(nn.Module):
    """Sparse mixture of experts in place of the MLP (book §6.1), as in Mixtral.

    The router `gate` scores every expert for each token; the `top_k` best get the token, their softmax
    probabilities renormalised to sum to one, and the block returns the weighted sum of those experts' outputs.
    Each expert is a `HundredPageMLP`, so its `gate_proj`/`up_proj`/`down_proj` are plain `nn.Linear`s that PEFT can
    adapt and bitsandbytes can quantize. Returns `(output, router_logits)`; the logits feed the balancing loss.

    Two dispatch paths compute the same function. Plain experts are stacked on the fly and run as one
    `torch.nn.functional.grouped_mm` per projection (what transformers' `grouped_mm` experts implementation does
    with Mixtral's 3-D expert tensors; that hook itself needs those tensors, so it cannot serve `nn.Linear` experts).
    Experts that are LoRA-wrapped, quantized or otherwise not plain `nn.Linear` are called one by one on their tokens.
    """

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__()
        self.num_experts = config.num_local_experts
        self.top_k = config.num_experts_per_tok
        self.jitter_noise = config.router_jitter_noise
        self.gate = nn.Linear(config.hidden_size, self.num_experts, bias=False)
        self.experts = nn.ModuleList([HundredPageMLP(config) for _ in range(self.num_experts)])

    def route(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(tokens, hidden)` -> router logits `(tokens, experts)`, top-k weights and expert indices `(tokens, k)`."""
        router_logits = self.gate(hidden_states.to(self.gate.weight.dtype))  # the router may be kept in fp32
        routing_weights = nn.functional.softmax(router_logits, dim=-1, dtype=torch.float)
        top_k_weights, top_k_index = torch.topk(routing_weights, self.top_k, dim=-1)
        top_k_weights = top_k_weights / top_k_weights.sum(dim=-1, keepdim=True)
        return router_logits, top_k_weights, top_k_index

    def can_group(self) -> bool:
        """Whether every expert projection is a plain `nn.Linear` (no LoRA wrapper, no quantized layer) and torch has
        `grouped_mm`: then all experts run as one grouped matrix product per projection."""
        names = ("gate_proj", "up_proj", "down_proj") if self.experts[0].gated else ("up_proj", "down_proj")
        plain = all(type(getattr(expert, name)) is nn.Linear for expert in self.experts for name in names)
        return plain and hasattr(nn.functional, "grouped_mm")

    def grouped_experts(self, inputs: torch.Tensor, expert_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Every expert's MLP on its rows of `inputs` (sorted by expert, `offsets` = cumulative row counts), one
        `grouped_mm` per projection over the stacked weights: the same function as calling each expert in turn.
        With the gated MLP, `gate_proj` and `up_proj` are stacked side by side into one product, as Mixtral does."""

        def project(x: torch.Tensor, *names: str) -> torch.Tensor:
            layers = [[getattr(expert, name) for expert in self.experts] for name in names]
            weight = torch.cat([torch.stack([layer.weight for layer in group]) for group in layers], dim=1)
            out = nn.functional.grouped_mm(x.to(weight.dtype), weight.transpose(1, 2), offs=offsets)
            if layers[0][0].bias is not None:
                out = out + torch.cat([torch.stack([layer.bias for layer in group]) for group in layers], dim=1)[expert_ids]
            return out

        act_fn = self.experts[0].act_fn
        if self.experts[0].gated:
            gate, up = project(inputs, "gate_proj", "up_proj").chunk(2, dim=-1)
            return project(act_fn(gate) * up, "down_proj")
        return project(act_fn(project(inputs, "up_proj")), "down_proj")

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size, seq_len, hidden_dim = hidden_states.shape
        if self.training and self.jitter_noise > 0:
            noise = torch.empty_like(hidden_states).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
            hidden_states = hidden_states * noise
        hidden_states = hidden_states.reshape(-1, hidden_dim)
        router_logits, top_k_weights, top_k_index = self.route(hidden_states)

        # Dispatch without a Python loop over tokens: sort the (token, expert) pairs by expert, run the experts on
        # their contiguous slices of tokens, put the weighted results back in (token, k) order and sum over k.
        expert_of_pair = top_k_index.reshape(-1)
        order = expert_of_pair.argsort(stable=True)
        token_of_pair = order // self.top_k
        expert_inputs = hidden_states[token_of_pair]
        # histc counts with fixed bounds, so the grouped path never waits for the device (bincount would)
        counted = expert_of_pair.float() if expert_of_pair.device.type in ("cpu", "mps") else expert_of_pair.int()
        tokens_per_expert = torch.histc(counted, bins=self.num_experts, min=0, max=self.num_experts - 1).long()
        if self.can_group():
            offsets = tokens_per_expert.cumsum(0).to(torch.int32)
            expert_outputs = self.grouped_experts(expert_inputs, expert_of_pair[order], offsets)
        else:  # experts wrapped by PEFT or quantized: one call per expert that got tokens
            chunks = expert_inputs.split(tokens_per_expert.tolist())
            expert_outputs = torch.cat([expert(x) for expert, x in zip(self.experts, chunks, strict=True) if len(x)])
        weighted = expert_outputs * top_k_weights.reshape(-1)[order, None]
        per_pair = torch.empty_like(weighted).index_copy(0, order, weighted)
        output = per_pair.view(-1, self.top_k, hidden_dim).sum(dim=1).to(hidden_states.dtype)
        return output.reshape(batch_size, seq_len, hidden_dim), router_logits


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(batch, kv_heads, seq, d) -> (batch, kv_heads * n_rep, seq, d) for grouped-query attention."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    """The book's attention written out (§4.2): `softmax(q k^T / sqrt(d) + mask) v`."""
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)

    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask

    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class HundredPageAttention(nn.Module):
    """Causal multi-head self-attention with RoPE (book §4.5), optionally grouped-query.

    The book keeps one `W_Q`, `W_K`, `W_V` per head; here the heads of each are stacked into one `nn.Linear`
    (`q_proj` holds the book's per-head `W_Q` matrices side by side, in head order), which computes the same
    function in one matrix product and is what PEFT and bitsandbytes expect.
    """

    def __init__(self, config: HundredPageTransformerConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        self.rope_interleaved = config.rope_interleaved

        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=config.attention_bias)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=config.attention_bias)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin, self.rope_interleaved)

        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class HundredPageDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm decoder block (book §4.1): `x + attn(norm1(x))`, then `x + mlp(norm2(x))`; the MLP is a sparse
    mixture of experts (§6.1) in the blocks the config makes sparse."""

    def __init__(self, config: HundredPageTransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = HundredPageAttention(config, layer_idx)
        self.is_sparse = config.is_sparse_layer(layer_idx)
        self.mlp = HundredPageSparseMoeBlock(config) if self.is_sparse else HundredPageMLP(config)
        self.input_layernorm = HundredPageRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = HundredPageRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + self.dropout(hidden_states)

        residual = hidden_states
        hidden_states = self.mlp(self.post_attention_layernorm(hidden_states))
        if self.is_sparse:
            hidden_states, _ = hidden_states  # the router logits are recorded by `capture_outputs`
        return residual + self.dropout(hidden_states)


class HundredPageTransformerPreTrainedModel(PreTrainedModel):
    config_class = HundredPageTransformerConfig
    config: HundredPageTransformerConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HundredPageDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The routers (`mlp.gate`, not `mlp.gate_proj`) stay unquantized and in fp32 when loading in fp16: routing is
    # sensitive to precision, and bitsandbytes cannot repack a layer with as few outputs as there are experts. The
    # pattern is a regex (transformers searches it in parameter names and matches it against module names).
    _keep_in_fp32_modules = [r".*mlp\.gate(?!_)"]
    _can_record_outputs = {
        "router_logits": OutputRecorder(HundredPageSparseMoeBlock, index=1),
        "hidden_states": HundredPageDecoderLayer,
        "attentions": HundredPageAttention,
    }

    @property
    def _can_compile_fullgraph(self) -> bool:
        # The sparse block's per-expert path (PEFT, quantized experts) sizes each expert's batch on the host: a graph
        # break. Dense models compile whole.
        return not self.config.num_local_experts

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also maps every Auto class to this file's classes in `config.auto_map`, so that one saved folder serves
        `AutoModel`, `AutoModelForCausalLM` and `AutoModelForSequenceClassification` with `trust_remote_code`."""
        module = type(self).__module__.rsplit(".", 1)[-1]
        config_module = type(self.config).__module__.rsplit(".", 1)[-1]
        self.config.auto_map = {
            "AutoConfig": f"{config_module}.{type(self.config).__name__}",
            "AutoModel": f"{module}.HundredPageTransformerModel",
            "AutoModelForCausalLM": f"{module}.HundredPageTransformerForCausalLM",
            "AutoModelForSequenceClassification": f"{module}.HundredPageTransformerForSequenceClassification",
            **(getattr(self.config, "auto_map", None) or {}),
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, HundredPageRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(module.config))


class HundredPageTransformerModel(HundredPageTransformerPreTrainedModel):
    """The stack of decoder blocks over the token embeddings (book §4.1), without the output projection."""

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(
            [HundredPageDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        # The book has no final norm: an identity keeps the forward identical and the state dict free of it.
        self.norm = HundredPageRMSNorm(config.hidden_size, eps=config.rms_norm_eps) if config.final_norm else nn.Identity()
        self.rotary_emb = HundredPageRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast | MoeModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)

        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )

        hidden_states = self.dropout(inputs_embeds)
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)

        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                cache=cache,
                **kwargs,
            )

        hidden_states = self.norm(hidden_states)
        # Sparse models return Mixtral's output type, whose `router_logits` `capture_outputs` fills when asked.
        output_type = MoeModelOutputWithPast if self.config.num_local_experts else BaseModelOutputWithPast
        return output_type(last_hidden_state=hidden_states, cache=cache)


def router_z_loss_func(router_logits: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None = None):
    """ST-MoE's router z-loss: the mean over sparse blocks and real tokens of `logsumexp(router_logits)**2`, which
    keeps the router's logits small (book §6.1)."""
    z = torch.stack([logits.float().logsumexp(dim=-1).square() for logits in router_logits])  # (blocks, tokens)
    if attention_mask is None:
        return z.mean()
    mask = attention_mask.reshape(1, -1).to(device=z.device, dtype=z.dtype)
    return (z * mask).sum() / (mask.sum() * z.shape[0])


@dataclass
class HundredPageMoeCausalLMOutputWithPast(MoeCausalLMOutputWithPast):
    r"""
    router_z_loss (`torch.FloatTensor`, *optional*):
        The router z-loss, returned with `aux_loss` when `router_z_loss_coef > 0` and router logits are output.
    """

    router_z_loss: torch.FloatTensor | None = None


class HundredPageTransformerForCausalLM(HundredPageTransformerPreTrainedModel, GenerationMixin):
    """The language model (book §4.9): the decoder stack and an output projection to the vocabulary.

    The book's untied `output` parameter (shape `(E, V)`, used as `x @ output`) is `lm_head.weight.T`. With sparse
    blocks (§6.1) it follows `MixtralForCausalLM`: when router logits are output (`output_router_logits`), the
    Switch/Mixtral load-balancing `aux_loss` is returned and, with `labels`, `router_aux_loss_coef * aux_loss` (plus
    `router_z_loss_coef * router_z_loss`) is added to the language-modelling loss.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__(config)
        self.model = HundredPageTransformerModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast | HundredPageMoeCausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Targets for next-token prediction; shifted inside the model, `-100` is ignored.
        output_router_logits (`bool`, *optional*):
            Sparse models only: return the router logits and the balancing loss (defaults to the config's value).
        logits_to_keep (`int` or `torch.Tensor`, *optional*):
            Compute logits only for the last `logits_to_keep` positions (0 = all), as in `LlamaForCausalLM`.
        """
        sparse = self.config.num_local_experts > 0
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits
        if sparse:
            kwargs["output_router_logits"] = output_router_logits
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        if not sparse:
            return CausalLMOutputWithPast(
                loss=loss,
                logits=logits,
                cache=outputs.cache,
                hidden_states=outputs.hidden_states,
                attentions=outputs.attentions,
            )

        aux_loss = router_z_loss = None
        if output_router_logits:
            # The mask's last columns are this call's tokens (with a cache it also covers the earlier ones).
            seq_len = outputs.last_hidden_state.shape[1]
            mask = attention_mask[:, -seq_len:] if attention_mask is not None and attention_mask.dim() == 2 else None
            aux_loss = load_balancing_loss_func(
                outputs.router_logits, self.config.num_local_experts, self.config.num_experts_per_tok, mask
            )
            if self.config.router_z_loss_coef > 0:
                router_z_loss = router_z_loss_func(outputs.router_logits, mask)
            if labels is not None:
                loss = loss + self.config.router_aux_loss_coef * aux_loss.to(loss.device)
                if router_z_loss is not None:
                    loss = loss + self.config.router_z_loss_coef * router_z_loss.to(loss.device)

        return HundredPageMoeCausalLMOutputWithPast(
            loss=loss,
            aux_loss=aux_loss,
            router_z_loss=router_z_loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
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


class HundredPageTransformerForSequenceClassification(HundredPageTransformerPreTrainedModel):
    """The decoder as a classifier (book §5.6): a linear `score` head on the last real token's hidden state."""

    def __init__(self, config: HundredPageTransformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = HundredPageTransformerModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutputWithPast:
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
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
            loss=loss,
            logits=pooled_logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "HundredPageTransformerPreTrainedModel",
    "HundredPageTransformerModel",
    "HundredPageTransformerForCausalLM",
    "HundredPageTransformerForSequenceClassification",
]
