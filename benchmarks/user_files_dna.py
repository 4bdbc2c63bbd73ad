"""Real genes for the dna recipe's ``--data.source files``: the annotated genome of the wheat blotch fungus.

    python -m benchmarks.user_files_dna /tmp/userfiles/dna [--max-train-records 1000]
    python -m zoo.recipes.dna --data.source files --data.train /tmp/userfiles/dna/train.gff3 \\
        --data.test /tmp/userfiles/dna/test.gff3

The corpus is the genome of *Zymoseptoria tritici* (*Mycosphaerella graminicola*) IPO323, an ascomycete fungus
(21 chromosomes, 39.7 Mb), with JGI's gene catalog for it (``Mgraminicolav2.FrozenGeneCatalog20080910``: 10,952
protein-coding genes, one transcript each, CDS only, no UTRs; 2.6 coding exons per gene, 70 % with introns, both
strands alike). Both are example data of MafFilter (``examples/Ztritici``) in Debian's ``maffilter-examples``
1.3.1+dfsg-4 (CeCILL licence), fetched with ``apt-get download`` and pinned by its SHA-256 (79 MB). The genome is
read from the reference rows of the example's whole-genome alignment, which is projected on IPO323 and so tiles its
chromosomes; the 0.03 % of bases that no alignment block covers read N.

Each chromosome is cut into records of one gene (genes whose spans overlap stay together) with up to 1 kb of flank
on either side, but never more than half the gap to the next gene: no gene is split, no base is in two records, and
a record holds no part of another gene. Chromosomes chr_10 and chr_11 (3.3 Mb, 9 % of the genes) are the test set,
held out whole; all other records are train (the recipe cuts its validation share from them by a hash of the name).

The CDS lines are written as the catalog has them, stop codon included (the recipe's reader takes it off). Genes
that the recipe's gene grammar does not allow (15 % of the records: mostly partial models without a start or stop
codon, a few non-GT..AG introns) are kept as annotated; training leaves them out by itself. The files: train.gff3 9,913 records (25.7 Mb), test.gff3
1,000 records (2.6 Mb); bases 50 % exon, 8 % intron (the introns are short), 42 % intergenic.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import re
from collections import Counter, defaultdict
from pathlib import Path

from zoo.data.fetch import debian_package

PACKAGE, VERSION = "maffilter-examples", "1.3.1+dfsg-4"
SHA256 = "16a25c6cdbe6b89bb6520bb6f192e75abf348602f98b5481f37d8a13d56ee8cc"
DATA = Path("usr/share/doc/maffilter/examples/Ztritici")
ALIGNMENT, GENES = "tba_refIPO323.maf.gz", "Mgraminicolav2.FrozenGeneCatalog20080910.gff.gz"
REFERENCE = "Ztritici_IPO323"
FLANK = 1000
TEST_CHROMOSOMES = {"chr_10", "chr_11"}


@dataclasses.dataclass
class Gene:
    """One transcript's coding parts, 0-based half-open and sorted, on ``strand`` (``+`` or ``-``)."""

    name: str
    chromosome: str
    strand: str
    parts: list[tuple[int, int]]

    @property
    def start(self) -> int:
        return self.parts[0][0]

    @property
    def end(self) -> int:
        return self.parts[-1][1]


def read_genome(path: Path) -> dict[str, str]:
    """IPO323's chromosomes from the alignment's reference rows (``s Ztritici_IPO323.chr_1 start size + length
    text``, all on the plus strand); bases that no row covers read N."""
    chromosomes: dict[str, bytearray] = {}
    with gzip.open(path, "rt") as lines:
        for line in lines:
            if line.startswith(f"s {REFERENCE}."):
                _, source, start, size, _, length, text = line.split()
                name = source.split(".", 1)[1]
                if name not in chromosomes:
                    chromosomes[name] = bytearray(b"N" * int(length))
                chromosomes[name][int(start):int(start) + int(size)] = text.replace("-", "").encode()
    return {name: chromosome.decode().upper() for name, chromosome in chromosomes.items()}


