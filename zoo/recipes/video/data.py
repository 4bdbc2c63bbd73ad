"""Video data: procedurally rendered digit-activity clips (offline default) and UCF101 through TFDS.

No PyPI or Debian package ships labelled activity video, so the default clips are rendered from the 1,797 8x8
handwritten digits that scikit-learn bundles in its wheel (``sklearn.datasets.load_digits``, no download). Each clip
shows one bright digit doing one of ten activities over 8-16 frames, with faint drifting distractor digits, a
textured background, camera shake, Gaussian noise, random easing (speed) and random clip length.

The ten classes are five pairs, and the second class of each pair is *exactly* the time reversal of the first (the
clip's whole parameter trajectory is reversed): moving right/left, moving down/up, growing/shrinking, rotating
clockwise/counter-clockwise, appearing/vanishing. So the set of frames of a clip has the same distribution for both
classes of a pair: anything that ignores frame order (a single frame, a shuffled clip) cannot beat 50 %.

Clip ``i`` of a split is drawn from ``np.random.default_rng((seed, split id, i))``; the test split also uses digit
images the training and validation splits never see (every fifth image). Rendered splits are cached as ``.npz`` in
``<zoo cache>/video`` under a name that hashes every generator setting.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.data import fetch, files
from zoo.recipes.video.config import DataConfig

GENERATOR_VERSION = 1
DIGIT_CLASSES = ("moving_right", "moving_left", "moving_down", "moving_up", "growing", "shrinking",
                 "rotating_cw", "rotating_ccw", "appearing", "vanishing")
SPLITS = {"train": 0, "validation": 1, "test": 2}
SPRITE = 8  # side of the scikit-learn digit images


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def digit_sprites(split: str) -> np.ndarray:
    """Digit images in [0, 1], `(n, 8, 8)`: every fifth image is reserved for the test split."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    held_out = np.arange(len(images)) % 5 == 0
    return images[held_out] if split == "test" else images[~held_out]


def _coverage(sprite: np.ndarray, cx, cy, scale, angle, canvas: int) -> np.ndarray:
    """Bilinear rendering of ``sprite`` at per-frame centre/scale/angle (`(T,)` each): coverage `(T, canvas, canvas)`.

    Each canvas pixel centre is mapped back into sprite coordinates (inverse rotation and scale); a positive angle
    turns the sprite clockwise on screen, since image y points down.
    """
    centres = np.arange(canvas, dtype=np.float32) + 0.5
    dx = centres[None, None, :] - cx[:, None, None]
    dy = centres[None, :, None] - cy[:, None, None]
    cos, sin, scale = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None], scale[:, None, None]
    u = (cos * dx + sin * dy) / scale + SPRITE / 2 - 0.5
    v = (-sin * dx + cos * dy) / scale + SPRITE / 2 - 0.5
    # A zero border of 1 before and 2 after lets clipped coordinates fall on zeros on both bilinear neighbours.
    padded = np.pad(sprite, ((1, 2), (1, 2)))
    u, v = np.clip(u, -1.0, SPRITE), np.clip(v, -1.0, SPRITE)
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    iu, iv = u0.astype(np.int32) + 1, v0.astype(np.int32) + 1
    return ((1 - fv) * ((1 - fu) * padded[iv, iu] + fu * padded[iv, iu + 1])
            + fv * ((1 - fu) * padded[iv + 1, iu] + fu * padded[iv + 1, iu + 1]))


