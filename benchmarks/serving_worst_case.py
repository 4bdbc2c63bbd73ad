"""The worst legal request of a served signature: its wall time and the growth of the serving process's peak memory.

Reads the serving limits from a run directory's ``config.json``, builds the largest request those limits allow (every
per-item bound and the per-request cost budget filled), and sends it to the SavedModel in a fresh process that does not
import the zoo (as TF Serving would load it), after a one-item request measured in the same process as the baseline.

    python -m benchmarks.serving_worst_case translation runs/translation saved_models/translation/1

The issue's target: the worst legal request stays under 1 GB of extra memory and 5 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

MEASURE = textwrap.dedent("""
    import pickle, resource, sys, time
    import tensorflow as tf
    assert "zoo" not in sys.modules
    serve = tf.saved_model.load(sys.argv[1]).signatures[sys.argv[3]]
    small, worst = pickle.load(open(sys.argv[2], "rb"))

    def timed(request):
        started = time.perf_counter()
        serve(**{k: tf.constant(v) for k, v in request.items()})
        return time.perf_counter() - started

    timed(small)  # traces and warms up
    baseline = min(timed(small) for _ in range(3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = timed(worst)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"{baseline:.4f} {seconds:.4f} {grown / 1024:.1f}")
""")


def words(rng, n_bytes: int) -> str:
    """Spanish-looking text of about ``n_bytes`` bytes (short words, so the most tokens per byte)."""
    vocabulary = ["y", "de", "la", "el", "que", "en", "los", "se", "del", "las", "un", "por", "con", "no", "su"]
    text = " ".join(rng.choice(vocabulary, size=n_bytes // 3 + 1))
    return text[:n_bytes].rstrip()


def worst_request(recipe: str, cfg: dict, rng, signature: str = "serving_default") -> tuple[dict, dict, str]:
    """(a one-item request, the worst legal request of ``signature``, what the worst one holds)."""
    s = cfg["serving"]
    if recipe in ("sentiment", "ner", "translation"):
        per_item = s.get("max_input_bytes") or s["max_input_chars"]
        if recipe == "translation":  # decoding dominates: fill the decoder-step budget with the longest texts
            limit = min(s["max_length_limit"], int(np.ceil(cfg["decode"]["length_ratio"] * s["max_source_pieces"]))
                        + cfg["decode"]["length_offset"])
            count = max(1, s["max_request_steps"] // (cfg["decode"]["beam_width"] * limit))
            text = " ".join(["y"] * s["max_source_pieces"])[:per_item]  # "y" is a whole word: one piece
            texts = np.array([text] * count, dtype=object)
            return {"text": texts[:1]}, {"text": texts}, f"{count} texts of {s['max_source_pieces']} pieces"
        count = min(s["max_batch_size"], s["max_request_bytes"] // per_item)
        if cfg["model"].get("encoder", "words") != "words":  # sentiment's pretrained encoder: fill its piece budget
            count = min(s["max_batch_size"], s["max_request_pieces"] // cfg["model"]["max_pieces"])
            per_item = min(per_item, s["max_request_bytes"] // count)
        texts = np.array([words(rng, per_item) for _ in range(count)], dtype=object)
        return {"text": texts[:1]}, {"text": texts}, f"{count} texts of {per_item} bytes"
    if recipe == "dna":
        count = min(s["max_batch_size"], s["max_request_bases"] // s["max_input_bases"])
        seqs = np.array(["".join(rng.choice(list("ACGT"), s["max_input_bases"])) for _ in range(count)], dtype=object)
        return {"sequence": seqs[:1]}, {"sequence": seqs}, f"{count} sequences of {s['max_input_bases']} bases"
    if recipe == "speech_ctc":
        samples = int(s["max_input_seconds"] * 16000)
        count = min(s["max_batch_size"], s["max_request_samples"] // samples)
        audio = (rng.standard_normal((count, samples)) * 0.1).astype(np.float32)
        lengths = np.full(count, samples, np.int32)
        return ({"audio": audio[:1], "lengths": lengths[:1]}, {"audio": audio, "lengths": lengths},
                f"{count} clips of {s['max_input_seconds']:g} s")
    if recipe == "video":
        side, frames = s["max_side"], s["max_frames"]
        count = s["max_request_pixels"] // (frames * side * side)
        if count == 0:  # the budget holds less than one longest clip at the largest side: shorten the clip
            count, frames = 1, max(1, s["max_request_pixels"] // (side * side))
        clips = rng.integers(0, 256, (min(count, s["max_batch_size"]), frames, side, side, 3), dtype=np.uint8)
        lengths = np.full(len(clips), frames, np.int32)
        return ({"frames": clips[:1, :1], "lengths": np.ones(1, np.int32)}, {"frames": clips, "lengths": lengths},
                f"{len(clips)} clips of {frames} frames at {side}x{side}")
    if recipe == "music":
        steps = s["max_generate_steps"]
        count = min(s["max_batch_size"], s["max_request_steps"] // steps)
        if signature == "generate_audio":  # synthesis dominates: fill the audio budget
            step_samples = max(1, round(16000 * 60 / (cfg["generate"]["tempo_bpm"] * cfg["data"]["steps_per_quarter"])))
            budget = int(s["max_request_audio_seconds"] * 16000) // step_samples  # steps of audio in all
            count = min(count, budget // steps)
            if count == 0:  # less than one longest piece: one shorter piece
                count, steps = 1, budget
        pitches = cfg["data"].get("num_pitches", 88)
        shape = (count, 0, pitches) if cfg["data"]["representation"] == "roll" else (count, 0)
        common = {"temperature": np.float32(1.0), "top_k": np.int32(0), "random_seed": np.int64(1)}
        small = {"seed": np.zeros((1,) + shape[1:], np.int32), "num_steps": np.int32(8), **common}
        worst = {"seed": np.zeros(shape, np.int32), "num_steps": np.int32(steps), **common}
        if cfg["data"].get("condition", "none") != "none":  # one class per piece
            small["condition"], worst["condition"] = np.zeros(1, np.int32), np.zeros(count, np.int32)
        return small, worst, f"{count} pieces of {steps} steps"
    raise SystemExit(f"unknown recipe {recipe!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("run_dir", help="the run directory holding config.json (the limits)")
    parser.add_argument("saved_model", help="an exported version directory, e.g. saved_models/translation/1")
    parser.add_argument("--signature", default="serving_default", help="e.g. music's generate_audio")
    args = parser.parse_args(argv)

    cfg = json.loads((Path(args.run_dir) / "config.json").read_text())["config"]
    small, worst, what = worst_request(args.recipe, cfg, np.random.default_rng(0), args.signature)
    requests = (Path(args.run_dir) / "worst_request.pkl").resolve()
    requests.write_bytes(pickle.dumps((small, worst)))
    out = subprocess.run([sys.executable, "-I", "-c", MEASURE, str(Path(args.saved_model).resolve()), str(requests),
                          args.signature],
                         cwd="/tmp", capture_output=True, text=True,
                         env={"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    requests.unlink()
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    baseline, seconds, megabytes = (float(v) for v in out.stdout.split()[-3:])
    print(f"{args.recipe} {args.signature}: worst legal request ({what}): {seconds:.2f} s "
          f"({seconds / baseline:.0f}x a one-item request, {baseline * 1000:.1f} ms), peak memory +{megabytes:.0f} MB")


if __name__ == "__main__":
    main()
