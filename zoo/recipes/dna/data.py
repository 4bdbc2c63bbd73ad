"""DNA data: annotated genes from GenBank files, per-base labels, and the training windows.

Default source, offline: the AUGUSTUS tutorial's gene set in Debian's ``augustus-doc`` (fetched with
``apt-get download``, sha256-pinned, unpacked in the cache): 586 *Drosophila melanogaster* chr2R genes, each with
about 1 kb of flank, split by the tutorial itself into ``genes.gb.train`` (486 records) and ``genes.gb.test``
(100 records), so test genes are unseen. Every record holds one gene's coding sequence as a ``CDS`` feature,
``join(...)`` of its coding exons, on either strand (``complement(...)``).

Per-base labels, from the CDS parts: exon (coding), intron (between two parts of the same CDS), intergenic
(everything else, UTRs included: the set annotates no UTRs). Labels do not depend on the strand — a minus-strand
gene's exons are exons — and training adds each record's reverse complement half the time, so the model reads
both strands alike. Other IUPAC codes in a record become N. The validation split is cut from the training file
by a CRC32 hash of each record's name.

``files``: the user's GenBank or GFF3 files (``read_records``).
"""

from __future__ import annotations

import dataclasses
import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.data import fetch, files
from zoo.recipes.dna import grammar
from zoo.recipes.dna.config import DataConfig
from zoo.recipes.dna.grammar import BASES, EXON, INTERGENIC, INTRON, LABELS, PAD_ID  # noqa: F401 (re-exported)

AUGUSTUS_DEB = ("augustus-doc", "3.5.0+dfsg-2", "8427ef32b4f345dc336066215390572f242c79818bcb6a709df87b4be43fc71b")
AUGUSTUS_RESULTS = "usr/share/doc/augustus/tutorial/results"
AUGUSTUS_RECORDS = {"genes.gb.train": 486, "genes.gb.test": 100}

COMPLEMENT_IDS = np.array([0, 4, 3, 2, 1, 5], np.int32)  # pad, A↔T, C↔G, N


@dataclasses.dataclass
class GeneRecord:
    """One annotated sequence.

    Attributes:
        name: the record's name (GenBank LOCUS).
        sequence: str over ACGTN, upper case.
        labels: int8 array `(len(sequence),)`, indices into `LABELS`.
        exons: sorted `(start, end)` 0-based half-open coding intervals (touching parts merged).
        strand: +1 or -1, the strand of the record's first CDS (0 without one).
        states: int8 array `(len(sequence),)`, the gene-grammar state of every base (`grammar.STATES`: reading
            frame, strand, stop codons), the tagger's training target.
    """

    name: str
    sequence: str
    labels: np.ndarray
    exons: list[tuple[int, int]]
    strand: int
    states: np.ndarray

    def genes(self) -> list[grammar.GeneStructure]:
        """The annotated gene structures (from the states)."""
        return grammar.genes_of(self.states)


def _base_id_table() -> np.ndarray:
    table = np.zeros(256, np.int32)
    for i, base in enumerate(BASES, start=1):
        table[ord(base)] = table[ord(base.lower())] = i
    return table


BASE_IDS = _base_id_table()  # character code → base id (0 for anything but ACGTN, either case)


def encode(sequence: str) -> np.ndarray:
    """ACGTN (either case) → int32 ids 1..5; anything else raises ValueError naming the character."""
    raw = np.frombuffer(sequence.encode("latin-1", errors="replace"), np.uint8)
    ids = BASE_IDS[raw]
    if (ids == 0).any():
        bad = sequence[int(np.argmax(ids == 0))]
        raise ValueError(f"sequence holds {bad!r}; only A, C, G, T and N (either case) are bases")
    return ids


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


IUPAC_AMBIGUOUS = set("RYKMSWBDHV")  # one of several bases: read as N


def clean_sequence(name: str, sequence: str) -> str:
    """Upper-case ACGTN, IUPAC ambiguity codes read as N; any other letter is a ValueError naming the record."""
    sequence = sequence.upper()
    strange = set(sequence) - set("ACGTN") - IUPAC_AMBIGUOUS
    if strange:
        at = min(sequence.index(c) for c in strange)
        raise ValueError(f"record {name}: base {at + 1} is {sequence[at]!r}; a sequence holds A, C, G, T, N "
                         f"or IUPAC ambiguity codes")
    return sequence.translate({ord(c): "N" for c in IUPAC_AMBIGUOUS})


