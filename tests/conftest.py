"""Test setup: Triton kernels run under the interpreter when no GPU is present.

TRITON_INTERPRET must be set before triton compiles anything, hence here, at import.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

#: tests/data holds fixtures and the scripts that made them, not tests (nor doctests).
collect_ignore_glob = ["data/*"]

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: small chunks on an oversubscribed machine run far
    faster so (the PIC's ops are chunk-sized); results are the same bytes either way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
