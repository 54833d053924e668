"""PyTorch's own OpInfo corpus for the conv ops: every sample gives the same result (float64) with gemmconv on as
off, and every error input raises the same exception type with a message matching PyTorch's own regex."""

import json
import os
import re
import subprocess
import sys
import types
import unittest

import pytest
import torch
import torch.nn.functional as F

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

OP_NAMES = ["nn.functional.conv1d", "nn.functional.conv2d", "nn.functional.conv3d",
            "nn.functional.conv_transpose1d", "nn.functional.conv_transpose2d", "nn.functional.conv_transpose3d"]

_cache = {}


def _unfreeze_backend_flags():
    """Importing torch's test utilities freezes torch.backends flags for the rest of the process (setting
    torch.backends.cudnn.enabled then raises); undo that so later tests and benchmarks can set them."""
    flag = "__allow_nonbracketed_mutation_flag"
    if flag in torch.backends.__dict__:
        torch.backends.__dict__[flag] = True


@pytest.fixture(autouse=True)
def _flags_stay_settable():
    yield
    _unfreeze_backend_flags()


def _conv_opinfos():
    """{name: [OpInfo, ...]} for the conv ops, imported on first use (the import is heavy and has side effects)."""
    if "ops" in _cache:
        return _cache["ops"]
    if "expecttest" not in sys.modules:
        try:
            import expecttest  # noqa: F401
        except ImportError:
            # torch's test helpers import expecttest only for a TestCase base class and a flag; Debian ships no
            # expecttest, so stand in a minimal one.
            stub = types.ModuleType("expecttest")
            stub.ACCEPT = False
            stub.TestCase = unittest.TestCase
            sys.modules["expecttest"] = stub
    try:
        from torch.testing._internal.common_methods_invocations import op_db
    except Exception as e:  # pragma: no cover - depends on the torch build
        _cache["ops"] = None
        _cache["error"] = "{}: {}".format(type(e).__name__, e)
        return None
    finally:
        _unfreeze_backend_flags()
    ops = {}
    for op in op_db:
        if op.name in OP_NAMES:
            ops.setdefault(op.name, []).append(op)
    _cache["ops"] = ops
    return ops


def _ops_for(name):
    ops = _conv_opinfos()
    if ops is None:
        pytest.skip("torch.testing._internal.common_methods_invocations cannot be imported in this torch build: "
                    + _cache.get("error", ""))
    if name not in ops:
        pytest.skip("this torch ({}) has no OpInfo named {}".format(torch.__version__, name))
    return ops[name]


def _samples(op, device, requires_grad):
    # reference_inputs (newer torch) is a superset of sample_inputs.
    if getattr(op, "reference_inputs_func", None) is not None:
        return list(op.reference_inputs(device, torch.float64, requires_grad=requires_grad))
    return list(op.sample_inputs(device, torch.float64, requires_grad=requires_grad))


def _call(op, sample):
    return op(sample.input, *sample.args, **sample.kwargs)


def _describe(sample):
    def d(v):
        if isinstance(v, torch.Tensor):
            return "T{}{}".format(list(v.shape), "" if v.dtype == torch.float64 else str(v.dtype))
        return repr(v)
    return "input={} args=({}) kwargs={{{}}}".format(d(sample.input), ", ".join(d(a) for a in sample.args),
                                                     ", ".join("{}={}".format(k, d(v))
                                                               for k, v in sample.kwargs.items()))


def _clone_sample(sample):
    def c(v):
        return v.detach().clone().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor) else v
    return c(sample.input), [c(a) for a in sample.args], {k: c(v) for k, v in sample.kwargs.items()}