def _target_trajectory(rng: np.random.Generator, label: int, num_frames: int, size: int) -> dict[str, np.ndarray]:
    """Per-frame centre, scale, angle and opacity of the acting digit; odd labels reverse their pair's trajectory."""
    t = np.linspace(0.0, 1.0, num_frames)
    start, stop = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)
    progress = np.clip((t - start) / (stop - start), 0.0, 1.0) ** rng.uniform(0.6, 1.6)  # random easing = speed
    ones = np.ones(num_frames)
    traj = {
        "cx": ones * rng.uniform(0.35, 0.65) * size,
        "cy": ones * rng.uniform(0.35, 0.65) * size,
        "scale": ones * rng.uniform(1.3, 1.8) * size / 32,
        "angle": ones * rng.uniform(-0.35, 0.35),
        "alpha": ones,
    }
    family = label // 2
    if family in (0, 1):  # horizontal / vertical motion over 30-50 % of the frame
        span = rng.uniform(0.3, 0.5) * size
        middle = rng.uniform(span / 2 + 0.12 * size, size - span / 2 - 0.12 * size)
        traj["cx" if family == 0 else "cy"] = middle - span / 2 + span * progress
    elif family == 2:  # growing by a factor 1.7-2.3
        traj["scale"] = rng.uniform(0.8, 1.2) * size / 32 * rng.uniform(1.7, 2.3) ** progress
    elif family == 3:  # clockwise turn of 90-200 degrees
        traj["angle"] = rng.uniform(0, 2 * np.pi) + np.deg2rad(rng.uniform(90, 200)) * progress
    else:  # fading in
        traj["alpha"] = progress
    if label % 2:
        traj = {k: v[::-1].copy() for k, v in traj.items()}
    return traj


