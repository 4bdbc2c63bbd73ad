"""SequenceTagger: an emission encoder with a CRF or softmax head, trained by `fit(inputs, tags)`."""

import keras
import tensorflow as tf

from zoo.layers import CRF
from zoo.models.tag_f1 import TagF1


@keras.saving.register_keras_serializable(package="zoo")
class SequenceTagger(keras.Model):
    """Encoder + tagging head, trained with `model.fit(tokens, tags)`; the loss lives in `compute_loss`.

    With the `"crf"` head the loss is the CRF's negative log-likelihood of the gold path and tags are Viterbi
    decoded; with `"softmax"` it is the per-token cross-entropy and tags are per-token argmaxes. Both losses are
    summed over the valid steps of a sequence and averaged over sequences.

    Tracks `TagF1` as the metric `tag_f1` (tag 0 must be the background tag: O, intergenic).

    Args:
        encoder: `keras.Model` inputs → `[emissions (batch, time, K), mask (batch, time)]`, or with a third output
            `step_transitions (batch, time, K, K)` that the CRF adds to its transition scores into each step (what
            the input allows: a grammar such as dna's gene structure; CRF head only).
        head: `"crf"` or `"softmax"`.
        background_bias: float. Added to the emission score of tag 0 before decoding; a negative value trades
            precision for recall. Tune it on validation data after training (it is 0 while training).
        emission_loss_weight: float. With the CRF head, adds this weight times the per-step softmax cross-entropy
            of the emissions to the loss: a dense, local gradient for every step, which keeps a CRF over many
            gated states (dna's gene grammar) from settling on the background tag early in training.
        min_durations: optional K ints, the CRF head's shortest decoded run of each tag (see `CRF`).

    Returns (call):
        dict with `"tags"` int32 `(batch, time)` (0 at padding), `"emissions"`, `"mask"` and, from an encoder with
        three outputs, `"step_transitions"`.
    """

    def __init__(self, encoder, head="crf", background_bias=0.0, emission_loss_weight=0.0, min_durations=None,
                 **kwargs):
        super().__init__(**kwargs)
        if head not in ("crf", "softmax"):
            raise ValueError(f"head must be 'crf' or 'softmax', got {head!r}")
        self.encoder, self.head = encoder, head
        self.background_bias = float(background_bias)
        self.emission_loss_weight = float(emission_loss_weight)
        self.num_tags = encoder.outputs[0].shape[-1]
        if len(encoder.outputs) == 3 and head != "crf":
            raise ValueError("an encoder with step transition scores needs the 'crf' head")
        if min_durations is not None and head != "crf":
            raise ValueError("min_durations needs the 'crf' head")
        self.crf = CRF(self.num_tags, min_durations=min_durations, name="crf") if head == "crf" else None
        self.tag_f1 = TagF1()

    def call(self, inputs, training=None):
        emissions, mask, *steps = self.encoder(inputs, training=training)
        outputs = {"emissions": emissions, "mask": mask}
        if steps:
            outputs["step_transitions"] = steps[0]
        return {"tags": self.decode(emissions, mask, *steps), **outputs}

    def _biased(self, emissions):
        if not self.background_bias:
            return emissions
        return tf.concat([emissions[..., :1] + self.background_bias, emissions[..., 1:]], axis=-1)

    def decode(self, emissions, mask, step_transitions=None):
        """Tags `(batch, time)` int32 of emission scores (0 at padding): the Viterbi path or per-step argmaxes."""
        emissions = self._biased(emissions)
        if self.crf is not None:
            return self.crf(emissions, mask=mask, step_transitions=step_transitions)
        return tf.where(mask, tf.argmax(emissions, axis=-1, output_type=tf.int32), 0)

    def probabilities(self, emissions, mask, step_transitions=None):
        """Per-step tag probabilities `(batch, time, K)`, zeros at padding: the CRF's posterior marginals
        (forward-backward) or the softmax of the emissions."""
        emissions = self._biased(emissions)
        if self.crf is not None:
            return self.crf.marginals(emissions, mask, step_transitions)
        return tf.nn.softmax(emissions) * tf.cast(mask, emissions.dtype)[:, :, tf.newaxis]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        emissions, mask = y_pred["emissions"], y_pred["mask"]

        def cross_entropy():
            per_step = keras.losses.sparse_categorical_crossentropy(y, emissions, from_logits=True)
            return tf.reduce_sum(per_step * tf.cast(mask, per_step.dtype), axis=1)

        if self.crf is None:
            per_row = cross_entropy()
        else:
            per_row = self.crf.negative_log_likelihood(emissions, y, mask, y_pred.get("step_transitions"))
            if self.emission_loss_weight:
                per_row += self.emission_loss_weight * cross_entropy()
        loss = tf.reduce_mean(per_row)
        return loss + tf.add_n(self.losses) if self.losses else loss

    @property
    def min_durations(self):
        """The CRF head's shortest decoded run per tag, or None (softmax head, or no minimum)."""
        return self.crf.min_durations if self.crf is not None else None

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.tag_f1.update_state(y, y_pred["tags"], y_pred["mask"])
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {"name": self.name, "encoder": keras.saving.serialize_keras_object(self.encoder), "head": self.head,
                "background_bias": self.background_bias, "emission_loss_weight": self.emission_loss_weight,
                "min_durations": self.min_durations}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def average_taggers(taggers: list[SequenceTagger], name: str = "tagger_ensemble") -> SequenceTagger:
    """One `SequenceTagger` whose emission and transition scores are the means of ``taggers``' (one input of
    shape `(batch, time)`, same head and tags): a product of the members' CRFs, decoded exactly by one Viterbi
    pass. A single tagger is returned as is."""
    if len(taggers) == 1:
        return taggers[0]
    spec = taggers[0].encoder.inputs[0]
    inputs = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name)
    outputs = [t.encoder(inputs) for t in taggers]
    emissions = keras.layers.Average(name="mean_emissions")([emissions for emissions, _ in outputs])
    encoder = keras.Model(inputs, [emissions, outputs[0][1]], name=f"{name}_encoder")
    ensemble = SequenceTagger(encoder, taggers[0].head, name=name, min_durations=taggers[0].min_durations)
    ensemble(tf.fill([1, 2], "") if spec.dtype == "string" else tf.zeros([1, 2], spec.dtype))  # builds, for saving
    if ensemble.crf is not None:
        ensemble.crf.set_weights([sum(w) / len(taggers) for w in zip(*(t.crf.get_weights() for t in taggers))])
    return ensemble