@pytest.mark.parametrize("name", OP_NAMES)
def test_opinfo_samples(gc, device, name):
    failures = []
    count = 0
    for op in _ops_for(name):
        for sample in _samples(op, device, requires_grad=True):
            count += 1
            x, args, kwargs = _clone_sample(sample)
            leaves = [t for t in [x] + list(args) + list(kwargs.values())
                      if isinstance(t, torch.Tensor) and t.requires_grad]
            with gc.off():
                want = op(x, *args, **kwargs)
                gy = torch.randn_like(want)
                want_g = torch.autograd.grad(want, leaves, gy, allow_unused=True) if leaves else ()
            x2, args2, kwargs2 = _clone_sample(sample)
            leaves2 = [t for t in [x2] + list(args2) + list(kwargs2.values())
                       if isinstance(t, torch.Tensor) and t.requires_grad]
            before = gc.totals()
            try:
                with gc.on(device):
                    got = op(x2, *args2, **kwargs2)
                    got_g = torch.autograd.grad(got, leaves2, gy, allow_unused=True) if leaves2 else ()
            except Exception as e:
                failures.append("{}: raised {}: {}".format(_describe(sample), type(e).__name__,
                                                           str(e).splitlines()[0]))
                continue
            d = gc.delta(before, gc.totals())
            if d["forward"] != 1:
                failures.append("{}: forward counted {} times, expected 1 (stats delta {})".format(
                    _describe(sample), d["forward"], d))
            try:
                torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)
                for a, b in zip(got_g, want_g):
                    if b is None:
                        assert a is None
                    else:
                        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
            except AssertionError as e:
                failures.append("{}: {}".format(_describe(sample), " ".join(str(e).split())[:300]))
    assert count > 0, "no samples for {}".format(name)
    assert not failures, "{} of {} samples of {} differ with gemmconv on:\n".format(
        len(failures), count, name) + "\n".join(failures[:20])


# ----------------------------------------------------------------------------------------------------------------
# Error inputs. Each runs in a child process, so that a crash of the binding (a segfault while raising, say) is
# reported as a failure of that input instead of taking the whole test run down.


def _error_input_items(device, name):
    """[(description, call, error type, regex)] from torch's OpInfo error_inputs, or a skip reason (str)."""
    ops = _conv_opinfos()
    if ops is None:
        return "torch.testing._internal.common_methods_invocations cannot be imported: " + _cache.get("error", "")
    if name not in ops:
        return "this torch ({}) has no OpInfo named {}".format(torch.__version__, name)
    items = []
    for op in ops[name]:
        if getattr(op, "error_inputs_func", None) is None:
            continue
        for ei in op.error_inputs(device):
            s = ei.sample_input
            items.append((_describe(s), (lambda op=op, s=s: _call(op, s)), ei.error_type, ei.error_regex))
    if not items:
        return "this torch ({}) ships no error_inputs for {}".format(torch.__version__, name)
    return items


def _check_error_item(device, call, etype, regex):
    """('ok' | 'skip' | 'fail', message) for one error input, PyTorch's own behaviour first."""
    import gemmconv

    gemmconv.disable(None)
    try:
        call()
        own = None
    except Exception as e:
        own = e
    if own is None or not isinstance(own, etype) or not re.search(regex, str(own)):
        return "skip", "PyTorch itself does not raise {} matching {!r} here".format(etype.__name__, regex)
    with gemmconv.enabled(device_types=(device,)):
        try:
            call()
        except Exception as e:
            if not isinstance(e, etype):
                return "fail", "raised {} (expected {}): {}".format(type(e).__name__, etype.__name__,
                                                                    str(e).splitlines()[0])
            if not re.search(regex, str(e)):
                return "fail", "message {!r} does not match {!r}".format(str(e).splitlines()[0], regex)
            return "ok", ""
    return "fail", "no error raised (expected {} matching {!r})".format(etype.__name__, regex)