def without_stop_codon(sequence: str, parts: list[tuple[int, int]], strand: int) -> list[tuple[int, int]]:
    """The sorted parts of one CDS without its stop codon. Annotations differ: GenBank and most GFF3 files (NCBI,
    Ensembl, JGI) end the CDS with the stop codon, AUGUSTUS's files leave it out, and the gene grammar reads it as
    the 3 bases after the CDS. A CDS that is whole codons and ends in TAA, TAG or TGA (read in its direction) loses
    those 3 bases; any other CDS is kept as it is (a stop inside a reading frame cannot be its last sense codon)."""
    parts = sorted(parts)
    bases = np.concatenate([np.arange(start, end) for start, end in parts])
    if len(bases) < 6 or len(bases) % 3:
        return parts
    last = "".join(sequence[i] for i in (bases[:3] if strand < 0 else bases[-3:]))  # the 3' end on either strand
    if strand < 0:
        last = last[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
    if last not in grammar.STOPS:
        return parts
    bases = bases[3:] if strand < 0 else bases[:-3]
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(bases, np.flatnonzero(np.diff(bases) > 1) + 1)]


def labelled(name: str, sequence: str, coding: list[tuple[list[tuple[int, int]], int]]) -> GeneRecord:
    """A `GeneRecord` from its coding sequences: each ``(parts, strand)``, 0-based half-open parts of one CDS
    (with or without its stop codon: `without_stop_codon`)."""
    labels = np.full(len(sequence), INTERGENIC, np.int8)
    exons, strand = [], 0
    coding = [(without_stop_codon(sequence, parts, part_strand), part_strand) for parts, part_strand in coding]
    for parts, part_strand in coding:
        for (_, end), (start, _) in zip(parts[:-1], parts[1:]):
            labels[end:start] = INTRON
        exons.extend(parts)
        strand = strand or part_strand
    for start, end in exons:  # exons win where a part overlaps another CDS's intron
        labels[start:end] = EXON
    return GeneRecord(name, sequence, labels, _merged(exons), strand, grammar.gene_states(len(sequence), coding))


def label_record(record) -> GeneRecord:
    """A Biopython ``SeqRecord`` → `GeneRecord` with per-base labels from its CDS features. IUPAC ambiguity codes
    read as N; any other letter, or a CDS whose location did not parse, is a ValueError naming the record."""
    sequence = clean_sequence(record.name, str(record.seq))
    coding = []
    for number, feature in enumerate((f for f in record.features if f.type == "CDS"), 1):
        if feature.location is None:
            raise ValueError(f"record {record.name}: the location of CDS feature {number} could not be read")
        parts = sorted((int(p.start), int(p.end)) for p in feature.location.parts)
        if parts[0][0] < 0 or parts[-1][1] > len(sequence):
            raise ValueError(f"record {record.name}: CDS feature {number} ({feature.location}) lies outside the "
                             f"sequence of {len(sequence)} bases")
        coding.append((parts, feature.location.strand or 0))
    return labelled(record.name, sequence, coding)


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_gff3(path: Path) -> list[GeneRecord]:
    """One `GeneRecord` per sequence of a GFF3 file, labelled from its ``CDS`` lines (the CDS lines sharing a
    ``Parent``, the transcript, are the parts of one coding sequence; either strand). The sequences follow a
    ``##FASTA`` line, or are in a ``.fa`` / ``.fasta`` / ``.fna`` file of the same name beside it. A malformed
    line, a feature outside its sequence or a sequence that is missing is an error naming the file and line."""
    from Bio import SeqIO

    coding: dict[str, dict[str, tuple[list, int, int]]] = {}  # seqid → parent → (parts, strand, first line)
    sequences: dict[str, str] = {}
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith("##FASTA"):
                sequences = {r.id: str(r.seq) for r in SeqIO.parse(handle, "fasta")}
                break
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9:
                raise files.FileFormatError(path, line_no, f"expected 9 tab-separated GFF3 columns, got {len(fields)}")
            seqid, _, kind, start, end, _, strand, _, attributes = fields
            if kind != "CDS":
                continue
            if not (start.isdigit() and end.isdigit() and 1 <= int(start) <= int(end)):
                raise files.FileFormatError(path, line_no, f"start {start!r} and end {end!r} must be integers with "
                                                           f"1 <= start <= end")
            if strand not in "+-.?" or len(strand) != 1:
                raise files.FileFormatError(path, line_no, f"strand {strand!r} is not +, -, . or ?")
            tags = dict(item.split("=", 1) for item in attributes.split(";") if "=" in item)
            parent = tags.get("Parent") or tags.get("ID") or f"line {line_no}"
            parts, _, first = coding.setdefault(seqid, {}).get(parent, ([], 0, line_no))
            parts.append((int(start) - 1, int(end), line_no))
            coding[seqid][parent] = (parts, {"+": 1, "-": -1}.get(strand, 0), first)
    if not sequences:
        fasta = next((path.with_name(path.name.split(".")[0] + suffix) for suffix in (".fa", ".fasta", ".fna")
                      if path.with_name(path.name.split(".")[0] + suffix).is_file()), None)
        if fasta is not None:
            with _open_text(fasta) as handle:
                sequences = {r.id: str(r.seq) for r in SeqIO.parse(handle, "fasta")}
    records = []
    for seqid, sequence in sequences.items():
        sequence = clean_sequence(seqid, sequence)
        groups = []
        for parts, strand, _ in coding.pop(seqid, {}).values():
            for start, end, line_no in parts:
                if end > len(sequence):
                    raise files.FileFormatError(path, line_no, f"CDS {start + 1}..{end} lies outside sequence "
                                                               f"{seqid!r} of {len(sequence)} bases")
            groups.append(([(start, end) for start, end, _ in parts], strand))
        records.append(labelled(seqid, sequence, groups))
    for seqid, groups in coding.items():  # features of a sequence that was never given
        first = min(first for _, _, first in groups.values())
        raise files.FileFormatError(path, first, f"no sequence {seqid!r}: give it after a ##FASTA line or in "
                                                 f"{path.name.split('.')[0]}.fa beside the file")
    if not records:
        raise files.FileFormatError(path, None, "holds no sequence (after ##FASTA or in a .fa file beside it)")
    return records


