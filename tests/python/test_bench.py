"""`python -m gemmconv bench`: the GEMM-floor arithmetic, the layer sets, argument checking, the tables, JSON and
chart, the timer, and the CPU smoke run (the GPU paths run on the GPU machine: scripts/gpu_full.sh)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import PYTHON_DIR, REPO_ROOT

from gemmconv.bench import benchmark, report
from gemmconv.bench.layersets import (LAYER_SETS, conv, conv_flops, gemm_flops, gemm_shapes, output_size,
                                      parse_sets, scaled, select_layers)

GPU = torch.cuda.is_available()


def _layer(set_name, name):
    return next(layer for layer in LAYER_SETS[set_name][2] if layer.name == name)


# ----------------------------------------------------------------------------------------------------------------
# GEMM floor arithmetic, checked against values worked out by hand


HAND = [
    # (layer, batch, {pass: (groups, M, N, K)})
    (_layer("resnet50", "s1_3x3_64"), 32, {"forward": (1, 100352, 64, 576), "backward_data": (1, 100352, 64, 576),
                                           "backward_weight": (1, 64, 576, 100352)}),
    (_layer("resnet50", "s2_3x3_128_s2"), 32, {"forward": (1, 25088, 128, 1152),
                                               "backward_data": (1, 100352, 128, 1152),
                                               "backward_weight": (1, 128, 1152, 25088)}),
    (_layer("resnet50", "s4_1x1_2048_512"), 32, {"forward": (1, 1568, 512, 2048),
                                                 "backward_data": (1, 1568, 2048, 512),
                                                 "backward_weight": (1, 512, 2048, 1568)}),
    (_layer("resnet50", "grouped_3x3_256_g32"), 32, {"forward": (32, 25088, 8, 72),
                                                     "backward_data": (32, 25088, 8, 72),
                                                     "backward_weight": (32, 8, 72, 25088)}),
    (_layer("resnet50", "depthwise_3x3_256"), 32, {"forward": (256, 25088, 1, 9), "backward_data": (256, 25088, 1, 9),
                                                   "backward_weight": (256, 1, 9, 25088)}),
    # ConvTranspose2d(256, 128, 2, stride 2) on 16x16 -> 32x32: the data gradient of Conv2d(128, 256, 2, 2).
    (_layer("unet", "up_256_128_k2_s2"), 32, {"forward": (1, 32768, 128, 1024), "backward_data": (1, 8192, 256, 512),
                                              "backward_weight": (1, 256, 512, 8192)}),
    # grouped transposed with output padding: 10x10 -> (10-1)*2 - 2 + 2 + 1 + 1 = 20x20
    (conv("t", 64, 32, 10, 3, 2, 1, groups=4, transposed=True, output_padding=1), 2,
     {"forward": (4, 800, 8, 144), "backward_data": (4, 200, 16, 72), "backward_weight": (4, 16, 72, 200)}),
    # Conv1d(40, 250, 48, stride 2, pad 23) on 1600 frames -> 800
    (_layer("audio1d", "w2l_in_40_250_k48_s2"), 32, {"forward": (1, 25600, 250, 1920),
                                                     "backward_data": (1, 51200, 40, 12000),
                                                     "backward_weight": (1, 250, 1920, 25600)}),
    # dilated Conv1d(64, 128, 2, dilation 8) on 16000 samples -> 15992
    (_layer("audio1d", "wavenet_dil_64_128_k2_d8"), 32, {"forward": (1, 511744, 128, 128),
                                                         "backward_data": (1, 512000, 64, 256),
                                                         "backward_weight": (1, 128, 128, 511744)}),
    # Conv3d(256, 256, 3, pad 1) on 8x28x28 at batch 8
    (_layer("video3d", "c3d_conv3b_256_256"), 8, {"forward": (1, 50176, 256, 6912),
                                                  "backward_data": (1, 50176, 256, 6912),
                                                  "backward_weight": (1, 256, 6912, 50176)}),
    # Conv3d(128, 256, 3, stride 2, pad 1) on 8x28x28 -> 4x14x14
    (_layer("video3d", "r3d_3x3x3_128_256_s2"), 8, {"forward": (1, 6272, 256, 3456),
                                                    "backward_data": (1, 50176, 128, 6912),
                                                    "backward_weight": (1, 256, 3456, 6272)}),
]


@pytest.mark.parametrize("layer,batch,expected", HAND, ids=[h[0].name for h in HAND])
def test_gemm_shapes_by_hand(layer, batch, expected):
    assert gemm_shapes(layer, batch) == expected
    # The pass that runs the convolution forwards (a transposed convolution's backward_data) does exactly its
    # multiply-adds, and so does the weight gradient; the data gradient of a strided one does more (the zeros).
    assert gemm_flops(expected["backward_data" if layer.transposed else "forward"]) == conv_flops(layer, batch)
    assert gemm_flops(expected["backward_weight"]) == conv_flops(layer, batch)


def test_every_layer_is_valid_and_matches_pytorch():
    """Every layer of every set: PyTorch accepts it (at a small scale: same kernel, stride, padding, dilation and
    kind) and produces the output size the arithmetic assumes; the forward GEMM's FLOPs are the convolution's."""
    for set_name, (_, batch, layers, quick) in LAYER_SETS.items():
        assert set(quick) <= {layer.name for layer in layers}, set_name
        for layer in layers:
            direct = gemm_shapes(layer, batch)["backward_data" if layer.transposed else "forward"]
            assert gemm_flops(direct) == conv_flops(layer, batch), layer.name
            small = scaled(layer, 8)
            x, w, gy = benchmark.layer_tensors(small, 1, torch.float32, "cpu")
            y = benchmark._conv_fn(small)(x, w)
            assert tuple(y.shape) == tuple(gy.shape) == (1, small.k) + output_size(small), layer.name


def test_forward_floor_shape_computes_the_convolution():
    """The forward (groups, M, N, K) is the GEMM that computes a grouped convolution: unfold + bmm of exactly that
    shape gives F.conv2d's result."""
    layer = conv("g", 8, 12, 9, 3, 2, 1, groups=4)
    n = 3
    x, w, _ = benchmark.layer_tensors(layer, n, torch.float64, "cpu")
    g, m, nn, k = gemm_shapes(layer, n)["forward"]
    p, q = output_size(layer)
    cols = torch.nn.functional.unfold(x, 3, padding=1, stride=2)  # (n, C*R*S, P*Q), C-major
    a = cols.view(n, g, k, p * q).permute(1, 0, 3, 2).reshape(g, n * p * q, k)
    assert a.shape == (g, m, k)
    b = w.view(g, nn, k).transpose(1, 2)  # (g, K, N)
    y = torch.bmm(a, b).view(g, n, p, q, nn).permute(1, 0, 4, 2, 3).reshape(n, g * nn, p, q)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, None, 2, 1, 1, 4))


