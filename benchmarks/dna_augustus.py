"""AUGUSTUS beside the dna recipe, on the same 100 held-out genes of the AUGUSTUS tutorial, scored by the same code.

AUGUSTUS comes from Debian's ``augustus`` package (``apt-get install augustus``). It is trained as its tutorial
trains it: ``new_species.pl`` in a private copy of its config, ``stopCodonExcludedFromCDS`` set (the tutorial's CDS
features end before the stop codon), ``etraining`` on the 486 genes of ``genes.gb.train``, then ``augustus
--species=... genes.gb.test``. Its shipped ``fly`` parameters run too, marked as trained on other data (which may
include these genes). The zoo row is a trained dna run (``python -m zoo.recipes.dna`` writes ``runs/dna``), its
model read back and run through the recipe's own windowed prediction. All rows are scored by
``zoo.recipes.dna.accuracy.gene_finder_accuracy``; AUGUSTUS's own evaluation of its predictions is printed beside
ours, a check of the scorer.

    python -m benchmarks.dna_augustus runs/dna
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from zoo.recipes.dna import data
from zoo.recipes.dna.accuracy import gene_finder_accuracy
from zoo.recipes.dna.grammar import GeneStructure

SYSTEM_CONFIG = Path("/usr/share/augustus/config")
SPECIES = "zoo_tutorial_fly"
LEVELS = ("nucleotide", "exon", "gene")


def augustus_config(workdir: Path) -> Path:
    """A writable AUGUSTUS config (without the 100+ shipped species but ``generic`` and ``fly``)."""
    if shutil.which("augustus") is None or not SYSTEM_CONFIG.is_dir():
        raise SystemExit("AUGUSTUS is not installed: apt-get install augustus (Debian / Ubuntu)")
    config = workdir / "config"
    shutil.copytree(SYSTEM_CONFIG, config, ignore=lambda d, names: [n for n in names if Path(d).name == "species"
                                                                     and n not in ("generic", "fly")])
    return config


def train_augustus(config: Path, train_file: Path) -> float:
    """new_species.pl + etraining, as in the tutorial; returns the seconds taken."""
    started = time.time()
    env = {"AUGUSTUS_CONFIG_PATH": str(config), "PATH": "/usr/bin:/bin"}
    subprocess.run(["perl", "/usr/share/augustus/scripts/new_species.pl", f"--species={SPECIES}"], env=env,
                   check=True, capture_output=True)
    parameters = config / "species" / SPECIES / f"{SPECIES}_parameters.cfg"
    parameters.write_text(re.sub(r"^stopCodonExcludedFromCDS\s+false", "stopCodonExcludedFromCDS true",
                                 parameters.read_text(), flags=re.M))
    subprocess.run(["etraining", f"--species={SPECIES}", f"--AUGUSTUS_CONFIG_PATH={config}", str(train_file)],
                   check=True, capture_output=True)
    return time.time() - started


def run_augustus(config: Path, species: str, test_file: Path) -> tuple[str, float]:
    started = time.time()
    out = subprocess.run(["augustus", f"--species={species}", f"--AUGUSTUS_CONFIG_PATH={config}",
                          "--stopCodonExcludedFromCDS=true", "--UTR=off", str(test_file)],
                         check=True, capture_output=True, text=True)
    return out.stdout, time.time() - started


def gtf_genes(gff: str, names: list[str], source: str = "AUGUSTUS") -> list[list[GeneStructure]]:
    """AUGUSTUS's GTF-style output → per-sequence genes (one per transcript), in the order of ``names``: its
    predictions (source ``AUGUSTUS``) or the annotation it read from the GenBank input (source ``database``)."""
    exons: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    strands = {}
    for line in gff.splitlines():
        fields = line.split("\t")
        if line.startswith("#") or len(fields) != 9 or fields[1] != source or fields[2] != "CDS":
            continue
        transcript = re.search(r'transcript_id "([^"]+)"', fields[8]).group(1)
        exons[fields[0]][transcript].append((int(fields[3]) - 1, int(fields[4]), int(fields[7])))
        strands[fields[0], transcript] = 1 if fields[6] == "+" else -1
    unknown = set(exons) - set(names)
    if unknown:
        raise ValueError(f"AUGUSTUS predicted on sequences that are not in the test file: {sorted(unknown)[:3]}")
    return [[GeneStructure(strands[name, t], tuple(sorted(parts))) for t, parts in exons[name].items()]
            for name in names]


def own_evaluation(stdout: str) -> dict:
    """AUGUSTUS's own Sn/Sp from the evaluation it prints for a GenBank input."""
    found = {}
    for level, pattern in (("nucleotide", r"nucleotide level \|\s+([\d.]+) \|\s+([\d.]+)"),
                           ("exon", r"exon level \|.*\|\s+([\d.]+) \|\s+([\d.]+) \|"),
                           ("gene", r"gene level \|.*\|\s+([\d.]+) \|\s+([\d.]+) \|")):
        match = re.search(pattern, stdout)
        if match:
            found[level] = tuple(float(x) for x in match.groups())
    return found