def _check_extra_case(device, case, fn):
    import gemmconv

    gemmconv.disable(None)
    try:
        fn()
        own = None
    except Exception as e:
        own = e
    if own is None:
        return "skip", "PyTorch {} itself accepts this call on {}".format(torch.__version__, device)
    with gemmconv.enabled(device_types=(device,)):
        try:
            fn()
            got = None
        except Exception as e:
            got = e
    if got is None:
        return "fail", "no error raised; PyTorch raises {}: {}".format(type(own).__name__, str(own).splitlines()[0])
    own_line = str(own).splitlines()[0]
    got_line = str(got).splitlines()[0]
    if type(got) is not type(own):
        return "fail", "raised {} ({}), PyTorch raises {} ({})".format(type(got).__name__, got_line,
                                                                      type(own).__name__, own_line)
    if case in ALTERNATIVE_WORDINGS and re.search(ALTERNATIVE_WORDINGS[case], got_line):
        return "ok", ""
    # The key words of PyTorch's message (numbers and shapes included) must appear in ours.
    words = re.findall(r"[A-Za-z]{4,}|\d+", own_line)
    missing = [w for w in words if w not in got_line]
    if len(missing) > max(1, len(words) // 4):
        return "fail", "message differs from PyTorch's:\n  gemmconv: {}\n  PyTorch:  {}".format(got_line, own_line)
    return "ok", ""


def _child_main(argv):
    """`python test_opinfo.py --child {errors,extra} DEVICE NAME START`: checks items START.. and prints one
    START line before and one RESULT line after each, so the parent can tell which one killed the process."""
    kind, device, name, first = argv[0], argv[1], argv[2], int(argv[3])
    sys.path.insert(0, PYTHON_DIR)
    if kind == "errors":
        items = _error_input_items(device, name)
        if isinstance(items, str):
            print("SKIPALL " + json.dumps(items), flush=True)
            return 0
        work = [(desc, (lambda call=call, etype=etype, regex=regex: _check_error_item(device, call, etype, regex)))
                for desc, call, etype, regex in items]
    else:
        cases = [(c, f) for c, f in _extra_error_cases(device) if name in ("*", c)]
        work = [(c, (lambda c=c, f=f: _check_extra_case(device, c, f))) for c, f in cases]
    print("COUNT {}".format(len(work)), flush=True)
    for i in range(first, len(work)):
        desc, check = work[i]
        print("START " + json.dumps({"i": i, "desc": desc}), flush=True)
        try:
            status, msg = check()
        except Exception as e:  # a failure of the check itself
            status, msg = "fail", "{}: {}".format(type(e).__name__, e)
        print("RESULT " + json.dumps({"i": i, "desc": desc, "status": status, "msg": msg}), flush=True)
    return 0


_child_cache = {}


def _child_results(kind, device, name):
    """Runs the checks in child processes, restarting after a crash; returns (skip reason or None, results)."""
    key = (kind, device, name)
    if key in _child_cache:
        return _child_cache[key]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH")) if p)
    results, first, count = {}, 0, None
    while True:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, device, name, str(first)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=900)
        out = p.stdout.decode("utf-8", "replace").splitlines()
        started = None
        for line in out:
            if line.startswith("SKIPALL "):
                _child_cache[key] = (json.loads(line[8:]), {})
                return _child_cache[key]
            if line.startswith("COUNT "):
                count = int(line[6:])
            elif line.startswith("START "):
                started = json.loads(line[6:])
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["i"]] = r
        if p.returncode == 0:
            break
        if started is None or started["i"] in results:
            raise AssertionError("the checking process failed before any check (exit {}):\n{}".format(
                p.returncode, "\n".join(out[-30:])))
        how = "signal {}".format(-p.returncode) if p.returncode < 0 else "exit {}".format(p.returncode)
        results[started["i"]] = {"i": started["i"], "desc": started["desc"], "status": "fail",
                                 "msg": "the process died ({}) during this call".format(how)}
        first = started["i"] + 1
        if count is not None and first >= count:
            break
    _child_cache[key] = (None, results)
    return _child_cache[key]


@pytest.mark.parametrize("name", OP_NAMES)
def test_opinfo_error_inputs(device, name):
    """Every OpInfo error input raises the exception type PyTorch raises, with a message matching its regex."""
    skip, results = _child_results("errors", device, name)
    if skip:
        pytest.skip(skip)
    checked = [r for r in results.values() if r["status"] != "skip"]
    if not checked:
        pytest.skip("none of this torch's error inputs for {} behave as their regex says even without gemmconv"
                    .format(name))
    failures = ["{}: {}".format(r["desc"], r["msg"]) for r in sorted(results.values(), key=lambda r: r["i"])
                if r["status"] == "fail"]
    assert not failures, "{} of {} error inputs of {} on {}:\n".format(len(failures), len(checked), name,
                                                                        device) + "\n".join(failures)


