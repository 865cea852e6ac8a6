"""Resizable-Adapt (paper section 4.3): a per-image scaling configuration, chosen by a light classifier.

Three steps, each a library function and a ``resizable adapt`` sub-command:

1. **Label** (:func:`label_checkpoint`). Every allowed configuration of a trained ResizableNet runs
   on a sample of held-out images (by default ``val:0-0.5``; walking the configuration tree of :mod:`resizable.evaluation.walker`, so
   shared prefixes run once). For every image and configuration the file keeps whether the
   prediction is right and the probability given to the true class, and each image's *best
   configuration* (:func:`best_config_index`):

   - rule ``cheapest`` (default): among the configurations that classify the image correctly, the
     one with the fewest MACs (ties: higher probability on the true class, then the earlier
     configuration in ``configs()`` order); when none does, the one with the highest probability on
     the true class (ties: fewer MACs, then the earlier configuration).
   - rule ``confident``: the configuration with the highest probability on the true class (same
     tie-breaks), whatever it costs, or under a threshold (the paper's rule).
   - rule ``cost-aware``: the highest ``p_true - lambda x MACs / full MACs``.

2. **Train** (:func:`train_classifier`). A :class:`ConfigClassifier` (three 3x3 convolutions with
   BN and ReLU, global average pooling, a linear layer; softmax over the configurations) learns
   the label from cheap features of the same network (``source``):

   - ``min``: the last stage's output of the smallest configuration (the paper's "attached at the
     last stage"). That pass is paid for every image; its logits are reused for images routed to
     the smallest configuration, and its activations for the stages a routed configuration shares
     with it (same leading factors).
   - ``stem``: the stem's output, which every configuration computes anyway and reuses.

3. **Route** (:class:`Adapter`, :func:`evaluate_adapt`). Each image runs at the allowed
   configuration its classifier scores highest; images of a batch that go to the same configuration
   run together as one batch. Under a budget ``B`` (millions of MACs) only configurations whose
   *per-image routed cost* is at most ``B`` are allowed, where the routed cost is everything that
   image runs: the feature pass, the classifier, and the rest of the chosen configuration
   (:class:`RoutingCosts`). No routed image ever exceeds ``B``.

Along the whole front (:mod:`resizable.adapt.front`, :mod:`resizable.adapt.compare`): labels per threshold
(the paper's rule: ``confident`` among the configurations under a target cost) or by a cost-aware rule
(:class:`LabelKnob`), one classifier per knob; a confidence cascade (:class:`Cascade`, shared stages run once,
thresholds chosen for a target mean cost by :func:`choose_cascades`); each as a curve against the NAS front,
the line between its points and the oracle, with knobs chosen on their own images. Routers and cascades
export as TorchScript or chained ONNX networks (:mod:`resizable.adapt.export`).

Label, classifier and cascade files record the weights' SHA-256 (:func:`resizable.nas.table_file.weights_sha256`) and
refuse to be used with other weights (:class:`AdaptError`).
"""
from .classifier import (CLASSIFIER_FORMAT, SOURCES, ConfigClassifier, FeaturePass, TrainedClassifier, feature_pass,
                         feature_shape, load_classifier, module_macs, save_classifier, train_classifier)
from .labels import (LABELS_FORMAT, RULES, AdaptError, ConfigOutcomes, LabelKnob, LabelSet, best_config_index,
                     config_outcomes, label_images, label_knobs, load_label_sets, load_labels, model_identity,
                     save_labels)
from .routing import Adapter, RoutingCosts, evaluate_adapt, outcomes_table, routing_costs
from .cascade import (CASCADE_FORMAT, Cascade, CascadeChoice, CascadePlan, cascade_plan, choose_cascades, load_cascade,
                      save_cascade)
from .front import Comparison, FrontPoint, Setting, front_points, line_top1, oracle_setting, pick_setting
from .from_checkpoint import (LARGE_SAMPLE, ClassifierOptions, LabelOptions, RoutingOptions, eval_checkpoint,
                              label_checkpoint, train_checkpoint, train_classifiers)
from .compare import CascadeOptions, cascade_checkpoint, evaluate_checkpoint

__all__ = [
    "LABELS_FORMAT", "CLASSIFIER_FORMAT", "CASCADE_FORMAT", "RULES", "SOURCES", "LARGE_SAMPLE", "AdaptError",
    "ConfigOutcomes", "config_outcomes", "best_config_index", "LabelKnob", "label_knobs", "model_identity", "LabelSet",
    "label_images", "save_labels", "load_labels", "load_label_sets",
    "CascadePlan", "cascade_plan", "Cascade", "CascadeChoice", "choose_cascades", "save_cascade", "load_cascade",
    "FrontPoint", "front_points", "line_top1", "Setting", "pick_setting", "oracle_setting", "Comparison",
    "ConfigClassifier", "module_macs", "FeaturePass", "feature_pass", "feature_shape", "TrainedClassifier",
    "train_classifier", "save_classifier", "load_classifier",
    "RoutingCosts", "routing_costs", "Adapter", "outcomes_table", "evaluate_adapt",
    "LabelOptions", "ClassifierOptions", "RoutingOptions", "label_checkpoint", "train_checkpoint", "train_classifiers",
    "eval_checkpoint", "evaluate_checkpoint", "CascadeOptions", "cascade_checkpoint",
]