def zoo_genes(run_dir: Path, records) -> tuple[list[list[GeneStructure]], float]:
    import zoo
    from zoo.recipes.dna import grammar, train

    run = zoo.load(run_dir)
    started = time.time()
    predictions = train.predict_records(run.model, records, run.config)
    return [grammar.genes_of(states) for states, _ in predictions], time.time() - started


def row(name: str, metrics: dict, seconds: str) -> str:
    cells = [f"{metrics[level]['sensitivity']:.3f} / {metrics[level]['specificity']:.3f}" for level in LEVELS]
    exact = f"{metrics['exon']['right']} of {metrics['exon']['annotated']}"
    return f"| {name} | {' | '.join(cells)} | {exact} | {metrics['gene']['right']} | {seconds} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a trained dna run (skipped when not given)")
    parser.add_argument("--no-fly", action="store_true", help="skip AUGUSTUS's shipped fly parameters")
    args = parser.parse_args(argv)

    files = data.augustus_files()
    test_records = data.read_genbank(files["test"])
    annotated = [r.genes() for r in test_records]
    names = [r.name for r in test_records]
    results, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="augustus-") as workdir:
        config = augustus_config(Path(workdir))
        train_seconds = train_augustus(config, files["train"])
        runs = [(f"AUGUSTUS, etraining on the 486 tutorial training genes", SPECIES, f"{train_seconds:.0f} s train")]
        if not args.no_fly:
            runs.append(("AUGUSTUS, shipped `fly` parameters (trained on other data)", "fly", "none here"))
        for name, species, training in runs:
            stdout, seconds = run_augustus(config, species, files["test"])
            results[name] = (gene_finder_accuracy(annotated, gtf_genes(stdout, names)),
                             f"{training}, {seconds:.0f} s predict")
            notes.append(f"{name}: AUGUSTUS's own evaluation {own_evaluation(stdout)}")
        # AUGUSTUS echoes the annotation it read: the zoo's reading (exons, strands, phases) must be the same.
        notes.append(f"annotation (exons, strand, phase) as AUGUSTUS reads it == as the zoo reads it: "
                     f"{gtf_genes(stdout, names, 'database') == annotated}")
    if args.run_dir is not None:
        genes, seconds = zoo_genes(args.run_dir, test_records)
        results[f"zoo dna ({args.run_dir})"] = (gene_finder_accuracy(annotated, genes), f"{seconds:.0f} s predict")

    print(f"{len(test_records)} held-out genes ({sum(len(r.sequence) for r in test_records):,} bases), "
          f"{sum(len(g.exons) for genes in annotated for g in genes)} exons; Sn / Sp:")
    print("| system | nucleotide | exon | gene | exons exact | genes exact | time |")
    print("|---|---|---|---|---|---|---|")
    for name, (metrics, seconds) in results.items():
        print(row(name, metrics, seconds))
    for note in notes:
        print(note)
    trained = next(iter(results.values()))[0]
    for name, (metrics, _) in list(results.items())[1:]:
        ratios = ", ".join(f"{level} {metrics[level][kind]:.3f}/{trained[level][kind]:.3f} = "
                           f"{metrics[level][kind] / max(trained[level][kind], 1e-9):.2f}x"
                           for level in ("exon", "gene") for kind in ("sensitivity", "specificity"))
        print(f"{name} vs etrained AUGUSTUS (Sn, Sp): {ratios}")


if __name__ == "__main__":
    main()
