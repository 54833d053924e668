"""gemmconv.enabled() blocks that overlap in several threads (issue 9, defect 9)."""

import threading

import pytest

gemmconv = pytest.importorskip("gemmconv")
pytest.importorskip("gemmconv._C", reason="the compiled extension is not built (scripts/build_ext.sh)")


def _state():
    cfg = gemmconv.config()
    return gemmconv.is_enabled("cpu"), cfg["workspace_mb"]


def _run_overlap(order):
    """Thread A enters, then B enters, then they leave in `order` ("AB": A first, not LIFO; "BA": LIFO)."""
    steps = {name: (threading.Event(), threading.Event()) for name in "AB"}  # (go_exit, entered)
    seen = {}

    def worker(name, mb):
        with gemmconv.enabled(device_types=("cpu",), workspace_mb=mb):
            seen[name] = _state()
            steps[name][1].set()
            steps[name][0].wait(10)
        steps[name][1].set()

    ta = threading.Thread(target=worker, args=("A", 64))
    tb = threading.Thread(target=worker, args=("B", 128))
    ta.start()
    assert steps["A"][1].wait(10)
    steps["A"][1].clear()
    tb.start()
    assert steps["B"][1].wait(10)
    steps["B"][1].clear()
    first, second = order
    threads = {"A": ta, "B": tb}
    steps[first][0].set()
    threads[first].join(10)
    after_first = _state()
    steps[second][0].set()
    threads[second].join(10)
    return seen, after_first


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_overlapping_blocks_end_with_the_state_from_before(order):
    gemmconv.disable("cpu")
    before = _state()
    seen, after_first = _run_overlap(order)
    assert seen["A"] == (True, 64) and seen["B"] == (True, 128)
    # The block still open keeps its own settings in force.
    assert after_first == (True, 128 if order == "AB" else 64)
    assert _state() == before and not gemmconv.is_enabled("cpu")


def test_nested_blocks_restore_in_order():
    gemmconv.disable("cpu")
    before = _state()
    with gemmconv.enabled(device_types=("cpu",), workspace_mb=32):
        with gemmconv.enabled(device_types=("cpu",), workspace_mb=16):
            assert _state() == (True, 16)
        assert _state() == (True, 32)
    assert _state() == before


def test_a_block_whose_enable_fails_changes_nothing():
    gemmconv.disable("cpu")
    before = _state()
    with pytest.raises(ValueError):
        with gemmconv.enabled(device_types=("cpu",), workspace_mb=-1):
            pass
    assert _state() == before
    with gemmconv.enabled(device_types=("cpu",)):
        pass
    assert _state() == before
