"""NC curves while a run trains: --nc_every N and --tensorboard DIR of every trainer (args.py).

Every N epochs, after the epoch's update, the model's features over the un-augmented training
set (the loader's preloaded images, in index order, eval mode, torch.inference_mode) go through
``nc_repro.metrics.NeuralCollapse``, the engine of the validators, under the run's paper
convention, against the head product W (the classifier for a one-layer head) and its bias.
The scalars are added to that epoch's line of train_log.jsonl under ``nc`` and NC1 is shown on
the progress bar. --tensorboard writes loss, accuracy, learning rate and those metrics as
TensorBoard scalars. The pass draws no random numbers and changes no parameter or buffer, so
the trained weights are those of a run without the flags, bit for bit.
"""
import os

from nc_repro.batches import BatchLoader
from nc_repro.errors import UsageError
from nc_repro.metrics import NeuralCollapse, layer_inputs

PASS_BATCH = 1024


class NCCurves:
    """``after_epoch(model, train_set, epoch, stats)`` -> the epoch's NC scalars ({} between
    measurements); ``close()`` flushes the event file."""

    def __init__(self, every, convention, tensorboard_dir=None):
        self.every, self.convention, self.tensorboard_dir = every, convention, tensorboard_dir
        self.writer = None          # opened at the first epoch: a run stopped before writes no folder
        if tensorboard_dir:
            summary_writer_class()  # a missing tensorboard package stops the run before it starts
            check_log_dir(tensorboard_dir)

    def measures(self, model, train_set):
        W = model.head_products()[0]                                  # the head's product
        curves = NeuralCollapse(len(W))
        batches = BatchLoader(train_set, PASS_BATCH)          # index order, no augmentation
        for features, labels, logits in layer_inputs(model, model.head_layers()[0], batches):
            curves.update(features, labels, logits)
        result = curves.compute(W, model.classifier_bias(), self.convention)
        return {key: value for key, value in result.items() if isinstance(value, float)}

    def after_epoch(self, model, train_set, epoch, stats):
        measured = {}
        if self.every and epoch % self.every == 0:
            measured = self.measures(model, train_set)
        if self.tensorboard_dir:
            self.writer = self.writer or summary_writer_class()(log_dir=self.tensorboard_dir)
            for key in ('loss', 'train_acc1', 'train_acc5', 'lr'):
                self.writer.add_scalar('train/' + key, stats[key], epoch)
            for key, value in measured.items():
                self.writer.add_scalar('nc/' + key, value, epoch)
            self.writer.flush()
        return measured

    def close(self):
        if self.writer is not None:
            self.writer.close()


def check_log_dir(path):
    """--tensorboard DIR must be a folder, or creatable as one: checked before training starts."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)     # the nearest existing folder above it
    if not os.path.isdir(existing):
        raise UsageError('--tensorboard %s: %s is a file, not a folder; choose a folder for the '
                         'event files' % (path, existing))
    if not os.access(existing, os.W_OK):
        raise UsageError('--tensorboard %s: %s is not writable' % (path, existing))


def summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or pip install '.[tensorboard]')") from None
    return SummaryWriter


def make_curves(nc_every, tensorboard, convention, run_name=None):
    """The NCCurves of --nc_every N / --tensorboard DIR, or None when neither is given (the
    default). run_name: a subfolder of DIR for scripts that train several models (Hong's)."""
    if nc_every is None and tensorboard is None:
        return None
    if nc_every is not None and nc_every < 1:
        raise UsageError('--nc_every must be a positive number of epochs (got %d)' % nc_every)
    folder = tensorboard
    if folder and run_name:
        folder = os.path.join(folder, run_name)
    return NCCurves(nc_every, convention, folder)
