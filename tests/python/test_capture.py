"""`python -m gemmconv capture` round trips, and hostile captured trees (issue 9 defect 5, issue 10 item 3).

The fuzz test runs GEMMCONV_FUZZ_EXAMPLES cases per property (default 40, derandomized: the same cases every
run); for a long run: GEMMCONV_FUZZ_EXAMPLES=5000 PYTHONPATH=python python3 -m pytest tests/python/test_capture.py
"""

import json
import os
import signal
import stat
import subprocess
from contextlib import contextmanager

import pytest

import sysfs_fixtures as fx
from gemmconv.diagnosis import doctor, sysfs
from gemmconv.diagnosis.detect import detect

CASE_SECONDS = 10  # a case that takes longer is a hang


def run(args, home, timeout=120, **env):
    return subprocess.run([fx.CHILD_PYTHON, "-m", "gemmconv"] + list(args), cwd=home, timeout=timeout,
                          env=fx.clean_env(home, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def _comparable(data):
    """A doctor --json result without what names where the facts came from."""
    data = json.loads(json.dumps(data))
    for key in ("root", "facts", "env_source"):
        data["machine"].pop(key, None)
    data["extension"].pop("origin", None)
    data["activation"].pop("origin", None)
    return data


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    return str(d)


@pytest.mark.parametrize("name", ["rx5600xt", "rdna1_rdna2", "nvidia", "rx5600xt_nokfd_access", "nogpu"])
def test_capture_of_a_fixture_machine_gives_the_same_diagnosis(tmp_path, home, name):
    machine = fx.make(name, str(tmp_path / "machine"))
    cap = str(tmp_path / "cap")
    proc = run(["capture", cap, "--sysroot", machine], home)
    assert proc.returncode == 0, proc.stderr
    assert "doctor --sysroot {}".format(cap) in proc.stdout
    first = run(["doctor", "--json", "--sysroot", machine], home)
    second = run(["doctor", "--json", "--sysroot", cap], home)
    assert first.returncode == second.returncode, (first.stdout, second.stdout)
    assert _comparable(json.loads(second.stdout)) == _comparable(json.loads(first.stdout))
    text = run(["doctor", "--sysroot", cap], home).stdout
    assert "Verdict: " in text


def test_capture_of_this_machine_reads_back_to_the_same_diagnosis(tmp_path, home):
    cap = str(tmp_path / "cap")
    assert run(["capture", cap], home).returncode == 0
    here = run(["doctor", "--json"], home)
    there = run(["doctor", "--json", "--sysroot", cap], home, GEMMCONV_ACTIVATE="always", HSA_OVERRIDE_GFX_VERSION="9")
    # The variables of the process that reads the capture do not leak into it: the capture has its own.
    assert here.returncode == there.returncode
    assert _comparable(json.loads(there.stdout)) == _comparable(json.loads(here.stdout))
    data = json.loads(open(os.path.join(cap, sysfs.CAPTURE_FILE)).read())
    assert set(data) >= {"user", "groups", "env", "runtime", "extension", "activation", "captured"}
    assert os.path.isfile(os.path.join(cap, "proc/sys/kernel/osrelease"))


def test_capture_refuses_a_directory_in_use(tmp_path, home):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("mine")
    proc = run(["capture", str(tmp_path / "busy"), "--no-runtime"], home)
    assert proc.returncode == 2 and "not an empty directory" in proc.stderr


def test_sysroot_without_captured_facts_labels_this_machines(tmp_path, home):
    machine = fx.make("rx5600xt", str(tmp_path / "m"))
    text = run(["doctor", "--sysroot", machine], home, GEMMCONV_ACTIVATE="always").stdout
    assert "activation facts: from THIS machine, not the captured one" in text
    assert "Environment (this machine (the capture holds none))" in text
    cap = str(tmp_path / "cap")
    run(["capture", cap, "--sysroot", machine], home)
    with open(os.path.join(cap, sysfs.CAPTURE_FILE)) as f:
        data = json.load(f)
    data["env"] = {"HSA_OVERRIDE_GFX_VERSION": "10.3.0"}
    data["activation"] = {"policy": "auto", "source": "/home/u/.config/gemmconv/activate", "pth_files": []}
    with open(os.path.join(cap, sysfs.CAPTURE_FILE), "w") as f:
        json.dump(data, f)
    out = json.loads(run(["doctor", "--json", "--sysroot", cap], home, GEMMCONV_ACTIVATE="never").stdout)
    assert out["activation"]["origin"] == "captured" and out["activation"]["policy"] == "auto"
    assert out["machine"]["env"] == {"HSA_OVERRIDE_GFX_VERSION": "10.3.0"}
    assert out["gpus"][0]["override"] == "10.3.0"


# ---- hostile captures ----

BAD_CAPTURES = {
    "groups-int": ({"groups": 5}, "groups is 5, expected a list of text"),
    "user-list": ({"user": ["a"]}, "user is a list, expected text or null"),
    "runtime-str": ({"runtime": "2.4"}, "runtime is \"2.4\", expected an object"),
    "device-without-index": ({"runtime": {"devices": [{"name": "x", "arch": "gfx1010"}]}},
                             "runtime.devices[0] has no 'index'"),
    "arch-list-mixed": ({"runtime": {"arch_list": ["gfx1010", 3]}}, "runtime.arch_list[1] is 3"),
    "kfd-access-str": ({"kfd_access": "yes"}, "kfd_access is \"yes\", expected true or false or null"),
    "extension-archs": ({"extension": {"built": True, "archs": "gfx1010"}}, "extension.archs is \"gfx1010\""),
    "unknown": ({"colour": "blue"}, "unknown field colour"),
}


@pytest.mark.parametrize("name", sorted(BAD_CAPTURES))
def test_bad_capture_fields_are_reported(tmp_path, name):
    bad, said = BAD_CAPTURES[name]
    root = fx.make("rx5600xt", str(tmp_path / "t"))
    with open(os.path.join(root, sysfs.CAPTURE_FILE), "w") as f:
        json.dump(bad, f)
    diag = doctor.diagnose(root, probe=False)
    messages = [f.message for _, f in diag.findings if f.severity == "warning"]
    assert any(said in m and m.startswith(sysfs.CAPTURE_FILE) for m in messages), messages
    assert json.dumps(diag.to_dict())


@pytest.mark.parametrize("raw", [b"[" * 200000, b'{"a":' * 100 + b"1" + b"}" * 100, b"\xff\xfe\x00junk",
                                 b"1" * 5000, b" " * (sysfs.MAX_CAPTURE + 10)])
def test_unreadable_captures_are_ignored_and_said(tmp_path, raw):
    root = fx.make("rx5600xt", str(tmp_path / "t"))
    with open(os.path.join(root, sysfs.CAPTURE_FILE), "wb") as f:
        f.write(raw)
    with _deadline():
        report = detect(root, env={})
    assert any(f.message.startswith(sysfs.CAPTURE_FILE) for f in report.findings)


@contextmanager
def _deadline(seconds=CASE_SECONDS):
    def hang(signum, frame):
        raise TimeoutError("took longer than {} s: a hang".format(seconds))
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_fifos_are_never_opened(tmp_path, home):
    root = fx.make("rx5600xt", str(tmp_path / "t"))
    for rel in ("sys/bus/pci/devices/0000:03:00.0/class", "sys/class/kfd/kfd/topology/nodes/1/properties",
                "proc/sys/kernel/osrelease", "opt/rocm/.info/version", sysfs.CAPTURE_FILE):
        os.remove(os.path.join(root, rel))
        os.mkfifo(os.path.join(root, rel))
    with _deadline():
        diag = doctor.diagnose(root, probe=False)
    assert any("not a readable regular file" in f.message for _, f in diag.findings)
    proc = run(["doctor", "--sysroot", root], home, timeout=60)
    assert "Traceback" not in proc.stderr and "Verdict:" in proc.stdout
    cap = str(tmp_path / "cap")
    assert run(["capture", cap, "--sysroot", root], home, timeout=60).returncode == 0
    assert not os.path.exists(os.path.join(cap, "proc/sys/kernel/osrelease"))


def test_device_nodes_and_links_to_them_are_never_opened(tmp_path):
    root = fx.make("rx5600xt", str(tmp_path / "t"))
    target = os.path.join(root, "proc/sys/kernel/osrelease")
    os.remove(target)
    try:
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is: endless
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    props = os.path.join(root, "sys/class/kfd/kfd/topology/nodes/1/properties")
    os.remove(props)
    os.symlink("/dev/zero", props)
    with _deadline():
        assert sysfs.read_bytes(target) is None and sysfs.read_bytes(props) is None
        report = detect(root, env={})
    assert report.facts.kernel is None and report.gpus


def test_reads_are_capped(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * (sysfs.MAX_READ * 3))
    assert len(sysfs.read_bytes(str(path))) == sysfs.MAX_READ


# ---- fuzz ----

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis is not installed (apt install "
                                                      "python3-hypothesis)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("GEMMCONV_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)
fields = st.sampled_from(sorted(sysfs.CAPTURE_SCHEMA[1]) + ["devices", "x"])
runtime_like = st.fixed_dictionaries({}, optional={
    "torch_version": json_values, "hip_version": json_values, "arch_list": json_values,
    "gpu_available": json_values, "error": json_values,
    "devices": st.lists(st.dictionaries(st.sampled_from(["index", "name", "arch", "pci_bus_id", "x"]),
                                        json_values, max_size=5), max_size=3)})
captures = st.one_of(json_values, st.dictionaries(fields, json_values | runtime_like, max_size=6))

PATHS = ["sys/bus/pci/devices/0000:03:00.0/" + n for n in ("class", "vendor", "device", "uevent",
                                                            "subsystem_vendor")] + [
    "sys/class/kfd/kfd/topology/nodes/1/properties", "sys/class/kfd/kfd/topology/nodes/0/properties",
    "sys/class/kfd/kfd/topology/nodes/17/properties", "proc/sys/kernel/osrelease", "opt/rocm/.info/version",
    "opt/rocm-6.9/.info/version", "sys/module/amdgpu/version", "dev/kfd", sysfs.CAPTURE_FILE]
CONTENT = st.one_of(
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
    st.lists(st.tuples(st.sampled_from(["gfx_target_version", "simd_count", "vendor_id", "device_id",
                                        "location_id", "domain"]),
                       st.integers(-2 ** 70, 2 ** 70)), max_size=6).map(
        lambda kv: ("bytes", "".join("{} {}\n".format(k, v) for k, v in kv).encode())),
    st.sampled_from(["0x030000\n", "0x1002\n", "0x731f\n", "6.2.4\n", "DRIVER=amdgpu\n"]).map(
        lambda t: ("bytes", t.encode())),
    st.just(("fifo", None)), st.just(("dir", None)), st.just(("loop", None)), st.just(("devzero", None)),
    st.just(("big", None)), captures.map(lambda v: ("bytes", json.dumps(v).encode())),
)


def _plant(root, rel, kind, data):
    path = os.path.join(root, rel)
    if os.path.isdir(path) and not os.path.islink(path):
        return
    if os.path.lexists(path):
        os.remove(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "bytes":
        with open(path, "wb") as f:
            f.write(data)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.makedirs(path)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    elif kind == "big":
        with open(path, "wb") as f:
            f.write(b"7" * (sysfs.MAX_CAPTURE + 2))


_case = [0]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), CONTENT), max_size=8))
def test_fuzz_malformed_trees_never_crash_or_hang_the_doctor(tmp_path_factory, plants):
    _case[0] += 1
    root = fx.make("rdna1_rdna2", str(tmp_path_factory.mktemp("fuzz")))
    for rel, (kind, data) in plants:
        _plant(root, rel, kind, data)
    with _deadline():
        diag = doctor.diagnose(root, probe=False)
        json.dumps(diag.to_dict())
        import io
        doctor.render_text(diag, io.StringIO())


@FUZZ
@given(captures)
def test_fuzz_captures_are_validated(value):
    checked, problems = sysfs.validate_capture(value)
    # What passes validation is usable: the facts reader and the runtime view accept it.
    again, none = sysfs.validate_capture(checked)
    assert again == checked and none == []
    from gemmconv.diagnosis.runtime_probe import RuntimeInfo
    if "runtime" in checked:
        RuntimeInfo.from_dict(checked["runtime"])


def test_a_device_with_a_wrong_index_goes_whole():
    # Found by the fuzz test: a required field present but of the wrong type.
    checked, problems = sysfs.validate_capture(
        {"runtime": {"devices": [{"index": {"a": 1}, "name": "x", "arch": "gfx1010"},
                                 {"index": 1, "name": "y", "arch": "gfx1030"}]}})
    assert checked["runtime"]["devices"] == [{"index": 1, "name": "y", "arch": "gfx1030"}]
    assert any("runtime.devices[0] lacks a valid 'index'" in p for p in problems)
