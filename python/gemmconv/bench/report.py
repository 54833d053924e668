"""The benchmark's output: ratios, geomeans, the issue's targets, Markdown, JSON and a PNG chart (no torch needed).

Rows are plain dicts. A layer row is one (set, layer, dtype, pass) with the pass "forward", "backward_data",
"backward_weight" or "fwd+bwd" and "<mode>_ms" per mode; a step row is one model training step with "<mode>_ms" and
"<mode>_peak_mib".
"""

import json
import math
from typing import Dict, List, Optional, Sequence

LAYER_PASSES = ("forward", "backward_data", "backward_weight", "fwd+bwd")
GPU_MODES = ("gemmconv", "cudnn", "cudnn_bm", "native")
CPU_MODES = ("gemmconv", "pytorch")
MODE_LABELS = {
    "gemmconv": "gemmconv",
    "cudnn": "cuDNN, cudnn.benchmark off",
    "cudnn_bm": "cuDNN, cudnn.benchmark on",
    "native": "PyTorch's fallback (cudnn off)",
    "pytorch": "PyTorch's own CPU convolution",
    "floor": "GEMM floor (torch.matmul/bmm of the pass's implicit-GEMM shape)",
}
# ratio key -> (numerator, denominator), both "<mode>" names ("cudnn_best" is the faster of cudnn and cudnn_bm).
GPU_RATIOS = {
    "gemmconv_over_cudnn_best": ("gemmconv", "cudnn_best"),
    "gemmconv_over_cudnn": ("gemmconv", "cudnn"),
    "gemmconv_over_cudnn_bm": ("gemmconv", "cudnn_bm"),
    "native_over_gemmconv": ("native", "gemmconv"),
    "gemmconv_over_floor": ("gemmconv", "floor"),
}
CPU_RATIOS = {
    "gemmconv_over_pytorch": ("gemmconv", "pytorch"),
    "gemmconv_over_floor": ("gemmconv", "floor"),
}
RATIO_HELP = {
    "gemmconv_over_cudnn_best": "gemmconv / the faster of cuDNN with benchmark off and on (below 1: faster than "
                                "cuDNN)",
    "gemmconv_over_cudnn": "gemmconv / cuDNN with cudnn.benchmark off (PyTorch's default)",
    "gemmconv_over_cudnn_bm": "gemmconv / cuDNN with cudnn.benchmark on (cuDNN's own autotuning; the issue's "
                              "yardstick)",
    "native_over_gemmconv": "PyTorch's fallback (cudnn off, today's workaround on the card) / gemmconv: the "
                            "speed-up over the workaround",
    "gemmconv_over_floor": "gemmconv / the GEMM floor (how much more than its plain GEMMs the convolution costs)",
    "gemmconv_over_pytorch": "gemmconv's CPU routing / PyTorch's own CPU convolution",
}


def modes_for(device: str) -> Sequence[str]:
    return GPU_MODES if device == "cuda" else CPU_MODES


def ratios_for(device: str) -> Dict[str, tuple]:
    return GPU_RATIOS if device == "cuda" else CPU_RATIOS


def add_ratios(row: dict, device: str, suffix: str = "_ms") -> dict:
    """Fill the ratio keys of `row` from its "<mode>_ms" times (a missing or zero time leaves the ratio out)."""
    times = {m: row.get(m + suffix) for m in list(modes_for(device)) + ["floor"]}
    cands = [t for t in (row.get("cudnn" + suffix), row.get("cudnn_bm" + suffix)) if t]
    times["cudnn_best"] = min(cands) if cands else None
    for key, (num, den) in ratios_for(device).items():
        a, b = times.get(num), times.get(den)
        if a and b:
            row[key] = round(a / b, 3)
    return row