# ----------------------------------------------------------------------------------------------------------------
# Selection and argument checking


def test_select_layers():
    assert parse_sets(None) == list(LAYER_SETS)
    assert parse_sets("vgg, resnext,vgg") == ["vgg", "resnext"]
    picked = select_layers(["resnet50", "unet"], "s1_3x3_64,up_128_64_k2_s2", quick=False)
    assert [(s, layer.name) for s, layer in picked] == [("resnet50", "s1_3x3_64"), ("unet", "up_128_64_k2_s2")]
    quick = select_layers(list(LAYER_SETS), None, quick=True)
    assert {s for s, _ in quick} == set(LAYER_SETS)
    with pytest.raises(ValueError, match="nope.*valid sets: resnet50"):
        parse_sets("resnet50,nope")
    with pytest.raises(ValueError, match="unknown layer.*s4_3x3_512"):
        select_layers(["vgg"], "s4_3x3_512", quick=False)  # a resnet50 layer, not in vgg


def _main_rc(argv, capsys):
    rc = benchmark.main(argv)
    return rc, capsys.readouterr()


@pytest.mark.parametrize("argv,needle", [
    (["--sets", "nope"], "valid sets: resnet50, mobilenetv2"),
    (["--layers", "nope"], "valid layers of set(s)"),
    (["--sets", "vgg", "--layers", "s1_3x3_64"], "unknown layer(s): s1_3x3_64"),
    (["--dtypes", "fp8"], "valid dtypes: fp32, fp16, bf16, tf32"),
    (["--models", "resnet18"], "valid models: resnet50, resnet50-amp, mobilenetv2, unet"),
    (["--batch", "0"], "--batch must be a positive integer, got 0"),
    (["--min-time-ms", "-1"], "--min-time-ms must be >= 0"),
    (["--budget-s", "0"], "--budget-s must be > 0"),
])
def test_bad_arguments_exit_2(argv, needle, capsys):
    rc, cap = _main_rc(argv, capsys)
    assert rc == 2, cap
    assert needle in cap.err and "error" in cap.err, cap.err
    assert cap.out == "" or "benchmark" not in cap.out  # nothing ran


