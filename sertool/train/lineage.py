"""The data a training run is given, as MLflow datasets: what its figures were computed from.

Every run logs two dataset inputs (`RunLogger.log_datasets`): a `training` one (the scheme's Train
clips; Train and Development for a refit) and an `evaluation` one (Development, which selects the
checkpoint and gives the dev figures). Each is named after the store and the split scheme
(`store/corpus/Train`), has the store's root as its source, and a digest over the clip ids, their
labels (and the votes or genders that make targets, when a lever uses them), the encoder fingerprints,
the audio the frames came from and the text choice with the transcripts the text frames embedded
(`store.lineage`). The digest of the training data is also the run's
tag `sertool.data_digest`, which ensembles compare and `--filter` can select on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.catalog import Catalog
from ..store.layout import StoreLayout
from ..store.lineage import DatasetDigest, DatasetSpec, dataset_digest, store_name
from ..store.splits import DEV, TRAIN
from ..tracking.names import EVALUATION, TRAINING
from ..tracking.records import DatasetRef

if TYPE_CHECKING:
    from .config import TrainConfig


def store_label(layout: StoreLayout) -> str:
    """How runs name their store (tag `sertool.store`, datasets' source): the arrays' URL or the root's path."""
    return layout.embeddings_url or str(layout.root.resolve())


def dataset_specs(config: "TrainConfig", *, refit: bool = False) -> dict[str, DatasetSpec]:
    """Context -> the spec of the data a run of `config` trains and is evaluated on."""
    from .targets import Levers

    levers = Levers(config.targets, config.o_votes, config.label_smoothing, config.annotator_dropout,
                    config.attribute_targets, config.aux_weights, config.seed)
    text = config.text_plan  # a refit reads one text for Train and Development (`TrainConfig` checks)
    train = DatasetSpec(config.splits, (TRAIN, DEV) if refit else (TRAIN,), tuple(config.encoders),
                        votes=levers.needs_votes, genders="gender" in levers.aux, text_variant=text.variant(TRAIN))
    specs = {TRAINING: train}
    if not refit:
        specs[EVALUATION] = DatasetSpec(config.splits, (DEV,), tuple(config.encoders), text_variant=text.variant(DEV))
    return specs


def run_datasets(catalog: Catalog, config: "TrainConfig", *, refit: bool = False) -> dict[str, DatasetDigest]:
    """Context -> the digest of what the store holds now for a run of `config`."""
    return {ctx: dataset_digest(catalog, spec) for ctx, spec in dataset_specs(config, refit=refit).items()}


def dataset_name(layout_or_root: StoreLayout | str, spec: DatasetSpec) -> str:
    root = layout_or_root.root if isinstance(layout_or_root, StoreLayout) else layout_or_root
    return f"{store_name(root)}/{spec.scheme}/{'+'.join(spec.splits)}"


def as_refs(layout: StoreLayout, digests: dict[str, DatasetDigest]) -> list[DatasetRef]:
    """The digests as the datasets a run logs."""
    return [DatasetRef(dataset_name(layout, d.spec), d.digest, store_label(layout), ctx,
                       {"clips": d.clips, "sertool_spec": d.spec.to_dict()})
            for ctx, d in digests.items()]
