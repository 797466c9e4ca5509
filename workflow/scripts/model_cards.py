from bicross.card import dataset_name, write_cards
from bicross.logs import rule_log

with rule_log(snakemake.log[0]):
    write_cards(list(snakemake.input.models), list(snakemake.output), snakemake.input.metrics,
                snakemake.params.experiment, snakemake.params.sections,
                dataset=dataset_name(snakemake.config["dataset"]), train_split=snakemake.params.train_split)
