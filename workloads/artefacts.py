"""What the simulated tasks' code produces: plots, tables, fits, statistics and reports, using the stdlib only.

Each ``produce_*`` function is self-contained (its imports inside) because its source is embedded verbatim in the
code block the scripted engineer or researcher writes; the AG2 engine executes that block for real, while the
fast engine calls the same function in-process, so both engines store byte-identical files (same sha256).
"""

from collections.abc import Callable


def png_bytes(width: int, height: int, pixels: bytes) -> bytes:
    """A valid 8-bit greyscale PNG of ``pixels`` (row-major, one byte per pixel)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def produce_plot_function(params: dict) -> dict:
    """Sample the function over the range and draw it as a 96x64 line plot (PNG)."""
    import math

    width, height = 96, 64
    x_min, x_max = float(params["x_min"]), float(params["x_max"])
    names = {name: getattr(math, name) for name in ("sin", "cos", "exp", "log", "tanh", "sqrt")}
    xs = [x_min + (x_max - x_min) * i / (width - 1) for i in range(width)]
    ys = [eval(params["function"], {"__builtins__": {}}, {**names, "x": x}) for x in xs]
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    pixels = bytearray(b"\xff" * width * height)
    for column, y in enumerate(ys):
        row = height - 1 - round((y - low) / span * (height - 1))
        pixels[row * width + column] = 0
    return {params["file_name"]: png_bytes(width, height, bytes(pixels))}


def produce_fit_model(params: dict) -> dict:
    """Generate the noisy data file, fit the model by least squares and write the fitted parameters."""
    import math
    import random

    rng = random.Random(params["data_seed"])
    n, model = int(params["n_points"]), params["model"]
    truth = {"linear": lambda x: 2.5 * x + 1.0, "quadratic": lambda x: 0.8 * x * x - x + 3.0,
             "exponential": lambda x: 1.5 * math.exp(0.3 * x)}[model]
    xs = [10.0 * i / (n - 1) for i in range(n)]
    ys = [truth(x) * (1 + rng.gauss(0, 0.03)) for x in xs]
    table = "x,y\n" + "".join(f"{x:.4f},{y:.6f}\n" for x, y in zip(xs, ys))
    features = {"linear": lambda x: [1.0, x], "quadratic": lambda x: [1.0, x, x * x],
                "exponential": lambda x: [1.0, x]}[model]
    targets = [math.log(y) for y in ys] if model == "exponential" else ys
    rows = [features(x) for x in xs]
    k = len(rows[0])
    normal = [[sum(r[i] * r[j] for r in rows) for j in range(k)] + [sum(r[i] * t for r, t in zip(rows, targets))]
              for i in range(k)]
    for col in range(k):
        pivot = normal[col][col]
        normal[col] = [v / pivot for v in normal[col]]
        for other in range(k):
            if other != col:
                factor = normal[other][col]
                normal[other] = [a - factor * b for a, b in zip(normal[other], normal[col])]
    coefficients = [normal[i][k] for i in range(k)]
    if model == "exponential":
        coefficients[0] = math.exp(coefficients[0])
    report = f"model: {model}\n" + "".join(f"p{i}: {c:.6f}\n" for i, c in enumerate(coefficients))
    return {params["data_file"]: table.encode(), params["output_file"]: report.encode()}


def produce_dataset_statistic(params: dict) -> dict:
    """Generate the data file and compute the requested statistic of one column."""
    import random
    import statistics

    rng = random.Random(params["data_seed"])
    column = params["column"]
    values = [round(rng.lognormvariate(1.0, 0.5), 5) for _ in range(int(params["n_rows"]))]
    table = f"id,{column}\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    ordered = sorted(values)
    result = {"mean": lambda: statistics.fmean(values), "median": lambda: statistics.median(values),
              "standard deviation": lambda: statistics.stdev(values),
              "90th percentile": lambda: ordered[int(0.9 * (len(ordered) - 1))]}[params["statistic"]]()
    report = f"{params['statistic']} of {column}: {result:.6f}\n"
    return {params["data_file"]: table.encode(), params["output_file"]: report.encode()}


def produce_summarise_papers(params: dict) -> dict:
    """Write the literature summary report (Markdown) for the topic."""
    topic, n = params["topic"], int(params["n_papers"])
    aspects = ("observational constraints", "simulation results", "theoretical models", "systematic errors",
               "machine-learning methods", "future surveys")
    lines = [f"# Recent papers on {topic}", ""]
    for i in range(n):
        aspect = aspects[i % len(aspects)]
        lines += [f"## {i + 1}. {aspect.capitalize()} in {topic}",
                  f"Summary: the paper studies {aspect} relevant to {topic} and reports its main findings.", ""]
    return {params["report_file"]: "\n".join(lines).encode()}


def produce_generate_ideas(params: dict) -> dict:
    """The ideas file that ``record_ideas`` saves: the selected ideas with their critique."""
    import json

    topic, n = params["topic"], int(params["n_ideas"])
    ideas = [{"idea": f"Idea {i + 1}: a new test of {topic}", "critique": "feasible with public data",
              "selected": i == 0} for i in range(n)]
    return {params["ideas_file"]: json.dumps({"topic": topic, "ideas": ideas}, indent=2).encode()}


def produce_results_summary(params: dict) -> dict:
    """The researcher's closing summary of a planned run (Markdown)."""
    text = f"# Results summary\n\nTask: {params['task']}\n\nAll plan steps completed; outputs are in data/.\n"
    return {params["summary_file"]: text.encode()}


PRODUCERS: dict[str, Callable[[dict], dict]] = {
    "plot_function": produce_plot_function,
    "fit_model": produce_fit_model,
    "dataset_statistic": produce_dataset_statistic,
    "summarise_papers": produce_summarise_papers,
    "generate_ideas": produce_generate_ideas,
    "results_summary": produce_results_summary,
}
