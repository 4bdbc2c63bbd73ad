"""Gene structure (sequence → sequence): DNA bases in, per-base exon / intron / intergenic labels out."""
