"""The targets of issue 19 checked on the results, and the one table printed at the
end."""

BLOCK_TARGET = 0.6  # Armijo's block search per step, at most x optax's backtracking
STACK_TARGET = 6.0  # R runs in one compile, at least x the throughput of R in turn


def targets(parts: dict) -> list[dict]:
    """Each target (all of them for one GPU) with its value, `met` (`None`: not
    measured) and where the value comes from."""
    rows = []
    for model in ("mlp", "vgg11"):
        tuners = parts.get(f"speed_{model}", {}).get("tuners", {})
        blocks = {k: v for k, v in tuners.items() if k.startswith("armijo_block")}
        best = min(
            blocks, key=lambda k: blocks[k]["ratio_ours_over_optax"], default=None
        )
        value = None if best is None else blocks[best]["ratio_ours_over_optax"]
        rows.append(
            {
                "part": f"speed_{model}",
                "target": f"Armijo block search <= {BLOCK_TARGET}x optax "
                f"backtracking per step ({model})",
                "value": value,
                "where": best,
                "met": None if value is None else value <= BLOCK_TARGET,
            }
        )
    stack = parts.get("stack", {})
    for kind in ("constant", "polyak"):
        value = stack.get(kind, {}).get("throughput_ratio")
        rows.append(
            {
                "part": "stack",
                "target": f"{stack.get('runs', 8)} runs in one compile >= "
                f"{STACK_TARGET}x the throughput of one by one ({kind}, mlp)",
                "value": value,
                "where": kind,
                "met": None if value is None else value >= STACK_TARGET,
            }
        )
    return rows


def _verdict(met) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def _speed_rows(part: str, result: dict, checked: dict) -> list[tuple]:
    rows = []
    for name, r in result["tuners"].items():
        value = (
            f"{r['ratio_ours_over_optax']:.2f}x ({r['ours_ms_per_step']:.3g} against "
            f"{r['optax_ms_per_step']:.3g} ms)"
        )
        if "evals_per_step" in r:
            value += (
                f", {r['evals_per_step']:.1f} evals in {r['rounds_per_step']:.1f} "
                f"rounds against {r['optax_evals_per_step']:.1f}"
            )
        if not r["finite"]:
            value += ", DIVERGED"
        target = checked.get((part, name), "")
        rows.append((part, f"{name} / {r['optax']} per step", value, target))
    return rows


def _part_rows(part: str, result: dict, checked: dict) -> list[tuple]:
    if "error" in result:
        return [(part, "failed", result["error"], "")]
    if "skipped" in result:
        return [(part, "skipped", result["skipped"], "")]
    if part.startswith("speed_"):
        return _speed_rows(part, result, checked)
    if part == "resnet34":
        return [
            (part, "step (Constant)", f"{result['step_ms']:.4g} ms", ""),
            (
                part,
                "Hessian-vector product",
                f"{result['product_ms']:.4g} ms ({result['product_over_step']:.2f} "
                "steps)",
                "",
            ),
        ]
    if part == "stack":
        return [
            (
                part,
                f"{kind}: {result['runs']} runs in one compile / one by one",
                f"{result[kind]['throughput_ratio']:.2f}x "
                f"({result[kind]['stacked_runs_per_s']:.3g} against "
                f"{result[kind]['sequential_runs_per_s']:.3g} runs/s)",
                checked.get((part, kind), ""),
            )
            for kind in ("constant", "polyak")
        ]
    if part == "tracking":
        return [
            (
                part,
                f"Polyak-GD, {result['estimator']} {result['tol']:g} every "
                f"{result['every']} steps",
                f"{result['overhead']:+.0%} over training alone "
                f"({result['products_per_measurement']:.1f} products a measurement)",
                "",
            )
        ]
    return [
        (
            part,
            f"{', '.join(result['models'])} on {result['subset']} Fashion-MNIST "
            f"images at 32x32, {result['steps']} steps",
            f"claims hold: {result['claims_held']} of {result['claims_checked']}",
            "",
        ),
        (part, "report", result["report"], ""),
    ]


def table(results: dict) -> str:
    """The table of every part's numbers, the targets met or not, and each part's
    time against its budget."""
    checked = {
        (t["part"], t["where"]): f"{t['target'].split(' (')[0]}: {_verdict(t['met'])}"
        for t in results["targets"]
        if t["where"] is not None
    }
    rows = [("part", "measured", "value", "target")]
    for part, result in results["parts"].items():
        rows += _part_rows(part, result, checked)
    for part, result in results["parts"].items():
        rows.append(
            (
                part,
                "time",
                f"{result['seconds']:.0f} s of {result['budget_s']:.0f} s",
                "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3]
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    meta = results["meta"]
    device = meta["device"]
    head = (
        f"benchmarks.device, {meta['size']} size, on {device['kind']} "
        f"({device['platform']}): {results['seconds']:.0f} s of a "
        f"{meta['budget_s']:.0f} s budget"
    )
    missing = [t["target"] for t in results["targets"] if t["met"] is None]
    tail = [f"not measured: {t}" for t in missing]
    return "\n".join([head, "", *[line.rstrip() for line in lines], *tail])
