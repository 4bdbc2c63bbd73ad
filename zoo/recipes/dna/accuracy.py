"""A gene finder's yardstick: nucleotide, exon and gene level sensitivity and specificity.

The definitions of AUGUSTUS's evaluation (Burset & Guigó 1996, as the AUGUSTUS tutorial reports them):

- nucleotide: a coding base (in some annotated / predicted exon) counts once per sequence, whatever the strand;
- exon: an exon counts when its start, its end and its strand are all right;
- gene: a gene counts when its strand and all its coding exons are right (and it has no other).

Sensitivity = right / annotated, specificity = right / predicted, summed over all sequences before dividing.
"""

from __future__ import annotations

from zoo.recipes.dna.grammar import GeneStructure


def _ratio(right: int, total: int) -> float:
    return round(right / total, 4) if total else 0.0


def gene_finder_accuracy(annotated: list[list[GeneStructure]], predicted: list[list[GeneStructure]]) -> dict:
    """Sn / Sp at the three levels, and the counts behind them, of per-sequence gene lists (same order)."""
    if len(annotated) != len(predicted):
        raise ValueError(f"{len(annotated)} annotated sequences but {len(predicted)} predicted")
    counts = {level: [0, 0, 0] for level in ("nucleotide", "exon", "gene")}  # right, annotated, predicted

    def add(level, true: set, guess: set):
        counts[level][0] += len(true & guess)
        counts[level][1] += len(true)
        counts[level][2] += len(guess)

    for true_genes, guessed_genes in zip(annotated, predicted):
        exons = [{(start, end, gene.strand) for gene in genes for start, end, _ in gene.exons}
                 for genes in (true_genes, guessed_genes)]
        add("nucleotide", *({base for start, end, _ in e for base in range(start, end)} for e in exons))
        add("exon", *exons)
        add("gene", *({(gene.strand, gene.intervals()) for gene in genes} for genes in (true_genes, guessed_genes)))
    metrics = {}
    for level, (right, true, guess) in counts.items():
        metrics[level] = {"sensitivity": _ratio(right, true), "specificity": _ratio(right, guess),
                          "right": right, "annotated": true, "predicted": guess}
    return metrics
