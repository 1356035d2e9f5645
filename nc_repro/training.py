"""The one training loop of the project, and the pieces every trainer configures it with.

``fit`` runs epochs of ``train_one_epoch``, steps the LR schedule once per epoch, and writes
``epoch_XXX.pth`` (the model's state dict, as the originals) at the recipe's cadence, a line
per epoch in ``train_log.txt`` (the originals' formats) and one JSON line in
``train_log.jsonl``. First-order optimisers and closure-based ones (L-BFGS, SdLBFGS) share
the same loop: the step is always driven by a closure.

Differences from the originals, all affecting logs only: the logged training accuracy is
that of the training forward pass itself (train mode, before the update) instead of a
second eval-mode forward after the update (docs/original_code.md, J-B15 and D23-B18); the loss is read from
the device only every tenth batch, as the originals print it.
"""
import dataclasses
import json
import math
import os
import random
import shlex
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from nc_repro import checkpoints, fileio
from nc_repro.errors import RunStopped, UsageError
from nc_repro.optimizers import SdLBFGS

LOG_EVERY_BATCHES = 10
# An epoch's mean loss above this has exploded (the papers' losses start near log K or 1 and
# only fall; --lr 1e3 with cross-entropy gave 5.4e31 at epoch 1): the run stops like a NaN one.
EXPLODED_LOSS = 1e8


class TrainingDiverged(RunStopped):
    pass


def set_seed(seed):
    """utils.set_seed of J and D23."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    os.environ['PYTHONHASHSEED'] = str(seed)


def setup(seed, device='auto', gpu_id=0, deterministic=False):
    """The first step of every trainer: the device (``select_device``), the seed of the
    originals (``set_seed``) and, under --deterministic, deterministic kernels. Returns the device."""
    device = select_device(device, gpu_id)
    set_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    return device


def select_device(device='auto', gpu_id=0):
    """cuda:<gpu_id> when CUDA is available (the originals), else the CPU; --device overrides."""
    if device != 'auto':
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device('cuda:%d' % gpu_id)
    return torch.device('cpu')


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """--optimizer, --lr, --weight_decay, --sep_decay and --history_size of a trainer."""
    optimizer: str
    lr: float
    weight_decay: float = 0.0
    sep_decay: bool = False
    history_size: int = 10


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    """--decay_type, --patience and --gamma: the LR schedule, stepped once per epoch."""
    decay_type: str = 'step'
    patience: int = 40
    gamma: float = 0.1


def make_optimizer(settings, model, coupled_weight_decay=True):
    """utils.make_optimizer of J and D23 (``settings``: OptimizerSettings): one group of all
    trainable parameters (a frozen ETF weight is left out). Coupled L2 weight decay unless
    --sep_decay or a second-order trainer, whose regularisation is in the loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = settings.weight_decay if coupled_weight_decay and not settings.sep_decay else 0.0
    if settings.optimizer == 'SGD':
        return torch.optim.SGD(params, lr=settings.lr, momentum=0.9, weight_decay=decay)
    if settings.optimizer == 'Adam':
        return torch.optim.Adam(params, lr=settings.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=decay)
    if settings.optimizer == 'LBFGS':
        return torch.optim.LBFGS(params, lr=settings.lr, history_size=settings.history_size,
                                 line_search_fn='strong_wolfe')
    if settings.optimizer == 'SdLBFGS':
        return SdLBFGS(params, lr=settings.lr, history_size=settings.history_size, lr_decay=False)
    raise UsageError('--optimizer %s is not known; choose SGD, Adam, LBFGS or SdLBFGS' % settings.optimizer)


def make_scheduler(settings, optimizer):
    """``settings`` (ScheduleSettings): 'step' -> StepLR(--patience, --gamma);
    'multistep_100_150' -> MultiStepLR([100, 150])."""
    if settings.decay_type == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.patience, gamma=settings.gamma)
    milestones = [int(token) for token in settings.decay_type.split('_')[1:]]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=settings.gamma)


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of samples whose label is among the top-k logits, for each k (capped at K)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices          # (B, kmax)
    hits = top == labels[:, None]
    return [hits[:, :k].any(1).sum() for k in ks]