def test_bad_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        benchmark.main(["--what", "everything"])
    assert e.value.code == 2


def test_bad_layer_exits_2_through_the_command():
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    p = subprocess.run([sys.executable, "-m", "gemmconv", "bench", "--layers", "nope"], cwd=REPO_ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 2 and b"unknown layer(s): nope" in p.stderr, p


# ----------------------------------------------------------------------------------------------------------------
# Timer


def test_timer_stops_at_min_time_or_max_samples():
    import time

    t = benchmark.Timer("cpu", warmup=1, min_time_ms=6.0, max_samples=50, min_samples=3, sample_ms=0.0)
    res = t.measure(lambda: time.sleep(0.002))
    assert 3 <= res["samples"] <= 5 and res["inner"] == 1 and 1.5 < res["ms"] < 20, res
    t = benchmark.Timer("cpu", warmup=0, min_time_ms=1e9, max_samples=4)
    res = t.measure(lambda: None)
    assert res["samples"] == 4 and res["inner"] == 100, res  # a fast call: 100 calls per sample
    t = benchmark.Timer("cpu", warmup=0, min_time_ms=1.0, max_samples=10, min_samples=3, sample_ms=0.0)
    assert t.measure(lambda: time.sleep(0.003))["samples"] == 2  # one call beyond min_time: two samples do
    ms, out = t.first_call(lambda: 7)
    assert out == 7 and ms >= 0


# ----------------------------------------------------------------------------------------------------------------
# Ratios, geomeans, targets and the three outputs (synthetic GPU rows: no GPU needed)


def _gpu_result():
    rows = []
    for name, kernel, dw, g_ms in (("a3x3", [3, 3], False, 1.0), ("b1x1", [1, 1], False, 2.0),
                                   ("dw", [3, 3], True, 0.5)):
        for p in report.LAYER_PASSES:
            r = {"section": "layer", "set": "resnet50", "name": name, "dtype": "fp32", "pass": p, "batch": 32,
                 "shape": "N32", "kernel": kernel, "stride": [1, 1], "depthwise": dw, "transposed": False,
                 "gemmconv_ms": g_ms, "cudnn_ms": 2.0, "cudnn_bm_ms": 1.0, "native_ms": 4.0, "floor_ms": 0.5,
                 "solver": "im2col_gemm", "gemmconv_first_ms": 3.0, "seen_before": name == "b1x1",
                 "max_rel_diff": 1e-6}
            rows.append(report.add_ratios(r, "cuda"))
    rows.append({"section": "layer", "set": "vgg", "name": "err", "dtype": "fp16", "pass": "fwd+bwd", "batch": 32,
                 "shape": "N32", "gemmconv_error": "RuntimeError: boom", "cudnn_ms": 1.0})
    step = {"section": "step", "name": "resnet50", "dtype": "fp32", "batch": 32, "shape": "batch 32 224x224",
            "gemmconv_ms": 30.0, "cudnn_ms": 45.0, "cudnn_bm_ms": 40.0, "native_ms": 100.0,
            "gemmconv_peak_mib": 1000.0, "cudnn_bm_peak_mib": 1000.0, "gemmconv_first_ms": 900.0}
    rows.append(report.add_ratios(step, "cuda"))
    rows.append({"section": "step", "name": "resnet50", "dtype": "amp", "shape": "-", "skipped": "because"})
    result = {"meta": {"header": "synthetic", "device": "cuda", "notes": ["a note"]}, "rows": rows}
    result["summary"] = report.summarize(rows, "cuda")
    result["targets"] = report.targets(rows)
    return result


def test_ratios_and_geomeans():
    result = _gpu_result()
    r = next(r for r in result["rows"] if r.get("name") == "b1x1" and r["pass"] == "forward")
    assert r["gemmconv_over_cudnn_best"] == 2.0 and r["gemmconv_over_cudnn"] == 1.0
    assert r["gemmconv_over_cudnn_bm"] == 2.0 and r["native_over_gemmconv"] == 2.0 and r["gemmconv_over_floor"] == 4.0
    err = next(r for r in result["rows"] if r.get("name") == "err")
    assert "gemmconv_over_cudnn" not in err  # no gemmconv time, no ratio
    s = next(s for s in result["summary"] if s["set"] == "resnet50" and s["pass"] == "fwd+bwd")
    assert s["layers"] == 3
    assert math.isclose(s["gemmconv_over_cudnn_bm"], (1.0 * 2.0 * 0.5) ** (1 / 3), rel_tol=1e-3)
    assert report.geomean([None, 0, 4.0, 1.0]) == 2.0 and report.geomean([]) is None


def test_targets():
    t = {x["target"]: x for x in _gpu_result()["targets"]}
    geo = t["fp32 ResNet-50 layer set, gemmconv / cuDNN"]
    assert math.isclose(geo["measured"], 1.0, rel_tol=1e-3) and geo["met"] is False and geo["layers"] == 3
    assert t["fp32 3x3 stride-1 layers, gemmconv / cuDNN"]["measured"] == 1.0  # a3x3 only (dw is depthwise)
    assert t["fp32 depthwise layers, gemmconv / cuDNN"]["measured"] == 0.5
    assert t["fp32 depthwise layers, gemmconv / cuDNN"]["met"] is True
    assert t["fp32 non-Winograd layers, gemmconv / GEMM floor"]["measured"] == 4.0
    assert t["resnet50 training step fp32, gemmconv / cuDNN"]["measured"] == 0.75
    assert t["resnet50 training step fp32, gemmconv / cuDNN"]["met"] is True
    assert t["resnet50 training step fp32, peak memory gemmconv / cuDNN"]["measured"] == 1.0
    assert t["resnet50 training step amp, gemmconv / cuDNN"]["met"] is None  # not measured
    assert t["fp16 ResNet-50/MobileNetV2/ResNeXt layers, gemmconv / cuDNN"]["met"] is None


def test_markdown_json_png(tmp_path):
    result = _gpu_result()
    md = report.to_markdown(result)
    for needle in ("### resnet50 fp32 (batch 32)", "| a3x3 | N32 | forward | 1.000 | 2.000 | 1.000 | 4.000 | 0.500 |",
                   "### Geomeans per layer set, dtype and pass", "### Model training steps",
                   "| resnet50 | amp | - | skipped: because |", "NOT met", "not measured", "3.00 (seen)",
                   "| err | N32 | fwd+bwd | error |", "`gemmconv_over_floor`: gemmconv / the GEMM floor",
                   "| 30.000 | 45.000 | 40.000 | 100.000 | 0.75 | 0.67 | 0.75 | 3.33 | 900.0 | - | 870.0 |",
                   "- gemmconv first calls, fp32: 13.5 ms beyond a later call over 6 layer passes not seen before "
                   "(largest: dw forward, 2.5 ms)"):
        assert needle in md, needle
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in lines)
    back = json.loads(report.to_json(result))
    assert back["rows"][0]["gemmconv_over_cudnn_best"] == 1.0 and back["targets"] and back["summary"]
    png = tmp_path / "chart.png"
    report.write_png(result, str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError):
        report.write_png({"meta": {"device": "cuda", "header": ""}, "rows": []}, str(tmp_path / "empty.png"))


