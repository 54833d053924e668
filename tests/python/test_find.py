"""The find step through the binding: a second process reads the perf database (no find work, same
choices), GEMMCONV_FIND=off times nothing, config() and the doctor show the database."""

import json
import os
import subprocess
import sys

import pytest

from gemmconv.diagnosis import doctor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# One training step of a small net on the CPU route: forward, input and weight gradients.
CHILD = r"""
import json, sys
sys.path.insert(0, {python_dir!r})
import torch
import torch.nn.functional as F
import gemmconv
gemmconv.enable("cpu")
torch.manual_seed(0)
x = torch.randn(2, 4, 9, 9, requires_grad=True)
w1 = torch.randn(6, 4, 3, 3, requires_grad=True)
w2 = torch.randn(5, 6, 1, 1, requires_grad=True)
y = F.conv2d(F.conv2d(x, w1, padding=1), w2)
y.square().sum().backward()
cfg = gemmconv.config()
print(json.dumps({{
    "find": gemmconv.find_stats(),
    "stats": gemmconv.stats(),
    "config": {{k: cfg[k] for k in ("find_mode", "perfdb_path", "perfdb_size")}},
    "result": [y.double().sum().item(), x.grad.double().sum().item(), w1.grad.double().sum().item()],
}}))
"""


def _child(env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    code = CHILD.format(python_dir=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reads_the_database(tmp_path):
    db = str(tmp_path / "cache" / "perfdb.txt")
    env = {"GEMMCONV_FIND": "exhaustive", "GEMMCONV_PERFDB": db}
    first = _child(env)
    assert first["config"] == {"find_mode": "exhaustive", "perfdb_path": db,
                               "perfdb_size": os.path.getsize(db)}
    assert first["find"]["finds"] >= 3  # forward of both layers and the 3x3 layer's gradients
    assert first["find"]["trials"] > 0
    assert first["find"]["database_hits"] == 0
    with open(db) as f:
        text = f.read()
    assert text.startswith("gemmconv-perfdb\t1\n")
    assert "\ntrial\t" not in text

    second = _child(env)
    assert second["find"]["finds"] == 0
    assert second["find"]["trials"] == 0
    assert second["find"]["database_hits"] >= first["find"]["finds"]
    assert second["stats"] == first["stats"]  # the same solvers ran
    assert second["result"] == first["result"]  # bit for bit: same choices, deterministic solvers


def test_find_off_times_nothing_and_writes_nothing(tmp_path):
    db = str(tmp_path / "perfdb.txt")
    run = _child({"GEMMCONV_FIND": "off", "GEMMCONV_PERFDB": db})
    assert run["find"]["trials"] == 0
    assert run["find"]["table_plans"] > 0
    assert run["config"]["find_mode"] == "off"
    assert not os.path.exists(db)


def test_a_damaged_database_is_reported_and_rebuilt(tmp_path):
    db = tmp_path / "perfdb.txt"
    db.write_bytes(b"\x00\x01 this is not a perf database\nwin\t")
    env = dict(os.environ, GEMMCONV_FIND="exhaustive", GEMMCONV_PERFDB=str(db))
    code = CHILD.format(python_dir=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("is damaged") == 1, out.stderr
    assert db.read_text().startswith("gemmconv-perfdb\t1\n")


def test_doctor_shows_the_database(tmp_path):
    db = tmp_path / "db.txt"
    info = doctor.perfdb_info({"GEMMCONV_PERFDB": str(db)})
    assert info["path"] == str(db) and not info["exists"] and info["size"] == 0
    db.write_text("gemmconv-perfdb\t1\nwin\tkey one\tim2col_gemm\t0.5\nwin\tkey two\tgemm_1x1\t0.25\n")
    info = doctor.perfdb_info({"GEMMCONV_PERFDB": str(db)})
    assert info["exists"] and info["size"] == db.stat().st_size and info["winners"] == 2
    assert doctor.perfdb_info({"XDG_CACHE_HOME": "/x/c", "HOME": "/h"})["path"] == "/x/c/gemmconv/perfdb.txt"
    assert doctor.perfdb_info({"XDG_CACHE_HOME": "rel", "HOME": "/h"})["path"] == "/h/.cache/gemmconv/perfdb.txt"
    assert doctor.perfdb_info({})["path"] is None


def test_doctor_text_has_the_database_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMMCONV_PERFDB", str(tmp_path / "none.txt"))
    assert "none.txt (not created yet)" in doctor._perfdb_line()
