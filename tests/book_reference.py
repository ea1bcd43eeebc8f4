"""The book's notebook models, written from the book's equations with the notebooks' parameter names.

These are the references our models are checked against (tests only). Row-vector convention: `x @ W`.
See ../shared/BOOK_MODELS.md: `news_RNN_language_model` (ch. 3) and `news_decoder_language_model` (ch. 4).
"""

import math

import torch
from torch import nn


# ---------------------------------------------------------------- chapter 3: Elman RNN language model
class ElmanRNNUnit(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.Uh = nn.Parameter(torch.randn(emb_dim, emb_dim) / math.sqrt(emb_dim))
        self.Wh = nn.Parameter(torch.randn(emb_dim, emb_dim) / math.sqrt(emb_dim))
        self.b = nn.Parameter(torch.randn(emb_dim) * 0.1)

    def forward(self, x, h):
        return torch.tanh(x @ self.Wh + h @ self.Uh + self.b)


class ElmanRNN(nn.Module):
    def __init__(self, emb_dim, num_layers):
        super().__init__()
        self.emb_dim = emb_dim
        self.num_layers = num_layers
        self.rnn_units = nn.ModuleList([ElmanRNNUnit(emb_dim) for _ in range(num_layers)])

    def forward(self, x):
        batch_size, seq_len, _ = x.shape
        h_prev = [torch.zeros(batch_size, self.emb_dim, dtype=x.dtype, device=x.device) for _ in range(self.num_layers)]
        outputs = []
        for t in range(seq_len):
            input_t = x[:, t]
            for l, rnn_unit in enumerate(self.rnn_units):
                h_new = rnn_unit(input_t, h_prev[l])
                h_prev[l] = h_new
                input_t = h_new
            outputs.append(input_t)
        return torch.stack(outputs, dim=1)


class RecurrentLanguageModel(nn.Module):
    def __init__(self, vocab_size, emb_dim, num_layers, pad_idx):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_idx)
        self.rnn = ElmanRNN(emb_dim, num_layers)
        self.fc = nn.Linear(emb_dim, vocab_size)

    def forward(self, x):
        return self.fc(self.rnn(self.embedding(x)))


def save_rnn_checkpoint(model: RecurrentLanguageModel, path, vocab_size, emb_dim, num_layers, pad_index):
    """What the notebook's `save_model` writes: `{prefix}_model.pth`."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "vocab_size": vocab_size,
            "emb_dim": emb_dim,
            "num_layers": num_layers,
            "pad_index": pad_index,
            "training": False,
        },
        path,
    )


# ---------------------------------------------------------------- chapter 4: decoder transformer
def rope(x, theta_base=10000.0):
    """Book §4.2: pair (2j, 2j+1) at position p rotated by p * theta_base**(-2j/d). x: (batch, seq, d)."""
    _, seq_len, emb_dim = x.size()
    pos = torch.arange(0, seq_len, dtype=torch.float32, device=x.device).unsqueeze(1)
    dim = torch.arange(0, emb_dim, 2, dtype=torch.float32, device=x.device)
    angles = pos * (1.0 / (theta_base ** (dim / emb_dim)))
    sin_angles, cos_angles = torch.sin(angles).to(x.dtype), torch.cos(angles).to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    x_rotated = torch.empty_like(x)
    x_rotated[..., 0::2] = x_even * cos_angles - x_odd * sin_angles
    x_rotated[..., 1::2] = x_even * sin_angles + x_odd * cos_angles
    return x_rotated


class RMSNorm(nn.Module):
    def __init__(self, emb_dim, epsilon=1e-8):
        super().__init__()
        self.scale = nn.Parameter(1.0 + 0.1 * torch.randn(emb_dim))
        self.epsilon = epsilon

    def forward(self, x):
        rms = torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True) + self.epsilon)
        return self.scale * x / rms


class AttentionHead(nn.Module):
    def __init__(self, emb_dim, d_h):
        super().__init__()
        self.W_Q = nn.Parameter(torch.randn(emb_dim, d_h) / math.sqrt(emb_dim))
        self.W_K = nn.Parameter(torch.randn(emb_dim, d_h) / math.sqrt(emb_dim))
        self.W_V = nn.Parameter(torch.randn(emb_dim, d_h) / math.sqrt(emb_dim))
        self.d_h = d_h

    def forward(self, x, mask):
        Q, K, V = rope(x @ self.W_Q), rope(x @ self.W_K), x @ self.W_V
        scores = Q @ K.transpose(-2, -1) / math.sqrt(self.d_h)
        scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.softmax(scores, dim=-1) @ V


class MultiHeadAttention(nn.Module):
    def __init__(self, emb_dim, num_heads):
        super().__init__()
        d_h = emb_dim // num_heads
        self.heads = nn.ModuleList([AttentionHead(emb_dim, d_h) for _ in range(num_heads)])
        self.W_O = nn.Parameter(torch.randn(emb_dim, emb_dim) / math.sqrt(emb_dim))

    def forward(self, x, mask):
        return torch.cat([head(x, mask) for head in self.heads], dim=-1) @ self.W_O


class MLP(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.W_1 = nn.Parameter(torch.randn(emb_dim, 4 * emb_dim) / math.sqrt(emb_dim))
        self.B_1 = nn.Parameter(torch.randn(4 * emb_dim) * 0.1)
        self.W_2 = nn.Parameter(torch.randn(4 * emb_dim, emb_dim) / math.sqrt(4 * emb_dim))
        self.B_2 = nn.Parameter(torch.randn(emb_dim) * 0.1)

    def forward(self, x):
        return torch.relu(x @ self.W_1 + self.B_1) @ self.W_2 + self.B_2


class DecoderBlock(nn.Module):
    def __init__(self, emb_dim, num_heads):
        super().__init__()
        self.norm1 = RMSNorm(emb_dim)
        self.attn = MultiHeadAttention(emb_dim, num_heads)
        self.norm2 = RMSNorm(emb_dim)
        self.mlp = MLP(emb_dim)

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class DecoderLanguageModel(nn.Module):
    def __init__(self, vocab_size, emb_dim, num_heads, num_blocks, pad_idx):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_idx)
        self.layers = nn.ModuleList([DecoderBlock(emb_dim, num_heads) for _ in range(num_blocks)])
        self.output = nn.Parameter(torch.randn(emb_dim, vocab_size) / math.sqrt(emb_dim))

    def forward(self, x):
        x = self.embedding(x)
        mask = torch.tril(torch.ones(x.shape[1], x.shape[1], device=x.device))
        for layer in self.layers:
            x = layer(x, mask)
        return x @ self.output


def save_transformer_checkpoint(model: DecoderLanguageModel, path, vocab_size, emb_dim, num_heads, num_blocks, pad_idx):
    """What the notebook's `save_model` writes: `models/{name}/{name}.pth`."""
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "model_config": {
                "vocab_size": vocab_size,
                "emb_dim": emb_dim,
                "num_heads": num_heads,
                "num_blocks": num_blocks,
                "pad_idx": pad_idx,
            },
        },
        path,
    )