def train_one_epoch(model, loader, objective, optimizer, epoch, epochs, log=None):
    """One pass over ``loader``. Returns {'loss', 'train_acc1', 'train_acc5'}: batch-size
    weighted means of the pre-step loss and accuracies, in percent."""
    model.train()
    loss_sum = correct1 = correct5 = 0.0
    seen = 0
    for batch_index, (images, labels) in enumerate(loader):
        first = {}

        def closure():
            optimizer.zero_grad(set_to_none=True)
            logits, returned_features = model(images)
            loss = objective(model, logits, returned_features, labels)
            loss.backward()
            if not first:               # L-BFGS calls the closure repeatedly; log the first
                first.update(loss=loss.detach(), logits=logits.detach())
            return loss

        if getattr(optimizer, 'needs_closure', isinstance(optimizer, torch.optim.LBFGS)):
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
        batch = len(labels)
        top1, top5 = topk_correct(first['logits'], labels)
        loss_sum = loss_sum + first['loss'] * batch
        correct1, correct5 = correct1 + top1, correct5 + top5
        seen += batch
        if log is not None and batch_index % LOG_EVERY_BATCHES == 0:
            log('[epoch: %d] (%d/%d) | Loss: %.4f | top1: %.4f | top5: %.4f ' % (
                epoch, batch_index + 1, len(loader), float(loss_sum) / seen,
                100 * float(correct1) / seen, 100 * float(correct5) / seen))
    return {'loss': float(loss_sum) / seen, 'train_acc1': 100 * float(correct1) / seen,
            'train_acc5': 100 * float(correct5) / seen}


def fit(model, loader, objective, optimizer, scheduler, run_dir, epochs, save_every=1,
        log_name='train_log.txt', header_lr=True, resume=False, save_rule=None, checkpoint_file=None,
        resume_flag=True, curves=None):
    """Train for ``epochs`` epochs, saving checkpoints into run_dir. Returns per-epoch stats.

    Beside each saved epoch_XXX.pth the full training state goes to resume.pth; with
    resume=True the loop continues after the epoch stored there, so a killed run finishes
    with the same weights as an uninterrupted one. Stops with TrainingDiverged (naming the
    epoch and the last good checkpoint) as soon as an epoch's loss is not finite or above
    EXPLODED_LOSS.
    save_rule(epoch, epochs) -> bool overrides the every-``save_every`` cadence; an objective
    with ``start_epoch(epoch_index)`` is told each epoch's 0-based index (warm phases);
    checkpoint_file(run_dir, epoch) overrides the epoch_XXX.pth file names (Hong's layout);
    resume_flag=False for scripts that resume by themselves (Hong's): the full-disk hint then
    repeats the command without adding --resume. curves: an nc_curves.NCCurves (--nc_every,
    --tensorboard), told each finished epoch; its NC scalars join the epoch's train_log.jsonl
    line under 'nc'.

    The run folder is locked for this process until fit returns (checkpoints.lock_run_dir: a
    second trainer stops with exit code 2). A full disk stops with one line naming the file, the free space,
    the last good checkpoint and the command that continues (exit code 75, fileio)."""
    checkpoints.lock_run_dir(run_dir)          # a no-op when prepare_run_dir took it already
    try:
        return _resume_and_fit(model, loader, objective, optimizer, scheduler, run_dir, epochs, save_every,
                               log_name, header_lr, resume, save_rule, checkpoint_file, resume_flag, curves)
    finally:
        checkpoints.unlock_run_dir(run_dir)    # the run is over (or stopped): the folder is free
        if curves is not None:
            curves.close()


def _resume_and_fit(model, loader, objective, optimizer, scheduler, run_dir, epochs, save_every,
                    log_name, header_lr, resume, save_rule, checkpoint_file, resume_flag, curves):
    save_rule = save_rule or (lambda epoch, total: checkpoints.is_saved_epoch(epoch, total, save_every))
    checkpoint_file = checkpoint_file or checkpoints.checkpoint_path
    state = checkpoints.load_resume_state(run_dir) if resume else None
    start_epoch = 1
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        loader.generator.set_state(state['loader_generator'])
        checkpoints.restore_rng(state)
        start_epoch = state['epoch'] + 1
        print('resuming %s after epoch %d' % (run_dir, state['epoch']))
    progress = {'last_saved': checkpoint_file(run_dir, state['epoch']) if state else None}
    with fileio.disk_full_hint(lambda: continue_hint(progress['last_saved'], resume_flag)):
        return _fit(model, loader, objective, optimizer, scheduler, run_dir, epochs, log_name,
                    header_lr, state, start_epoch, save_rule, checkpoint_file, progress, curves)


def continue_hint(last_saved, resume_flag=True):
    """How to go on after a full disk: the last good checkpoint and this command, with --resume
    when the script needs it to continue (resume_flag)."""
    argv = list(sys.argv)
    if resume_flag and argv and argv[0].endswith('.py') and '--resume' not in argv:
        argv.append('--resume')
    command = 'python ' + shlex.join(argv) if argv and argv[0].endswith('.py') else 'the same command'
    return 'last good checkpoint: %s; free space, then continue with: %s' % (
        os.path.abspath(last_saved) if last_saved else 'none (no epoch saved yet)', command)


