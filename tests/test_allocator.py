import resource

import pytest
import torch

from skcfae.nn import _allocator
from skcfae.nn._allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(_allocator._LIBC is None, reason="glibc only")


def _faults_of_a_fresh_64mb_buffer() -> int:
    torch.ones(16 * 2**20)  # allocate, touch and free once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_large_buffers_are_reused_without_page_faults_inside_only():
    outside = _faults_of_a_fresh_64mb_buffer()
    with reuse_freed_memory():
        inside = _faults_of_a_fresh_64mb_buffer()
    after = _faults_of_a_fresh_64mb_buffer()
    # 64 MB of fresh 4 KiB pages is 16,384 faults (fewer with transparent huge pages)
    assert inside < 200 < min(outside, after)


def test_nested_contexts_restore_only_at_the_outermost_exit():
    with reuse_freed_memory():
        with reuse_freed_memory():
            assert _allocator._depth == 2
        assert _allocator._depth == 1
        assert _faults_of_a_fresh_64mb_buffer() < 200
    assert _allocator._depth == 0
    with reuse_freed_memory(enabled=False):
        assert _allocator._depth == 0