def geomean(values) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and v > 0 and math.isfinite(float(v))]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def summarize(rows: List[dict], device: str) -> List[dict]:
    """Geomean of every ratio per (set, dtype, pass) of the layer rows, and over all sets per (dtype, pass)."""
    layer_rows = [r for r in rows if r.get("section") == "layer"]
    keys = list(ratios_for(device))
    groups = {}
    for r in layer_rows:
        for s in (r["set"], "all sets"):
            groups.setdefault((s, r["dtype"], r["pass"]), []).append(r)
    out = []
    sets = list(dict.fromkeys([r["set"] for r in layer_rows])) + ["all sets"]
    dtypes = list(dict.fromkeys(r["dtype"] for r in layer_rows))
    for s in sets:
        if s == "all sets" and len(sets) == 2:
            continue
        for dt in dtypes:
            for p in LAYER_PASSES:
                members = groups.get((s, dt, p))
                if not members:
                    continue
                row = {"section": "summary", "set": s, "dtype": dt, "pass": p, "layers": len(members)}
                for k in keys:
                    g = geomean(m.get(k) for m in members)
                    row[k] = None if g is None else round(g, 3)
                out.append(row)
    return out


def _is_3x3_s1(r: dict) -> bool:
    return r.get("kernel") == [3, 3] and r.get("stride") == [1, 1] and not r.get("depthwise") and \
        not r.get("transposed")


def targets(rows: List[dict]) -> List[dict]:
    """The issue's targets (cuDNN with benchmark on, forward+backward, batch as run), measured against this run's
    rows. A target whose rows are missing reads "not measured". These are figures to report, never assertions."""
    fb = [r for r in rows if r.get("section") == "layer" and r.get("pass") == "fwd+bwd"]
    steps = [r for r in rows if r.get("section") == "step"]
    out = []

    def add(name, value, limit, how, n):
        met = None if value is None else value <= limit
        out.append({"section": "target", "target": name, "measured": None if value is None else round(value, 3),
                    "limit": limit, "met": met, "how": how, "layers": n})

    def pick(dtype, sets=None, pred=None):
        return [r for r in fb if r["dtype"] == dtype and (sets is None or r["set"] in sets) and (pred is None or
                                                                                               pred(r))]

    sel = pick("fp32", ["resnet50"])
    add("fp32 ResNet-50 layer set, gemmconv / cuDNN", geomean(r.get("gemmconv_over_cudnn_bm") for r in sel), 0.85,
        "geomean", len(sel))
    sel = pick("fp32", None, _is_3x3_s1)
    add("fp32 3x3 stride-1 layers, gemmconv / cuDNN", max([r["gemmconv_over_cudnn_bm"] for r in sel
                                                           if r.get("gemmconv_over_cudnn_bm")] or [None],
                                                          key=lambda v: -1 if v is None else v), 0.75, "worst layer",
        len(sel))
    sel = pick("fp32", None, lambda r: "winograd" not in str(r.get("solver", "")) and not r.get("depthwise"))
    add("fp32 non-Winograd layers, gemmconv / GEMM floor", max([r["gemmconv_over_floor"] for r in sel
                                                                if r.get("gemmconv_over_floor")] or [None],
                                                               key=lambda v: -1 if v is None else v), 1.15,
        "worst layer", len(sel))
    sel = pick("fp32", None, lambda r: r.get("depthwise"))
    add("fp32 depthwise layers, gemmconv / cuDNN", max([r["gemmconv_over_cudnn_bm"] for r in sel
                                                        if r.get("gemmconv_over_cudnn_bm")] or [None],
                                                       key=lambda v: -1 if v is None else v), 1.0, "worst layer",
        len(sel))
    core = ["resnet50", "mobilenetv2", "resnext"]
    sel = pick("fp16", core)
    add("fp16 ResNet-50/MobileNetV2/ResNeXt layers, gemmconv / cuDNN",
        geomean(r.get("gemmconv_over_cudnn_bm") for r in sel), 1.0, "geomean", len(sel))
    add("fp16 ResNet-50/MobileNetV2/ResNeXt layers, gemmconv / GEMM floor",
        geomean(r.get("gemmconv_over_floor") for r in sel), 2.0, "geomean", len(sel))
    for name, dt, limit in (("resnet50", "fp32", 0.75), ("resnet50", "amp", 1.0)):
        st = [r for r in steps if r["name"] == name and r["dtype"] == dt]
        add("{} training step {}, gemmconv / cuDNN".format(name, dt),
            st[0].get("gemmconv_over_cudnn_bm") if st else None, limit, "ms/step", len(st))
    for dt in ("fp32", "amp"):
        st = [r for r in steps if r["name"] == "resnet50" and r["dtype"] == dt]
        mem = None
        if st and st[0].get("gemmconv_peak_mib") and st[0].get("cudnn_bm_peak_mib"):
            mem = st[0]["gemmconv_peak_mib"] / st[0]["cudnn_bm_peak_mib"]
        add("resnet50 training step {}, peak memory gemmconv / cuDNN".format(dt), mem, 1.1, "peak MiB", len(st))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "{:.{}f}".format(v, digits)
    return str(v)