def read_genes(path: Path) -> list[Gene]:
    """The CDS lines of the catalog (GTF-like: ``name "..."`` in the attributes) grouped by the gene's name."""
    genes: dict[str, Gene] = {}
    with gzip.open(path, "rt") as lines:
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if fields[2] != "CDS":
                continue
            name = re.search(r'name "([^"]+)"', fields[8])[1]
            gene = genes.setdefault(name, Gene(name, fields[0], fields[6], []))
            gene.parts.append((int(fields[3]) - 1, int(fields[4])))
    for gene in genes.values():
        gene.parts.sort()
    return list(genes.values())


def records(genes: list[Gene], length: int) -> list[tuple[int, int, list[Gene]]]:
    """``(start, end, genes)`` of one chromosome's records: overlapping genes together, up to ``FLANK`` bases on
    either side, at most half the gap to the neighbouring genes."""
    clusters: list[list[Gene]] = []
    for gene in sorted(genes, key=lambda g: g.start):
        if clusters and gene.start < max(g.end for g in clusters[-1]):
            clusters[-1].append(gene)
        else:
            clusters.append([gene])
    spans = [(min(g.start for g in c), max(g.end for g in c)) for c in clusters]
    cuts = [0] + [(end + next_start) // 2 for (_, end), (next_start, _) in zip(spans, spans[1:])] + [length]
    return [(max(start - FLANK, cuts[i]), min(end + FLANK, cuts[i + 1]), cluster)
            for i, ((start, end), cluster) in enumerate(zip(spans, clusters))]


def gff3_lines(name: str, offset: int, gene: Gene) -> list[str]:
    """The mRNA line and CDS lines (with their phases) of a gene in a record starting at ``offset``."""
    lines = [f"{name}\tJGI\tmRNA\t{gene.start - offset + 1}\t{gene.end - offset}\t.\t{gene.strand}\t.\tID={gene.name}"]
    coded = 0
    for start, end in gene.parts if gene.strand == "+" else reversed(gene.parts):
        lines.append(f"{name}\tJGI\tCDS\t{start - offset + 1}\t{end - offset}\t.\t{gene.strand}\t{-coded % 3}\t"
                     f"Parent={gene.name}")
        coded += end - start
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for train.gff3 and test.gff3")
    parser.add_argument("--max-train-records", type=int, default=0,
                        help="write only the first N training records, in chromosome order (0: all)")
    args = parser.parse_args()
    data = debian_package(PACKAGE, VERSION, SHA256) / DATA
    genome = read_genome(data / ALIGNMENT)
    by_chromosome = defaultdict(list)
    for gene in read_genes(data / GENES):
        by_chromosome[gene.chromosome].append(gene)
    splits = {"train": ([], []), "test": ([], [])}  # (GFF3 lines, FASTA lines)
    stats = {split: Counter() for split in splits}
    for chromosome, genes in sorted(by_chromosome.items()):
        split = "test" if chromosome in TEST_CHROMOSOMES else "train"
        lines, fasta = splits[split]
        for start, end, cluster in records(genes, len(genome[chromosome])):
            if split == "train" and stats[split]["records"] == args.max_train_records > 0:
                break
            name = "+".join(g.name for g in cluster)
            sequence = genome[chromosome][start:end]
            lines.append(f"##sequence-region {name} 1 {end - start}")
            fasta.append(f">{name} {chromosome}:{start + 1}-{end}")
            fasta.extend(sequence[i:i + 60] for i in range(0, len(sequence), 60))
            for gene in cluster:
                lines.extend(gff3_lines(name, start, gene))
                stats[split].update({"genes": 1, gene.strand: 1, "exons": len(gene.parts),
                                     "4+" if len(gene.parts) >= 4 else str(len(gene.parts)): 1})
            stats[split].update({"records": 1, "bases": end - start})
    args.out.mkdir(parents=True, exist_ok=True)
    for split, (lines, fasta) in splits.items():
        path = args.out / f"{split}.gff3"
        path.write_text("\n".join(["##gff-version 3", *lines, "##FASTA", *fasta]) + "\n")
        s = stats[split]
        print(f"{path}: {s['records']} records, {s['bases']:,} bases, {s['genes']} genes ({s['+']} on +, {s['-']} on -)"
              f" with {s['exons'] / s['genes']:.2f} exons per gene (genes with 1 / 2 / 3 / 4+ exons: "
              f"{s['1']} / {s['2']} / {s['3']} / {s['4+']})")


if __name__ == "__main__":
    main()