def read_records(path: Path) -> list[GeneRecord]:
    """The labelled records of a GFF3 (``.gff``, ``.gff3``) or GenBank file (anything else), plain or gzip."""
    name = path.name.lower().removesuffix(".gz")
    return read_gff3(path) if name.endswith((".gff", ".gff3")) else read_genbank(path)


def read_genbank(path: str | Path) -> list[GeneRecord]:
    """Every record of a GenBank file (plain or gzip), labelled; a file with no record is an error."""
    from Bio import BiopythonParserWarning, SeqIO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GenBank file {path} does not exist")
    with _open_text(path) as handle, warnings.catch_warnings():
        # The AUGUSTUS files' LOCUS lines omit the molecule type and date columns; Biopython warns and copes.
        warnings.simplefilter("ignore", BiopythonParserWarning)
        try:
            records = [label_record(r) for r in SeqIO.parse(handle, "genbank")]
        except ValueError as e:
            raise ValueError(f"{path}: not a readable GenBank file: {e}") from e
    if not records:
        raise ValueError(f"{path} holds no GenBank record")
    return records


def augustus_files() -> dict[str, Path]:
    """The tutorial's train and test files, fetched and checked against their known record counts."""
    results = fetch.debian_package(*AUGUSTUS_DEB) / AUGUSTUS_RESULTS
    files = {name: results / name for name in AUGUSTUS_RECORDS}
    for name, path in files.items():
        count = path.read_text().count("\nLOCUS ") + path.read_text().startswith("LOCUS ")
        if count != AUGUSTUS_RECORDS[name]:
            raise fetch.FetchError(f"{path} holds {count} records, expected {AUGUSTUS_RECORDS[name]}")
    return {"train": files["genes.gb.train"], "test": files["genes.gb.test"]}


def split_of(name: str, validation_percent: int) -> str:
    return "validation" if zlib.crc32(name.encode()) % 100 < validation_percent else "train"