def json_line(stats):
    """An epoch's train_log.jsonl line: valid JSON, a non-finite value (an NC metric of dead
    features) written as null and named under fileio.NON_FINITE_KEY."""
    found = {}
    clean = fileio.finite_json_values(stats, found=found)
    if found:
        clean[fileio.NON_FINITE_KEY] = found
    return json.dumps(clean, allow_nan=False)


def _read_kept_lines(jsonl_path, start_epoch):
    """train_log.jsonl lines of the epochs before start_epoch; a partial last line (a kill or a
    full disk mid-write) is dropped."""
    kept = []
    with open(jsonl_path) as f:
        for line in f:
            try:
                if json.loads(line)['epoch'] < start_epoch:
                    kept.append(line if line.endswith('\n') else line + '\n')
            except (ValueError, KeyError, TypeError):
                continue
    return kept


def _fit(model, loader, objective, optimizer, scheduler, run_dir, epochs, log_name, header_lr,
         state, start_epoch, save_rule, checkpoint_file, progress, curves):
    log_path = os.path.join(run_dir, log_name)
    with fileio.stop_if_disk_full(log_path):
        log_file = open(log_path, 'a' if state else 'w')

    def log(line, echo=False):
        with fileio.stop_if_disk_full(log_path):
            log_file.write(line + '\n')
            log_file.flush()
        if echo:
            tqdm.write(line)

    jsonl_path = os.path.join(run_dir, 'train_log.jsonl')
    kept = []
    if state is not None and os.path.exists(jsonl_path):
        kept = _read_kept_lines(jsonl_path, start_epoch)
    fileio.atomic_write_text(jsonl_path, ''.join(kept))
    if state is None:
        parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log('# of model parameters: %d' % parameters, echo=True)
        log('-' * 21 + ' Training ' + '-' * 31)
    history, postfix = [], {}
    bar = tqdm(range(start_epoch, epochs + 1), initial=start_epoch - 1, total=epochs, desc='train', unit='epoch', dynamic_ncols=True)
    try:
        for epoch in bar:
            lr = optimizer.param_groups[0]['lr']
            log('\nTraining Epoch: [%d | %d]' % (epoch, epochs) + (' LR: %f' % lr if header_lr else ''))
            start = time.time()
            if hasattr(objective, 'start_epoch'):
                objective.start_epoch(epoch - 1)
            stats = train_one_epoch(model, loader, objective, optimizer, epoch, epochs, log)
            if not math.isfinite(stats['loss']) or stats['loss'] > EXPLODED_LOSS:
                raise TrainingDiverged(
                    'loss is %s at epoch %d%s; last good checkpoint: %s' % (
                        '%.3g' % stats['loss'] if math.isfinite(stats['loss']) else stats['loss'], epoch,
                        ' (above %g: it exploded; lower --lr)' % EXPLODED_LOSS
                        if math.isfinite(stats['loss']) else '',
                        progress['last_saved'] or 'none (no epoch finished)'))
            scheduler.step()
            stats.update(epoch=epoch, lr=lr, seconds=round(time.time() - start, 3))
            measured = curves.after_epoch(model, loader.data, epoch, stats) if curves is not None else {}
            if measured:
                stats['nc'] = measured
                postfix['NC1'] = '%.3g' % measured['NC1_collapse_metric']
            history.append(stats)
            log('[epoch: %d] | loss: %.6f | train top1: %.4f | lr: %g | seconds: %.2f' % (
                epoch, stats['loss'], stats['train_acc1'], lr, stats['seconds']))
            # the epoch's log line goes first: a kill between the two writes then only repeats
            # the epoch on --resume, it never loses its line
            with fileio.stop_if_disk_full(jsonl_path), open(jsonl_path, 'a') as jsonl:
                jsonl.write(json_line(stats) + '\n')
            if save_rule(epoch, epochs):
                checkpoints.save_state_dict(model, checkpoint_file(run_dir, epoch))
                checkpoints.save_resume_state(run_dir, epoch, model, optimizer, scheduler,
                                              loader.generator)
                progress['last_saved'] = checkpoint_file(run_dir, epoch)   # --resume continues here
            postfix.update(loss='%.4g' % stats['loss'], acc='%.1f' % stats['train_acc1'], lr='%.2g' % lr)
            bar.set_postfix(postfix)
    except BaseException:
        bar.leave = False             # the stop's one line is the last thing on the terminal
        raise
    finally:
        bar.close()
        try:
            log_file.close()
        except OSError:               # a full disk: already reported by the write that failed
            pass
    return history
