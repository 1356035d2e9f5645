"""Losses and explicit regularisers, exactly as each paper's code computes them.

Data terms (z = logits (B, K), y = labels, e_y = one-hot):
  CrossEntropy  mean_i -log softmax(z_i)_{y_i}
  MSE           (1/(B K)) sum_i ||z_i - e_{y_i}||^2        (nn.MSELoss, no 1/2; J's MSE)
  RescaledMSE   (1/B) sum_i (1/K) [k (z_{i,y_i} - M)^2 + sum_{j != y_i} z_{i,j}^2]
                (Zhou et al. 2022, rescaled square loss with alpha = k; J's utils.Rescale_Square_Loss)

Explicit penalties (the optimiser's coupled weight decay is configured in training.py):
  zhou2022 --sep_decay  (T)        + lambda_W/2 (||W||^2 + ||b||^2) + lambda_H/2 sum_batch ||f_i||^2
                                   with f_i the L2-NORMALISED feature the model returns, so the
                                   feature term is the constant B/2 lambda_H: faithfully a no-op
                                   (T's loss_compute; docs/original_code.md, T-B1).
  dang --sep_decay      (D23)      + lambda_W/2 sum_l ||W_l||_F^2 + lambda_H/2 sum_batch ||h_i||^2
                                   (head weights only; features summed over the batch); the
                                   imbalanced trainers halve the data term first (MSE and CE).
  second-order trainer  (J)        + sum_{p trainable} lambda/2 ||p||^2
"""
import dataclasses

import torch.nn as nn
import torch.nn.functional as F

from nc_repro import recipes


class RescaledMSE(nn.Module):
    """Rescaled square loss of Zhou et al. 2022 (their Eq. for l_{M,k}); M = k = 1 is MSE."""

    def __init__(self, num_classes, k=1.0, M=1.0):
        super().__init__()
        self.num_classes, self.k, self.M = num_classes, k, M

    def forward(self, logits, labels):
        target = F.one_hot(labels, self.num_classes).to(logits.dtype)        # (B, K)
        weights = 1 + (self.k - 1) * target                                  # k on the true class
        per_sample = (weights * (logits - self.M * target) ** 2).sum(1) / self.num_classes
        return per_sample.mean()


class OneHotMSE(nn.Module):
    """nn.MSELoss against the one-hot target of width num_classes (J fixed T's width bug)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, logits, labels):
        return F.mse_loss(logits, F.one_hot(labels, self.num_classes).to(logits.dtype))


def make_criterion(loss, num_classes, k=1.0, M=1.0):
    if loss == 'CrossEntropy':
        return nn.CrossEntropyLoss()
    if loss == 'MSE':
        return OneHotMSE(num_classes)
    if loss == 'RescaledMSE':
        return RescaledMSE(num_classes, k, M)
    raise ValueError('--loss %s is not known; choose CrossEntropy, MSE or RescaledMSE' % loss)


class Objective:
    """data_scale * data_term + the recipe's explicit penalties.

    penalty: None (regularisation through the optimiser's weight decay only),
             'zhou_sep_decay', 'dang_sep_decay', or 'all_params' (second-order trainer).
    """

    def __init__(self, criterion, penalty=None, lambda_W=0.0, lambda_H=0.0, data_scale=1.0):
        self.criterion, self.penalty = criterion, penalty
        self.lambda_W, self.lambda_H, self.data_scale = lambda_W, lambda_H, data_scale

    def __call__(self, model, logits, returned_features, labels):
        loss = self.data_scale * self.criterion(logits, labels)
        if self.penalty == 'zhou_sep_decay':
            classifier = model.head_layers()[-1]
            squared = classifier.weight.pow(2).sum()
            if classifier.bias is not None:   # T crashes here with --no-bias; we skip the term
                squared = squared + classifier.bias.pow(2).sum()
            loss = loss + self.lambda_W / 2 * squared
            loss = loss + self.lambda_H / 2 * returned_features.pow(2).sum()
        elif self.penalty == 'dang_sep_decay':
            weights = sum(layer.weight.pow(2).sum() for layer in model.head_layers())
            loss = loss + self.lambda_W / 2 * weights
            loss = loss + self.lambda_H / 2 * returned_features.pow(2).sum()
        elif self.penalty == 'all_params':
            loss = loss + sum(self.lambda_W / 2 * p.pow(2).sum()
                              for p in model.parameters() if p.requires_grad)
        return loss


class HongObjective:
    """Hong & Ling 2023, per mini-batch B (the loss of Hong's train_utils loops):
        CE_mean + lambda_W ||W||_F^2 + lambda_b ||b||^2 + lambda_H (N/|B|) sum_{i in B} ||h_i||^2,
    an unbiased estimate of the UFM objective (1/N) sum_i CE + lambda_W ||W||^2 + lambda_H ||H||^2
    + lambda_b ||b||^2 (no 1/2 factors). Warm phase of Hong's simple_train_batch_warm:
    lambda_H and lambda_W divided by 10 for the first ``warm_epochs`` epochs (the original prints
    "larger", the code makes them smaller). A bias-free classifier skips the bias term (the
    original crashed, docs/original_code.md, Hong-B11)."""

    def __init__(self, lambda_H, lambda_W, lambda_b, num_train, warm_epochs=0):
        self.lambda_H, self.lambda_W, self.lambda_b = lambda_H, lambda_W, lambda_b
        self.num_train, self.warm_epochs, self.scale = num_train, warm_epochs, 1.0
        self.criterion = nn.CrossEntropyLoss()

    def start_epoch(self, epoch_index):
        self.scale = 0.1 if epoch_index < self.warm_epochs else 1.0

    def __call__(self, model, logits, features, labels):
        classifier = model.head_layers()[-1]
        loss = self.criterion(logits, labels)
        loss = loss + self.scale * self.lambda_W * classifier.weight.pow(2).sum()
        if classifier.bias is not None:
            loss = loss + self.lambda_b * classifier.bias.pow(2).sum()
        feature_sum = features.pow(2).sum()
        return loss + self.scale * self.lambda_H * self.num_train / len(labels) * feature_sum


@dataclasses.dataclass(frozen=True)
class ObjectiveSettings:
    """The flags that make a trainer's objective: --paper (which --sep_decay penalty), --loss
    with its rescaling --k and --M, --weight_decay, --feature_decay_rate and --sep_decay."""
    paper: str
    loss: str
    k: float = 1.0
    M: float = 1.0
    weight_decay: float = 0.0
    feature_decay_rate: float = 0.0
    sep_decay: bool = False


def make_objective(settings, num_classes, unbalanced=False, parameter_penalty=False):
    """The training objective each paper's trainer uses for ``settings`` (ObjectiveSettings):
    the criterion, plus lambda/2 sum_p ||p||^2 over all trainable parameters when
    ``parameter_penalty`` (Zhou 2022's second-order trainer), or the --sep_decay penalties (data
    term halved for the imbalanced trainers, Dang 2023 eq. 2)."""
    criterion = make_criterion(settings.loss, num_classes, settings.k, settings.M)
    if parameter_penalty:
        return Objective(criterion, 'all_params', settings.weight_decay)
    if not settings.sep_decay:
        return Objective(criterion)
    penalty = recipes.get(settings.paper).sep_decay_penalty          # 'zhou_sep_decay' or 'dang_sep_decay'
    return Objective(criterion, penalty, settings.weight_decay, settings.feature_decay_rate,
                     data_scale=0.5 if unbalanced else 1.0)
