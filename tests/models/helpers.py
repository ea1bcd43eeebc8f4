"""Checks shared by the model test files (one thin test file per model over these helpers)."""

import torch


def tiny_inputs(vocab: int, batch: int, length: int, left_pad: tuple[int, ...] | None = None, seed: int = 0):
    """Random ids in [1, vocab) and an attention mask; row i gets `left_pad[i]` leading pad tokens (id 0)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(left_pad or ()):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids, mask


def assert_cached_greedy_equals_uncached(model, vocab: int, new_tokens: int = 12):
    """Greedy decoding with the cache gives the same tokens as re-running the whole sequence each step, and each
    cached step's logits equal the full forward's logits at that position."""
    ids, mask = tiny_inputs(vocab=vocab, batch=3, length=7, left_pad=(0, 2, 4))
    kwargs = dict(attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert cached.shape[1] == ids.shape[1] + new_tokens

    full_mask = torch.cat([mask, torch.ones(3, new_tokens, dtype=mask.dtype)], 1)
    with torch.no_grad():
        full = model(cached, attention_mask=full_mask).logits
        out = model(cached[:, :7], attention_mask=full_mask[:, :7], use_cache=True)
        steps = [out.logits]
        for t in range(7, cached.shape[1]):
            out = model(cached[:, t : t + 1], attention_mask=full_mask[:, : t + 1], cache=out.cache, use_cache=True)
            steps.append(out.logits)
    real = full_mask[..., None].bool()
    torch.testing.assert_close(torch.cat(steps, 1).masked_fill(~real, 0), full.masked_fill(~real, 0), rtol=1e-5, atol=1e-5)


def assert_left_padding_invariant(model, vocab: int):
    """A left-padded row gives the same logits for its real tokens, and the same greedy continuation, as the
    row alone without padding."""
    ids, mask = tiny_inputs(vocab=vocab, batch=2, length=8, left_pad=(0, 3))
    alone = ids[1:, 3:]
    with torch.no_grad():
        padded_logits = model(ids, attention_mask=mask).logits[1:, 3:]
        alone_logits = model(alone).logits
    torch.testing.assert_close(padded_logits, alone_logits, rtol=1e-5, atol=1e-5)
    greedy = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    batch_out = model.generate(ids, attention_mask=mask, **greedy)
    alone_out = model.generate(alone, **greedy)
    assert torch.equal(batch_out[1:, 3:], alone_out)
