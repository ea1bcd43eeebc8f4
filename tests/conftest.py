"""Fixtures shared across test files."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two threads are ~100x slower.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`; the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