def load_records(cfg: DataConfig, split: str) -> list[GeneRecord]:
    """Records of ``split``: train / validation (cut from the training file) / test."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}")
    if cfg.source == "files":
        records = files.split_examples(cfg, read_records, lambda record: record.name, split)
        files.report_split(cfg, split, f"{len(records)} records, {sum(len(r.sequence) for r in records):,} bases")
        return records
    tutorial = augustus_files()
    if split == "test":
        return read_genbank(tutorial["test"])
    return [r for r in read_genbank(tutorial["train"]) if split_of(r.name, cfg.validation_percent) == split]


def load_split(cfg: DataConfig, split: str) -> tf.data.Dataset:
    """One split as examples ``{"name": string, "sequence": string over ACGTN, "labels": int32 (time,) indices
    into LABELS, "states": int32 (time,) indices into grammar.STATES, "strand": int32 +1 / -1 / 0}``, one per
    record (see `GeneRecord`)."""
    records = load_records(cfg, split)
    lengths = np.array([len(r.sequence) for r in records], np.int64)

    def per_base(field):
        values = [getattr(r, field) for r in records] + [np.zeros(0, np.int8)]
        return tf.RaggedTensor.from_row_lengths(np.concatenate(values).astype(np.int32), lengths)

    return tf.data.Dataset.from_tensor_slices({
        "name": tf.constant([r.name for r in records], tf.string),
        "sequence": tf.constant([r.sequence for r in records], tf.string),
        "labels": per_base("labels"),
        "states": per_base("states"),
        "strand": tf.constant([r.strand for r in records], tf.int32),
    })


def runs_of(labels: np.ndarray, label: int) -> list[tuple[int, int]]:
    """Maximal `[start, end)` runs of ``label``."""
    return grammar.runs(labels == label)


def records_of(split: tf.data.Dataset) -> list[GeneRecord]:
    """The `GeneRecord`s of a split's examples (exons are the runs of exon labels)."""
    records = []
    for ex in split.as_numpy_iterator():
        labels = ex["labels"].astype(np.int8)
        records.append(GeneRecord(ex["name"].decode(), ex["sequence"].decode(), labels, runs_of(labels, EXON),
                                  int(ex["strand"]), ex["states"].astype(np.int8)))
    return records


def record_dataset(records: list[GeneRecord]) -> tf.data.Dataset:
    """(ids, states) of every record, variable length, int32."""
    lengths = [len(r.sequence) for r in records]
    ids = np.concatenate([encode(r.sequence) for r in records]) if records else np.zeros(0, np.int32)
    labels = np.concatenate([r.states for r in records]).astype(np.int32) if records else np.zeros(0, np.int32)
    ragged = lambda values: tf.RaggedTensor.from_row_lengths(values, lengths)  # noqa: E731
    return tf.data.Dataset.from_tensor_slices((ragged(ids), ragged(labels)))


def reverse_complement(ids, states):
    """The other strand read 5'→3': complemented bases in reverse order; each base's state follows it, moved to
    the other strand (`grammar.MIRROR`)."""
    return (tf.reverse(tf.gather(COMPLEMENT_IDS, ids), [0]),
            tf.reverse(tf.gather(tf.constant(grammar.MIRROR, states.dtype), states), [0]))


def tile(ids, labels, window: int, offset):
    """Cuts one record into `window`-long pieces `(n, window)`, right-padded, the first `window - offset` long.

    Inserting `offset` padding steps after the first piece shifts every later cut, so each epoch sees other cut
    points while every piece stays right-padded (what masked recurrent layers need).
    """
    head = tf.minimum(window - offset, tf.size(ids))

    def shifted(x):
        return tf.concat([x[:head], tf.zeros([window - head], x.dtype), x[head:]], axis=0)

    frame = lambda x: tf.signal.frame(shifted(x), window, window, pad_end=True, pad_value=0)  # noqa: E731
    return frame(ids), frame(labels)


def training_windows(records: list[GeneRecord], cfg: DataConfig, batch_size: int, shuffle: bool,
                     seed: int) -> tf.data.Dataset:
    """Batches of `(ids (batch, window), labels (batch, window))` covering every base of ``records`` once.

    With ``shuffle`` (training) each epoch cuts every record at a random offset, reads it on a random strand
    (when ``cfg.reverse_complement``) and shuffles the pieces; otherwise cuts start at each record's first base.
    """
    ds = record_dataset(records)
    window = cfg.window

    def pieces(ids, labels):
        if shuffle:
            if cfg.reverse_complement:
                flip = tf.random.uniform([], seed=seed) < 0.5
                ids, labels = tf.cond(flip, lambda: reverse_complement(ids, labels), lambda: (ids, labels))
            offset = tf.random.uniform([], 0, window, tf.int32, seed=seed + 1)
        else:
            offset = tf.constant(0)
        return tf.data.Dataset.from_tensor_slices(tile(ids, labels, window, offset))

    ds = ds.flat_map(pieces).filter(lambda ids, _: tf.reduce_any(ids != PAD_ID))
    if shuffle:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
