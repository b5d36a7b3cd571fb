"""Policy tests run single-threaded: their tensors are small, and on a shared 2-core machine
intra-op threads mostly wait for each other."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