# ----------------------------------------------------------------------------------------------------------------
# The CPU smoke run, as a user runs it


@pytest.mark.skipif(GPU, reason="a GPU is present: scripts/gpu_full.sh runs the GPU benchmark instead")
def test_cpu_smoke_run(tmp_path):
    out_md, out_json, out_png = tmp_path / "b.md", tmp_path / "b.json", tmp_path / "b.png"
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, "-m", "gemmconv", "bench", "--quick", "--models", "resnet50-amp,unet",
                        "--reps", "1", "--warmup", "0",
                        "--out", str(out_md), "--json", str(out_json), "--png", str(out_png)], cwd=REPO_ROOT,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out[-4000:]
    assert "CPU SMOKE RUN" in out
    result = json.loads(out_json.read_text())
    layers = [r for r in result["rows"] if r["section"] == "layer"]
    assert {r["set"] for r in layers} == set(LAYER_SETS)
    for r in layers:
        for k in ("gemmconv_ms", "pytorch_ms", "floor_ms", "gemmconv_over_pytorch", "gemmconv_over_floor"):
            assert r.get(k, 0) > 0, (k, r)
        if r["pass"] != "fwd+bwd":
            assert r["gemmconv_routed"] is True and r["max_rel_diff"] < 1e-4, r
            assert r["gemmconv_first_ms"] > 0, r
    steps = {r["name"] + "/" + r["dtype"]: r for r in result["rows"] if r["section"] == "step"}
    assert "GPU" in steps["resnet50/amp"]["skipped"]
    assert steps["unet/fp32"]["gemmconv_ms"] > 0 and steps["unet/fp32"]["gemmconv_routed"] is True
    assert {s["set"] for s in result["summary"]} == set(LAYER_SETS) | {"all sets"}
    md = out_md.read_text()
    assert "### video3d fp32 (batch 2)" in md and "### Model training steps" in md
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_classifier_flags_foreign_work():
    """The profile check's classifier is not blind: vendor conv kernels and PyTorch's own conv ops are flagged,
    batch norm and gemmconv's kernels are not."""
    from gemmconv.bench import classify_profile

    class Ev:
        def __init__(self, name, kind):
            self.name, self.device_type = name, kind

    events = [Ev("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nchw", "DeviceType.CUDA"),
              Ev("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>", "DeviceType.CUDA"),
              Ev("void gemmconv::im2col_kernel<float>(...)", "DeviceType.CUDA"),
              Ev("void at::native::elementwise_kernel<128, 2>(...) convert", "DeviceType.CUDA"),
              Ev("aten::mkldnn_convolution", "DeviceType.CPU"),
              Ev("aten::convolution", "DeviceType.CPU"),
              Ev("void at::native::conv_depthwise2d_forward_kernel<float>", "DeviceType.CUDA")]
    found = classify_profile(events)
    assert set(found["foreign_kernels"]) == {events[0].name, events[6].name}
    assert set(found["foreign_ops"]) == {"aten::mkldnn_convolution"}
    assert set(found["batchnorm_kernels"]) == {events[1].name}
    assert set(found["gemmconv_kernels"]) == {events[2].name}