def _table(header: List[str], lines: List[List[str]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def _first_call(r: dict, mode: str) -> str:
    v = r.get(mode + "_first_ms")
    if v is None:
        return "-"
    return "{:.2f}{}".format(v, " (seen)" if mode == "gemmconv" and r.get("seen_before") else "")


def first_call_summary(rows: List[dict]) -> List[str]:
    """Per dtype: what gemmconv's first calls cost beyond a later call, summed over the layer passes whose problem
    had not run before in the process."""
    out = []
    fresh = [r for r in rows if r.get("section") == "layer" and r.get("pass") in ("forward", "backward_data",
                                                                               "backward_weight")
             and not r.get("seen_before") and r.get("gemmconv_first_ms") is not None and r.get("gemmconv_ms")]
    for dt in dict.fromkeys(r["dtype"] for r in fresh):
        sel = [r for r in fresh if r["dtype"] == dt]
        extra = sum(r["gemmconv_first_ms"] - r["gemmconv_ms"] for r in sel)
        worst = max(sel, key=lambda r: r["gemmconv_first_ms"] - r["gemmconv_ms"])
        out.append("- gemmconv first calls, {}: {:.1f} ms beyond a later call over {} layer passes not seen before "
                   "(largest: {} {}, {:.1f} ms)".format(dt, extra, len(sel), worst["name"], worst["pass"],
                                                        worst["gemmconv_first_ms"] - worst["gemmconv_ms"]))
    return out + ([""] if out else [])


def layer_tables(rows: List[dict], device: str) -> List[str]:
    layer_rows = [r for r in rows if r.get("section") == "layer"]
    modes = list(modes_for(device))
    ratio_keys = list(ratios_for(device))
    out = []
    order = list(dict.fromkeys((r["set"], r["dtype"]) for r in layer_rows))
    for s, dt in order:
        members = [r for r in layer_rows if r["set"] == s and r["dtype"] == dt]
        out.append("### {} {} (batch {})".format(s, dt, members[0].get("batch")))
        out.append("")
        header = ["layer", "shape", "pass"] + ["{} ms".format(m) for m in modes] + ["floor ms"] + ratio_keys + \
            ["gemmconv solver", "gemmconv 1st call ms"] + (["cudnn_bm 1st call ms"] if device == "cuda" else []) + \
            ["max rel. diff"]
        lines = []
        for r in members:
            cells = [r["name"], r["shape"], r["pass"]]
            cells += [_fmt(r.get(m + "_ms")) if r.get(m + "_ms") is not None else
                      ("error" if r.get(m + "_error") else "-") for m in modes]
            cells.append(_fmt(r.get("floor_ms")))
            cells += [_fmt(r.get(k), 2) for k in ratio_keys]
            cells.append(r.get("solver") or "-")
            cells.append(_first_call(r, "gemmconv"))
            if device == "cuda":
                cells.append(_first_call(r, "cudnn_bm"))
            d = r.get("max_rel_diff")
            cells.append("-" if d is None else "{:.1e}".format(d))
            lines.append(cells)
        out += _table(header, lines)
        out.append("")
    return out


def summary_table(summary: List[dict], device: str) -> List[str]:
    if not summary:
        return []
    keys = list(ratios_for(device))
    lines = [[r["set"], r["dtype"], r["pass"], str(r["layers"])] + [_fmt(r.get(k), 2) for k in keys]
             for r in summary]
    return ["### Geomeans per layer set, dtype and pass", ""] + _table(["set", "dtype", "pass", "layers"] + keys,
                                                                        lines) + [""]


def step_table(rows: List[dict], device: str) -> List[str]:
    steps = [r for r in rows if r.get("section") == "step"]
    if not steps:
        return []
    modes = list(modes_for(device))
    keys = [k for k in ratios_for(device) if k != "gemmconv_over_floor"]
    header = ["model", "dtype", "shape"] + ["{} ms/step".format(m) for m in modes] + keys + \
        ["{} 1st step ms".format(m) for m in ("gemmconv",) + (("cudnn_bm",) if device == "cuda" else ())] + \
        ["gemmconv 1st step - ms/step"]
    if device == "cuda":
        header += ["{} peak MiB".format(m) for m in modes] + ["peak gemmconv / cudnn_bm"] + \
            ["{} 1st step peak MiB".format(m) for m in ("gemmconv", "cudnn_bm")]
    lines = []
    for r in steps:
        if r.get("skipped"):
            lines.append([r["name"], r["dtype"], r.get("shape", "-"), "skipped: " + r["skipped"]] +
                         ["-"] * (len(header) - 4))
            continue
        cells = [r["name"], r["dtype"], r["shape"]]
        cells += [_fmt(r.get(m + "_ms")) if r.get(m + "_ms") is not None else
                  ("error" if r.get(m + "_error") else "-") for m in modes]
        cells += [_fmt(r.get(k), 2) for k in keys]
        cells += [_fmt(r.get(m + "_first_ms"), 1) for m in ("gemmconv",) + (("cudnn_bm",) if device == "cuda"
                                                                           else ())]
        a, b = r.get("gemmconv_first_ms"), r.get("gemmconv_ms")
        cells.append(_fmt(a - b, 1) if a is not None and b is not None else "-")
        if device == "cuda":
            cells += [_fmt(r.get(m + "_peak_mib"), 1) for m in modes]
            a, b = r.get("gemmconv_peak_mib"), r.get("cudnn_bm_peak_mib")
            cells.append(_fmt(a / b, 2) if a and b else "-")
            cells += [_fmt(r.get(m + "_first_peak_mib"), 1) for m in ("gemmconv", "cudnn_bm")]
        lines.append(cells)
    return ["### Model training steps", ""] + _table(header, lines) + [""]


def target_table(tgts: List[dict]) -> List[str]:
    if not tgts:
        return []
    lines = [[t["target"], t["how"], str(t["layers"]), _fmt(t["measured"], 2), "<= {}".format(t["limit"]),
              "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")] for t in tgts]
    return ["### The issue's targets (cuDNN with benchmark on; figures, not assertions)", ""] + \
        _table(["target", "measure", "rows", "measured", "limit", "status"], lines) + [""]


def legend(device: str) -> List[str]:
    out = ["Columns:"]
    for m in list(modes_for(device)) + ["floor"]:
        out.append("- `{} ms`: {}.".format(m, MODE_LABELS[m]))
    for k in ratios_for(device):
        out.append("- `{}`: {}.".format(k, RATIO_HELP[k]))
    out.append("- `gemmconv solver`: the solvers gemmconv.stats() counted during the pass.")
    out.append("- `1st call ms`: wall time of the first call of the problem in the process (gemmconv: includes "
               "any find work or perf-database read; cudnn_bm: cuDNN's own benchmark search); \"(seen)\" marks a "
               "problem that already ran earlier in this process, e.g. inside a model step.")
    out.append("- `max rel. diff`: max |gemmconv - reference| / max |reference| of the pass's result, the "
               "reference being {}.".format("cuDNN (benchmark off)" if device == "cuda" else
                                            "PyTorch's own CPU convolution"))
    out.append("- pass `fwd+bwd`: forward then both gradients through autograd; its floor is the sum of the three "
               "passes' floors.")
    return out


def to_markdown(result: dict) -> str:
    meta = result["meta"]
    device = meta["device"]
    rows = result["rows"]
    out = ["## gemmconv benchmark", "", meta["header"], ""]
    for line in meta.get("notes", []):
        out.append("- " + line)
    out.append("")
    out += target_table(result.get("targets", []))
    out += step_table(rows, device)
    out += summary_table(result.get("summary", []), device)
    out += first_call_summary(rows)
    out += layer_tables(rows, device)
    out += legend(device)
    return "\n".join(out) + "\n"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=1, sort_keys=False, default=str) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# PNG


