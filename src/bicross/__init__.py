"""bicross: a bi-encoder and a cross-encoder that teach each other, as a Snakemake workflow."""

__version__ = "0.1.0"
