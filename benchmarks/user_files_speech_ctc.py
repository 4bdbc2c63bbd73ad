"""Real speech for the speech_ctc recipe's ``--data.source files``: the spoken dialogs of Fish Fillets NG.

    python -m benchmarks.user_files_speech_ctc /tmp/userfiles/speech_ctc
    python -m zoo.recipes.speech_ctc --data.source files --data.train /tmp/userfiles/speech_ctc/train.csv \\
        --data.test /tmp/userfiles/speech_ctc/test.csv

Fish Fillets NG is a puzzle game whose two fish (and the statues, parrots, skulls, ... they meet) talk in every room.
Its dialogs were recorded by people in Czech (Debian ``fillets-ng-data-cs`` 1.0.1-1.1, the original game's voices)
and Dutch (``fillets-ng-data-nl`` 1.0.1-1.1); the subtitles, the transcripts here, are in the game's scripts
(``fillets-ng-data`` 1.0.1-1.1). All three are GPL-2, fetched with ``apt-get download`` and pinned by SHA-256.

A recording ``sound/ROOM/LANG/ID.ogg`` says the ``dialogStr`` that follows ``dialogId("ID", ...)`` in
``script/ROOM/*dialogs_LANG.lua`` (``ROOM`` is ``share`` for lines heard in any room). Left out: recordings with no
subtitle, or two different ones; empty files; and subtitles with digits (how "737" or "F3" was read is unknown),
``%1`` placeholders, backslashes or non-Latin letters (one Czech line starts in Russian). The ids tell who speaks:
``m`` the small fish, ``v`` the big fish, other characters otherwise. Czech keeps 1792 clips (1.70 h) and Dutch
1603 (1.58 h); the Ogg Vorbis files are copied as they are (22.05 or 44.1 kHz, mono or stereo).

The test split holds every clip of the rooms whose name falls in one CRC32 bucket of ten (``city``, ``kitchen``,
``tetris``, ...: 11 % of the Czech clips, 8 % of the Dutch), so its sentences and room topics are never trained on;
the recipe's validation split is then a hash share of the training clips. The fish have the same voices in both
splits, so this tests new sentences, not new speakers.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import soundfile

from zoo.data.fetch import debian_package

VERSION = "1.0.1-1.1"
SCRIPTS_SHA256 = "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84"  # fillets-ng-data
VOICES_SHA256 = {"cs": "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14",  # fillets-ng-data-LANG
                 "nl": "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10"}
GAME = Path("usr/share/games/fillets-ng")
LUA_STRING = r'"(?:[^"\\]|\\.)*"'
DIALOG = re.compile(rf'dialogId\(\s*"([^"]+)"(?:[^()"]|{LUA_STRING})*\)\s*dialogStr\(\s*({LUA_STRING})\s*\)')
UNREADABLE = re.compile(r"[\d%\\]|[^\W\d_a-zA-Z\u00C0-\u024F]")


def subtitles(room: Path, language: str) -> dict[str, str]:
    """``{dialog id: subtitle}`` of one room's scripts in ``language``; an id given two different subtitles is left
    out."""
    texts = defaultdict(set)
    for script in room.glob(f"*dialogs_{language}.lua"):
        for match in DIALOG.finditer(script.read_text(encoding="utf-8")):
            texts[match[1]].add(match[2][1:-1].strip())
    return {dialog: text.pop() for dialog, text in texts.items() if len(text) == 1}


def clips(language: str) -> list[tuple[Path, Path, str]]:
    """``(path below sound/, recording, transcript)`` of every recording kept (see the module's docstring)."""
    scripts = debian_package("fillets-ng-data", VERSION, SCRIPTS_SHA256) / GAME / "script"
    sounds = debian_package(f"fillets-ng-data-{language}", VERSION, VOICES_SHA256[language]) / GAME / "sound"
    rooms, kept = {}, []
    for ogg in sorted(sounds.glob(f"**/{language}/*.ogg")):
        room = ogg.relative_to(sounds).parts[0]
        if room not in rooms:
            rooms[room] = subtitles(scripts / room, language)
        text = rooms[room].get(ogg.stem, "")
        if text and not UNREADABLE.search(text) and soundfile.info(str(ogg)).frames:
            kept.append((ogg.relative_to(sounds), ogg, text))
    return kept


def speaker(dialog: str) -> str:
    """Who says a dialog, from its id (``let-m-divna``: the small fish); a rough count, not a label."""
    parts = dialog.split("-")
    return "small fish" if "m" in parts else "big fish" if "v" in parts else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for train.csv, test.csv and audio/")
    parser.add_argument("--language", choices=sorted(VOICES_SHA256), default="cs")
    args = parser.parse_args()

    splits = defaultdict(list)
    for name, ogg, text in clips(args.language):
        path = "audio" / name
        (args.out / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ogg, args.out / path)
        split = "test" if zlib.crc32(name.parts[0].encode()) % 10 == 0 else "train"
        splits[split].append((path.as_posix(), text))

    for split, rows in sorted(splits.items(), reverse=True):
        with open(args.out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["path", "text"])
            writer.writerows(rows)
        hours = sum(soundfile.info(str(args.out / path)).duration for path, _ in rows) / 3600
        speakers = Counter(speaker(Path(path).stem) for path, _ in rows)
        print(f"{args.out / f'{split}.csv'}: {len(rows)} clips, {hours:.2f} h, {dict(speakers)}")
    alphabet = sorted({c for _, text in splits["train"] for c in text.lower() if c.isalnum() or c == "'"})
    print(f"alphabet of the training transcripts ({len(alphabet)} + space): {''.join(alphabet)}")


if __name__ == "__main__":
    main()
