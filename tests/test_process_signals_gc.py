"""A ready worker freezes what it imported and collects its young objects less often."""

import gc

import pytest
from celery.signals import worker_ready

from lookout.process_signals import WORKER_GC_THRESHOLD


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    gc.unfreeze()  # objects an in-process beat froze earlier in this session (the scheduler freezes after a read)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_ready_worker_freezes_its_startup_objects_and_raises_the_collection_threshold(restored_gc):
    assert gc.get_freeze_count() == 0

    worker_ready.send(sender=None)

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == WORKER_GC_THRESHOLD
