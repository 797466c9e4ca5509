# The gold-label firewall: training pairs are written without their gold scores.
import pyarrow.parquet as pq

from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    from bicross.data.sts import training_pairs
    from bicross.schemas import PAIR_TEXTS, write_table

    write_table(training_pairs([pq.read_table(path) for path in snakemake.input]), snakemake.output[0], PAIR_TEXTS)
