"""The dna recipe: train the tagger on windows of the training genes, score the held-out genes beside the k-mer
baseline."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from zoo.recipe import Prepared, Recipe
from zoo.recipes.dna import data, grammar, model
from zoo.recipes.dna.accuracy import gene_finder_accuracy
from zoo.recipes.dna.baseline import KmerBaseline
from zoo.recipes.dna.config import DnaConfig
from zoo.recipes.dna.data import EXON, LABELS, GeneRecord
from zoo.report import table

EVAL_BATCH_BASES = 200_000  # bases per prediction batch (padded), bounding memory (K x K scores per base)


def predict_records(tagger, records: list[GeneRecord], cfg: DnaConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grammar states, label probabilities) of every record, through the same windowed path as the served
    model."""
    predict = tf.function(lambda ids: model.predict(tagger, ids, cfg.data),  # eager tf.scan steps are slow
                          input_signature=[tf.TensorSpec([None, None], tf.int32)])
    order = sorted(range(len(records)), key=lambda i: len(records[i].sequence))
    results: list = [None] * len(records)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * len(records[order[end]].sequence) <= EVAL_BATCH_BASES:
            end += 1
        chunk = [records[i] for i in order[start:end]]
        ids = np.zeros((len(chunk), max(len(r.sequence) for r in chunk)), np.int32)
        for row, record in enumerate(chunk):
            ids[row, :len(record.sequence)] = data.encode(record.sequence)
        states, probabilities = (t.numpy() for t in predict(ids))
        for row, i in enumerate(order[start:end]):
            n = len(records[i].sequence)
            results[i] = (states[row, :n], probabilities[row, :n])
        start = end
    return results


