"""Real clips for the video recipe's ``--data.source files``: Battle for Wesnoth unit animations, labelled by action.

    python -m benchmarks.user_files_video /tmp/userfiles/video
    python -m zoo.recipes.video --data.source files --data.train /tmp/userfiles/video/train \\
        --data.test /tmp/userfiles/video/test --data.frame_stride 1 --data.max_frames 24 --data.frame_size 48 \
        --train.epochs 40 --baselines.epochs 40

The corpus is the hand-drawn pixel-art unit sprites of The Battle for Wesnoth, from Debian's ``wesnoth-1.16-data``
1:1.16.9-1 (GPL-2+, like all of Wesnoth's art), fetched with ``apt-get download`` and pinned by its SHA-256. A unit's
animation is a run of numbered images (``units/orcs/archer-ne-bow-attack-1.png ... -4.png``); each run of 3 or more
frames whose name says its action becomes one clip of one of four classes: ``attack`` (any weapon or direction),
``die``, ``idle`` (idle fidgets and the standing ``bob`` / ``stand`` loops) and ``move`` (``run``, ``fly``,
``takeoff``, ``hover``, ...); defend animations and unnamed loops are left out. A unit keeps only its longest attack
(the first by name of equally long ones): units have several weapons and directions, and attacks would otherwise
outnumber each other class 3 to 5 times.

Frames are flattened onto a grey background (the sprites' transparent pixels hold stray colours) and centred on the
clip's largest frame (a few runs mix sizes), then written as ``000.png, 001.png, ...``. The test split holds every
clip of the races in ``TEST_RACES``, so its units, and their advancement lines, are never seen in training; the
recipe's validation split is then a hash share of the training clips, whose units are not held out. Team colours
are left magenta, as the game recolours them only when it draws a unit.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from zoo.data.fetch import debian_package

PACKAGE, VERSION = "wesnoth-1.16-data", "1:1.16.9-1"
SHA256 = "1012b964bd412a6770685e3324ae3b61e176caff7846192d1ee63d55cd621e26"
UNITS = Path("usr/share/games/wesnoth/1.16/data/core/images/units")
ACTIONS = {  # class: words of an animation's name; the first class with a word in the name wins
    "die": {"die", "death", "dying"},
    "idle": {"idle", "bob", "stand", "standing"},
    "move": {"run", "fly", "flying", "moving", "hover", "soar", "takeoff"},
    "attack": {"attack", "melee", "ranged", "blade", "sword", "spear", "axe", "hammer", "bow", "crossbow", "fire",
               "throw", "pierce", "impact", "bite", "claws", "magic", "kick", "slash", "pincer", "sting", "stinger",
               "javelin"},
}
DIRECTIONS = {"n", "ne", "se", "s", "sw", "nw"}
UNIT_ENDS = DIRECTIONS.union(*ACTIONS.values())  # the first of these words in a name ends the unit's name
TEST_RACES = ("goblins", "human-loyalists", "saurians")
MIN_FRAMES = 3
BACKGROUND = (128, 128, 128)


def sequences(units: Path) -> dict[tuple[Path, str], list[Path]]:
    """Runs of numbered frames: ``(directory, name without its frame number)`` → frame paths in frame order."""
    runs = defaultdict(list)
    for path in units.rglob("*.png"):
        if match := re.fullmatch(r"(.+?)[-_]?(\d+)", path.stem):
            runs[path.parent, match[1]].append((int(match[2]), path))
    return {key: [path for _, path in sorted(frames)] for key, frames in runs.items() if len(frames) >= MIN_FRAMES}


def unit_and_action(name: str) -> tuple[str, str] | None:
    """``("archer", "attack")`` for ``archer-ne-bow-attack``: the unit is the name up to its first direction or
    action word. None for a defend animation or a name with no action word."""
    words = name.split("-")
    stems = [word.rstrip("0123456789") for word in words]  # die2, idle2: a unit's second animation of that kind
    if "defend" in stems:
        return None
    action = next((label for label, keys in ACTIONS.items() if keys & set(stems[1:])), None)
    if action is None:
        return None
    cut = next(i for i, stem in enumerate(stems) if i and stem in UNIT_ENDS)
    return "-".join(words[:cut]), action


def write_clip(frames: list[Path], clip_dir: Path) -> None:
    """Writes ``frames`` as ``clip_dir/000.png, ...``: flattened onto the background, centred on the largest."""
    images = [Image.open(path).convert("RGBA") for path in frames]
    size = (max(image.width for image in images), max(image.height for image in images))
    clip_dir.mkdir(parents=True)
    for index, image in enumerate(images):
        canvas = Image.new("RGBA", size, BACKGROUND + (255,))
        canvas.alpha_composite(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
        canvas.convert("RGB").save(clip_dir / f"{index:03d}.png")


def clips(units: Path) -> list[tuple[str, str, str, list[Path]]]:
    """``(split, action, clip name, frames)`` of every labelled run; a unit's attacks give only its longest run."""
    kept, longest_attack = [], {}
    for (directory, name), frames in sorted(sequences(units).items()):
        labelled = unit_and_action(name)
        if labelled is None:
            continue
        unit, action = labelled
        parts = directory.relative_to(units).parts
        clip = ("test" if parts[0] in TEST_RACES else "train", action, "_".join(parts + (name,)), frames)
        key = (parts[0], unit)
        if action != "attack":
            kept.append(clip)
        elif key not in longest_attack or len(frames) > len(longest_attack[key][3]):
            longest_attack[key] = clip
    return kept + list(longest_attack.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (its train/ and test/ are replaced)")
    args = parser.parse_args(argv)

    counts = defaultdict(Counter)
    for split in ("train", "test"):
        shutil.rmtree(args.out / split, ignore_errors=True)
    for split, action, name, frames in clips(debian_package(PACKAGE, VERSION, SHA256) / UNITS):
        write_clip(frames, args.out / split / action / name)
        counts[split][action] += 1
    for split, by_class in counts.items():
        print(f"{split}: {sum(by_class.values())} clips, " + ", ".join(f"{c} {n}" for c, n in sorted(by_class.items())))


if __name__ == "__main__":
    main()