def test_profile_check_runs():
    """--profile-check: one ResNet-50 training step with gemmconv on, and no convolution outside gemmconv."""
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, "-m", "gemmconv", "bench", "--profile-check", "--quick"], cwd=REPO_ROOT,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out[-4000:]
    assert "every convolution ran through gemmconv" in out, out[-3000:]


def test_gpu_mode_logic_on_cpu(monkeypatch):
    """The GPU run's bookkeeping (four modes, first calls, floors, ratios, solvers, the seen marks, targets, tables),
    exercised on the CPU: the cudnn/cudnn_bm/native modes only flip PyTorch's flags, so on CPU tensors they all run
    PyTorch's own convolution. CUDA events and memory statistics stay for the GPU machine."""
    monkeypatch.setattr(report, "modes_for", lambda device: report.GPU_MODES)
    monkeypatch.setattr(report, "ratios_for", lambda device: report.GPU_RATIOS)
    layers = [("resnet50", scaled(_layer("resnet50", "grouped_3x3_256_g32"), 8)),
              ("unet", scaled(_layer("unet", "up_128_64_k2_s2"), 8))]
    timer = benchmark.Timer("cpu", warmup=0, min_time_ms=0.0, max_samples=1, sample_ms=0.0)
    seen = set()
    logged = []
    steps = benchmark.step_rows("cpu", ["unet"], 1, 16, 16, timer, seen, logged.append)
    assert steps[0]["gemmconv_routed"] is True and steps[0]["gemmconv_first_ms"] > 0
    assert all(steps[0].get(m + "_ms", 0) > 0 for m in report.GPU_MODES), steps[0]
    assert steps[0]["native_over_gemmconv"] > 0 and steps[0]["gemmconv_over_cudnn_best"] > 0
    assert len(seen) >= 10  # the UNet's convolutions, recorded by the forward hooks
    rows = benchmark.layer_rows("cpu", layers, ["fp32"], lambda s: 2, timer, seen, logged.append)
    assert len(rows) == 8 and len(logged) == 3
    for r in rows:
        for m in report.GPU_MODES + ("floor",):
            assert r[m + "_ms"] > 0, (m, r)
        for k in report.GPU_RATIOS:
            assert r[k] > 0, (k, r)
        assert r["gemmconv_routed"] is True and r["solver"] != "none"
        if r["pass"] != "fwd+bwd":
            assert r["max_rel_diff"] < 1e-4 and r["cudnn_bm_first_ms"] > 0 and r["seen_before"] is False
    fb = next(r for r in rows if r["name"] == "grouped_3x3_256_g32" and r["pass"] == "fwd+bwd")
    assert fb["solver"].count(":") == 3  # fwd, bwd_data and bwd_weight solvers, each named with its pass
    again = benchmark.layer_rows("cpu", layers[:1], ["fp32"], lambda s: 2, timer, seen, logged.append)
    assert again[0]["seen_before"] is True
    result = {"meta": {"header": "cpu as gpu", "device": "cuda"}, "rows": steps + rows}
    result["summary"] = report.summarize(result["rows"], "cuda")
    result["targets"] = report.targets(result["rows"])
    md = report.to_markdown(result)
    assert "| up_128_64_k2_s2 | N2 C16 K8 4x4 k2x2 s2 transposed | forward |" in md, md
    assert "cudnn_bm 1st call ms" in md and "### unet fp32 (batch 2)" in md


def test_budget_leaves_out_and_lists(monkeypatch):
    """Past the deadline nothing further runs, and what was left out is named."""
    skipped = []
    pairs = [("vgg", scaled(_layer("vgg", "conv5_2_512_512"), 16))]
    timer = benchmark.Timer("cpu", warmup=0, min_time_ms=0.0, max_samples=1)
    rows = benchmark.layer_rows("cpu", pairs, ["fp32"], lambda s: 1, timer, set(), print, deadline=0.0,
                                skipped=skipped)
    steps = benchmark.step_rows("cpu", ["unet"], 1, 16, 16, timer, set(), print, deadline=0.0, skipped=skipped)
    assert rows == [] and steps == [] and skipped == ["vgg/conv5_2_512_512", "unet"]