def score(records: list[GeneRecord], predictions: list[tuple[np.ndarray, np.ndarray]],
          genes: list[list[grammar.GeneStructure]] | None = None) -> dict:
    """Per-base precision/recall/F1 of each label and exon AUROC of per-base (labels, probabilities); the gene
    finder's nucleotide / exon / gene Sn and Sp (`gene_finder_accuracy`) of the predicted ``genes`` when given
    (a labelling without strand and phase has none)."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    gold = np.concatenate([r.labels for r in records])
    guess = np.concatenate([p[0] for p in predictions])
    exon_probability = np.concatenate([p[1][:, EXON] for p in predictions])
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, guess, labels=range(len(LABELS)), zero_division=0)
    metrics = {"genes": len(records), "bases": int(len(gold)), "accuracy": round(float((gold == guess).mean()), 4)}
    for i, name in enumerate(LABELS):
        metrics[name] = {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                         "f1": round(float(f1[i]), 4), "bases": int(support[i])}
    metrics["exon_auroc"] = round(float(roc_auc_score(gold == EXON, exon_probability)), 4)
    if genes is not None:
        metrics["gene_finder"] = gene_finder_accuracy([r.genes() for r in records], genes)
    for strand, sign in (("plus", 1), ("minus", -1)):
        chosen = [i for i, r in enumerate(records) if r.strand == sign]
        if chosen:
            g = np.concatenate([records[i].labels for i in chosen]) == EXON
            p = np.concatenate([predictions[i][0] for i in chosen]) == EXON
            metrics[f"exon_f1_{strand}_strand"] = round(float(2 * (g & p).sum() / max(g.sum() + p.sum(), 1)), 4)
    return metrics


def format_metrics(results: dict[str, dict]) -> str:
    def levels(m):
        finder = m.get("gene_finder")
        if finder is None:
            return ["n/a"] * 3
        return [f"{finder[level]['sensitivity']:.3f}/{finder[level]['specificity']:.3f}"
                for level in ("nucleotide", "exon", "gene")]

    return table({"model": "", "exon F1": ".4f", "intron F1": ".4f", "intergenic F1": ".4f", "exon AUROC": ".4f",
                  "nucleotide Sn/Sp": "", "exon Sn/Sp": "", "gene Sn/Sp": ""},
                 [(name, m["exon"]["f1"], m["intron"]["f1"], m["intergenic"]["f1"], m["exon_auroc"], *levels(m))
                  for name, m in results.items()])


def grammatical(records: list[GeneRecord]) -> tuple[list[GeneRecord], int]:
    """The records whose annotated path the gene grammar allows (canonical splice sites, start and stop codons, no
    in-frame stop), and how many were left out: the CRF cannot learn a path it forbids."""
    kept = [r for r in records if not grammar.path_violations(data.encode(r.sequence), r.states)]
    if records and not kept:
        raise ValueError(f"none of the {len(records)} records (e.g. {records[0].name!r}) is a gene structure the "
                         f"grammar allows: ATG start, GT/GC...AG introns, a stop codon right after the CDS (which "
                         f"excludes it), no in-frame stop")
    return kept, len(records) - len(kept)


class DnaRecipe(Recipe):
    """Gene structure (sequence → sequence): DNA bases in, per-base exon / intron / intergenic labels out."""

    name = "dna"
    config_class = DnaConfig
    monitor = ("val_tag_f1", "max")
    input_name = "sequence"
    load_split = staticmethod(data.load_split)

    def prepare(self, cfg, splits):
        train_records, dropped = grammatical(data.records_of(splits["train"]))
        val_records, _ = grammatical(data.records_of(splits["validation"]))
        train_ds = data.training_windows(train_records, cfg.data, cfg.train.batch_size, True, cfg.train.seed)
        val_ds = data.training_windows(val_records, cfg.data, cfg.train.batch_size, False, cfg.train.seed)
        min_intron = cfg.model.min_intron_length or grammar.shortest_intron([r.states for r in train_records])
        return Prepared(train_ds, val_ds, facts={"training_genes": len(train_records),
                                                 "training_bases": sum(len(r.sequence) for r in train_records),
                                                 "validation_genes": len(val_records),
                                                 "training_genes_off_grammar": dropped,
                                                 "min_intron_length": min_intron},
                        state={"train_records": train_records, "min_intron": min_intron})

    def build(self, cfg, prepared, member):
        tagger = model.build_tagger(cfg, prepared.state["min_intron"])
        transitions, start = grammar.log_frequencies([r.states for r in prepared.state["train_records"]])
        tagger.crf.set_weights([transitions, start, np.zeros_like(start)])
        model.fit_counted(tagger, prepared.state["train_records"], cfg.model)
        model.compile_tagger(tagger, cfg)
        return tagger

    def evaluate(self, cfg, tagger, splits, prepared, run_dir):
        test_records = data.records_of(splits["test"])
        predictions = predict_records(tagger, test_records, cfg)
        report = {"metrics": score(test_records, [(grammar.LABEL_OF_STATE[states], probabilities)
                                                  for states, probabilities in predictions],
                                   [grammar.genes_of(states) for states, _ in predictions])}
        if cfg.baseline.enabled:
            started = time.time()
            baseline = KmerBaseline(cfg.baseline, cfg.train.seed).fit(prepared.state["train_records"])
            report["baseline"] = score(test_records, [baseline.predict(r) for r in test_records])
            report["baseline"]["seconds"] = round(time.time() - started, 1)
        return report

    def summary(self, report):
        metrics = report["metrics"]
        rows = {"model": metrics, **({"k-mer": report["baseline"]} if report.get("baseline") else {})}
        return (f"Held-out test genes ({metrics['genes']}, {metrics['bases']:,} bases): per-base F1, and the gene "
                f"finder's Sn/Sp (AUGUSTUS's definitions):\n"
                f"{format_metrics(rows)}")

    def endpoints(self, cfg, tagger):
        return {"serving_default": model.make_serving_fn(tagger, cfg)}

    def example_inputs(self, cfg):
        return ["".join(np.random.default_rng(0).choice(list("ACGT"), 3000)), "ACGTNacgtn"]


RECIPE = DnaRecipe()