def render_clip(rng: np.random.Generator, label: int, sprites: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """One clip of class ``label``: uint8 `(time, frame_size, frame_size, 3)`."""
    size, shake = cfg.frame_size, cfg.shake
    num_frames = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    canvas = size + 2 * shake  # camera shake = a per-frame crop window moving over a larger, still scene

    # Background: a dark colour, a gradient and a few faint rectangles, still in scene coordinates.
    ys, xs = np.mgrid[0:canvas, 0:canvas] / canvas
    direction = rng.normal(size=2)
    gradient = (direction[0] * xs + direction[1] * ys)[..., None] * rng.uniform(0.05, 0.2, 3)
    background = rng.uniform(0.0, 0.35, 3) + gradient
    for _ in range(rng.integers(0, 4)):
        y0, x0 = rng.integers(0, canvas, 2)
        h, w = rng.integers(3, canvas // 2, 2)
        background[y0:y0 + h, x0:x0 + w] += rng.uniform(-0.1, 0.1, 3)
    scene = np.broadcast_to(background, (num_frames, canvas, canvas, 3)).astype(np.float32)

    def paint(scene, sprite, colour, traj):
        cover = _coverage(sprite, traj["cx"] + shake, traj["cy"] + shake, traj["scale"], traj["angle"], canvas)
        weight = (cover * traj["alpha"][:, None, None])[..., None]
        return scene * (1 - weight) + weight * colour

    # Distractors: smaller, fainter digits drifting slowly in random directions.
    steps = np.arange(num_frames)
    for _ in range(rng.integers(0, cfg.clutter + 1)):
        velocity = rng.normal(size=2) * 0.2
        scene = paint(scene, sprites[rng.integers(len(sprites))], rng.uniform(0.3, 1.0, 3), {
            "cx": rng.uniform(0, size) + velocity[0] * steps, "cy": rng.uniform(0, size) + velocity[1] * steps,
            "scale": np.full(num_frames, rng.uniform(0.7, 1.1) * size / 32),
            "angle": np.full(num_frames, rng.uniform(-np.pi, np.pi)),
            "alpha": np.full(num_frames, rng.uniform(0.25, 0.5)),
        })
    colour = rng.uniform(0.5, 1.0, 3)
    colour[rng.integers(3)] = 1.0  # always one saturated channel: the actor stands out from the clutter
    scene = paint(scene, sprites[rng.integers(len(sprites))], colour,
                  _target_trajectory(rng, label, num_frames, size))

    offsets = rng.integers(-shake, shake + 1, size=(num_frames, 2)) + shake
    frames = np.stack([scene[i, oy:oy + size, ox:ox + size] for i, (oy, ox) in enumerate(offsets)])
    frames = frames + rng.normal(0.0, cfg.noise, frames.shape)
    return np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)


def render_split(cfg: DataConfig, split: str, count: int, progress: bool = True):
    """Renders ``count`` clips of ``split``: (concatenated frames `(sum T, S, S, 3)`, lengths, labels), balanced."""
    from tqdm.auto import tqdm

    sprites = digit_sprites(split)
    clips, labels = [], np.arange(count, dtype=np.int32) % len(DIGIT_CLASSES)
    for i in tqdm(range(count), desc=f"rendering {split} clips", disable=not progress, unit="clip"):
        clips.append(render_clip(np.random.default_rng((cfg.seed, SPLITS[split], i)), int(labels[i]), sprites, cfg))
    lengths = np.array([len(c) for c in clips], dtype=np.int32)
    return np.concatenate(clips), lengths, labels


def _split_count(cfg: DataConfig, split: str) -> int:
    return {"train": cfg.num_train, "validation": cfg.num_validation, "test": cfg.num_test}[split]


def cache_path(cfg: DataConfig, split: str) -> Path:
    """Cache file of a rendered split; the name changes with any setting that changes the clips."""
    key = {"version": GENERATOR_VERSION, "split": split, "count": _split_count(cfg, split),
           **{k: getattr(cfg, k) for k in ("frame_size", "min_frames", "max_frames", "clutter", "noise", "shake",
                                            "seed")}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return fetch.cache_dir() / "video" / f"digits-{split}-{digest}.npz"


def load_digit_split(cfg: DataConfig, split: str, progress: bool = True):
    """(concatenated frames, lengths, labels) of a digit split, rendered once and then read from the cache; a cache
    file that no longer reads whole (the zip's CRC-32 checks every array) is named, removed and rendered again."""
    path = cache_path(cfg, split)
    if path.is_file():
        try:
            with np.load(path) as cached:
                return cached["frames"], cached["lengths"], cached["labels"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            fetch.repairing(path, f"{type(e).__name__}: {e}")
            path.unlink()
    frames, lengths, labels = render_split(cfg, split, _split_count(cfg, split), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:  # written beside, renamed into place: a killed render leaves no cache
        np.savez(f, frames=frames, lengths=lengths, labels=labels)
    os.replace(tmp, path)
    return frames, lengths, labels


# ---------------------------------------------------------------------------------------------------------------
# tf.data


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def class_dirs(directory: Path) -> list[Path]:
    """The class sub-directories of a clip directory, by name."""
    if not directory.is_dir():
        raise files.FileFormatError(directory, None, "is not a directory (one sub-directory per class expected)")
    return sorted(p for p in directory.iterdir() if p.is_dir())


def list_clips(directory: Path) -> list[tuple[Path, str]]:
    """``(clip, class name)`` of every clip under ``directory/<class>/``: a video file or a sub-directory of frame
    images. A video without a decodable video stream, or a frame directory without images, is an error naming it."""
    import av

    clips = []
    for class_dir in class_dirs(directory):
        for entry in sorted(class_dir.iterdir()):
            if entry.is_dir():
                if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
                    raise files.FileFormatError(entry, None, f"a frame directory without images "
                                                             f"({', '.join(IMAGE_SUFFIXES)})")
            elif entry.suffix.lower() in VIDEO_SUFFIXES:
                try:
                    with av.open(str(entry)) as container:
                        if not container.streams.video:
                            raise ValueError("no video stream")
                except (av.error.FFmpegError, ValueError, OSError) as error:
                    raise files.FileFormatError(entry, None, f"does not decode as video ({error})") from None
            else:
                continue
            clips.append((entry, class_dir.name))
    if not clips:
        raise files.FileFormatError(directory, None, f"holds no clips (videos: {', '.join(VIDEO_SUFFIXES)}; or "
                                                     f"directories of frame images) under its class directories")
    return clips


def decode_clip(path: Path, stride: int, max_frames: int) -> np.ndarray:
    """uint8 `(time, height, width, 3)`: every ``stride``-th frame of a video (PyAV) or of a directory of images
    (in name order, PIL), at most ``max_frames`` of them."""
    if path.is_dir():
        from PIL import Image

        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[::stride][:max_frames]
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
    import av

    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % stride == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == max_frames:
                    break
    if not frames:
        raise files.FileFormatError(path, None, "decodes to no frames")
    return np.stack(frames)


def load_files(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split of the user's clip directories, decoded as the clips are read and resized to ``frame_size``."""
    names = class_names(cfg)
    clips = files.split_examples(cfg, list_clips, lambda clip: f"{clip[1]}/{clip[0].name}", split)
    for path, name in clips:
        if name not in names:
            raise files.FileFormatError(path, None, f"class {name!r} has no directory in the training directory "
                                                    f"{cfg.train} (its classes: {', '.join(names)})")
    files.report_split(cfg, split, f"{len(clips)} clips")

    def decode(path):
        return decode_clip(Path(path.decode()), cfg.frame_stride, cfg.max_frames)

    ds = tf.data.Dataset.from_tensor_slices({"path": [str(p) for p, _ in clips],
                                             "label": [names.index(n) for _, n in clips]})
    return ds.map(lambda ex: {"frames": resize_frames(tf.ensure_shape(tf.numpy_function(decode, [ex["path"]],
                                                                                        tf.uint8),
                                                                      [None, None, None, 3]), cfg.frame_size),
                              "label": tf.cast(ex["label"], tf.int32)}, num_parallel_calls=tf.data.AUTOTUNE)


def class_names(cfg: DataConfig) -> list[str]:
    """Label names of the source (UCF101's come with the TFDS builder; no download needed; the user's are the
    class directories of the training directory)."""
    if cfg.source == "files":
        names = [d.name for d in class_dirs(files.path_of(cfg, "train"))]
        if len(names) < 2:
            raise files.FileFormatError(cfg.train, None, f"needs at least two class directories, found "
                                                         f"{len(names)} ({', '.join(names)})")
        return names
    if cfg.source == "ucf101":
        import tensorflow_datasets as tfds

        builder = tfds.builder(f"ucf101/{cfg.ucf101_config}", data_dir=fetch.tfds_dir(cfg.tfds_data_dir))
        return list(builder.info.features["label"].names)
    return list(DIGIT_CLASSES)


def resize_frames(frames, size: int):
    """uint8 `(..., H, W, 3)` → uint8 `(..., size, size, 3)`; exact when the frames are already that size."""
    shape = tf.shape(frames)
    flat = tf.reshape(frames, tf.concat([[-1], shape[-3:]], 0))
    resized = tf.image.resize(tf.cast(flat, tf.float32), (size, size), antialias=True)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    return tf.reshape(resized, tf.concat([shape[:-3], [size, size, 3]], 0))


def load_ucf101(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """UCF101 clips: every ``frame_stride``-th frame, cut to max_frames, resized to ``frame_size``."""
    tfds_split = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}[split]
    ds = fetch.load_tfds(f"ucf101/{cfg.ucf101_config}", fetch.tfds_dir(cfg.tfds_data_dir), split=tfds_split)
    return ds.map(lambda ex: {"frames": resize_frames(ex["video"][::cfg.frame_stride][:cfg.max_frames],
                                                      cfg.frame_size),
                              "label": tf.cast(ex["label"], tf.int32)}, num_parallel_calls=tf.data.AUTOTUNE)


def load_split(cfg: DataConfig, split: str, progress: bool = True) -> tf.data.Dataset:
    """One split as examples ``{"frames": uint8 (time, frame_size, frame_size, 3), "label": int32}`` (an index
    into ``class_names(cfg)``); digit clips are rendered on first use and cached."""
    if cfg.source == "ucf101":
        return load_ucf101(cfg, split)
    if cfg.source == "files":
        return load_files(cfg, split)
    frames, lengths, labels = load_digit_split(cfg, split, progress)
    ragged = tf.RaggedTensor.from_row_lengths(frames, lengths.astype(np.int64))
    return tf.data.Dataset.from_tensor_slices({"frames": ragged, "label": labels})


# Order-free views of a clip, for the baselines: same frames, frame order (or all but one frame) thrown away.

def shuffle_frames(seed: int):
    """Maps (frames, label) to the clip with its frames in a random order (stateless: same order every epoch)."""

    def fn(index, clip):
        frames, label = clip
        keys = tf.random.stateless_uniform(tf.shape(frames)[:1], seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return tf.gather(frames, tf.argsort(keys)), label

    return fn


def single_frame(seed: int):
    """Maps (frames, label) to a one-frame clip holding one random frame of it."""

    def fn(index, clip):
        frames, label = clip
        pick = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]),
                                           maxval=tf.shape(frames, out_type=tf.int64)[0], dtype=tf.int64)
        return frames[pick][tf.newaxis], label

    return fn


def order_free(ds: tf.data.Dataset, view: str, seed: int) -> tf.data.Dataset:
    """``view`` = "shuffled" or "single_frame" version of a (frames, label) dataset."""
    fn = {"shuffled": shuffle_frames, "single_frame": single_frame}[view](seed)
    return ds.enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE)