def write_png(result: dict, path: str) -> None:
    """One panel per section: each layer set (its layers' fwd+bwd ratios per dtype, log scale, a line at 1.0) and
    the model steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = result["meta"]["device"]
    rows = result["rows"]
    layer_rows = [r for r in rows if r.get("section") == "layer" and r.get("pass") == "fwd+bwd"]
    steps = [r for r in rows if r.get("section") == "step" and not r.get("skipped")]
    sets = list(dict.fromkeys(r["set"] for r in layer_rows))
    ratio_keys = (["gemmconv_over_cudnn_best", "gemmconv_over_floor", "native_over_gemmconv"] if device == "cuda"
                  else ["gemmconv_over_pytorch", "gemmconv_over_floor"])
    panels = len(sets) + (1 if steps else 0)
    if panels == 0:
        raise ValueError("nothing to plot: no layer or step rows")
    fig, axes = plt.subplots(panels, 1, figsize=(14, 3.6 * panels), squeeze=False)
    markers = {"gemmconv_over_cudnn_best": "o", "gemmconv_over_floor": "s", "native_over_gemmconv": "^",
               "gemmconv_over_pytorch": "o"}
    for ax, s in zip(axes[:, 0], sets):
        members = [r for r in layer_rows if r["set"] == s]
        names = list(dict.fromkeys(r["name"] for r in members))
        dtypes = list(dict.fromkeys(r["dtype"] for r in members))
        for di, dt in enumerate(dtypes):
            for k in ratio_keys:
                xs, ys = [], []
                for r in members:
                    if r["dtype"] == dt and r.get(k):
                        xs.append(names.index(r["name"]) + (di - (len(dtypes) - 1) / 2) * 0.15)
                        ys.append(r[k])
                if xs:
                    ax.scatter(xs, ys, marker=markers.get(k, "o"), label="{} {}".format(k, dt))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_title("{}: fwd+bwd ratios per layer (1.0 line: parity)".format(s), fontsize=9)
        ax.legend(fontsize=6, ncol=3)
        ax.grid(True, which="both", axis="y", alpha=0.3)
    if steps:
        ax = axes[-1, 0]
        labels = ["{} {}".format(r["name"], r["dtype"]) for r in steps]
        keys = [k for k in ratio_keys if k != "gemmconv_over_floor"]
        width = 0.8 / max(1, len(keys))
        for ki, k in enumerate(keys):
            vals = [r.get(k) or 0 for r in steps]
            ax.bar([i + (ki - (len(keys) - 1) / 2) * width for i in range(len(steps))], vals, width, label=k)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title("model training steps: ratios (1.0 line: parity)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(result["meta"]["header"][:160], fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.6 * panels)))
    fig.savefig(path, dpi=90)
    plt.close(fig)