def _extra_error_cases(device):
    """Errors named in the binding's contract (the checks PyTorch makes in _convolution), beyond OpInfo's."""
    d = device
    cases = [
        ("channels_vs_groups", lambda: F.conv2d(torch.randn(1, 4, 5, 5, device=d), torch.randn(2, 4, 3, 3, device=d),
                                                groups=2)),
        ("negative_padding", lambda: torch.ops.aten.convolution(
            torch.randn(1, 2, 5, 5, device=d), torch.randn(2, 2, 3, 3, device=d), None, [1, 1], [-1, 0], [1, 1],
            False, [0, 0], 1)),
        ("zero_stride", lambda: torch.ops.aten.convolution(
            torch.randn(1, 2, 5, 5, device=d), torch.randn(2, 2, 3, 3, device=d), None, [0, 1], [0, 0], [1, 1],
            False, [0, 0], 1)),
        ("kernel_bigger_than_input", lambda: F.conv2d(torch.randn(1, 2, 2, 2, device=d),
                                                      torch.randn(2, 2, 3, 3, device=d))),
        ("weight_dim_mismatch", lambda: torch.ops.aten.convolution(
            torch.randn(1, 2, 5, device=d), torch.randn(2, 2, 3, 3, device=d), None, [1, 1], [0, 0], [1, 1],
            False, [0, 0], 1)),
        ("bias_size", lambda: F.conv2d(torch.randn(1, 2, 5, 5, device=d), torch.randn(3, 2, 3, 3, device=d),
                                       torch.randn(4, device=d))),
        ("dtype_mismatch", lambda: F.conv2d(torch.randn(1, 2, 5, 5, device=d),
                                            torch.randn(3, 2, 3, 3, device=d, dtype=torch.float64))),
        ("transposed_channels", lambda: F.conv_transpose2d(torch.randn(1, 3, 5, 5, device=d),
                                                           torch.randn(2, 3, 3, 3, device=d))),
        ("groups_not_dividing_out", lambda: F.conv2d(torch.randn(1, 4, 5, 5, device=d),
                                                     torch.randn(3, 2, 3, 3, device=d), groups=2)),
        ("output_padding_too_big", lambda: F.conv_transpose2d(torch.randn(1, 2, 4, 4, device=d),
                                                              torch.randn(2, 2, 3, 3, device=d), stride=2,
                                                              output_padding=2)),
    ]
    if d == "cuda":
        cases.append(("cpu_input_cuda_weight", lambda: F.conv2d(torch.randn(1, 2, 5, 5),
                                                                torch.randn(2, 2, 3, 3, device="cuda"))))
        cases.append(("cuda_input_cpu_bias", lambda: F.conv2d(torch.randn(1, 2, 5, 5, device="cuda"),
                                                              torch.randn(2, 2, 3, 3, device="cuda"),
                                                              torch.randn(2))))
    return cases


EXTRA_NAMES = [c[0] for c in _extra_error_cases("cuda")]

# PyTorch words some of these errors differently by version and backend (e.g. torch 1.13's CPU kernels say
# "expected scalar type Float but found Double" where its cuDNN path and torch 2.x say "Input type (...) and
# weight type (...) should be the same"); any of PyTorch's wordings is accepted for those.
ALTERNATIVE_WORDINGS = {
    "dtype_mismatch": r"Input type \(.+\) and weight type \(.+\) should be the same|expected scalar type",
    "cpu_input_cuda_weight": r"should be the same|Expected all tensors to be on the same device",
    "cuda_input_cpu_bias": r"should be the same|Expected all tensors to be on the same device",
}


@pytest.mark.parametrize("case", EXTRA_NAMES)
def test_extra_error_inputs(device, case):
    """The same exception type as PyTorch's own, and a message carrying PyTorch's wording."""
    if case not in dict(_extra_error_cases(device)):
        pytest.skip("{} needs a CUDA device".format(case))
    _, results = _child_results("extra", device, "*")
    r = [r for r in results.values() if r["desc"] == case][0]
    if r["status"] == "skip":
        pytest.skip(r["msg"])
    assert r["status"] == "ok", "{} on {}: {}".format(case, device, r["msg"])


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    sys.exit(_child_main(sys.argv[2:]))
