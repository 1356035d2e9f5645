"""Random flag combinations never end in a Python traceback: every script's parser either
resolves them (and the model builds) or stops with one line and exit code 2."""
import contextlib
import io

import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import args as cli
import models

INT_FLAGS = ['--epochs', '--batch_size', '--width', '--depth', '--depth_relu', '--depth_linear',
             '--fixdim', '--sample_size', '--patience', '--history_size', '--seed', '--save_every',
             '--gpu_id', '--every']
FLOAT_FLAGS = ['--lr', '--weight_decay', '--feature_decay_rate', '--gamma', '--M', '--k']
CHOICE_FLAGS = {
    '--model': ['MLP', 'resnet18', 'ResNet18', 'VGG11', 'ResNet18_adapt', 'wide_resnet', 'nope', ''],
    '--dataset': ['digits', 'cifar10', 'mnist', 'imagenet'],
    '--loss': ['MSE', 'CrossEntropy', 'RescaledMSE', 'Hinge'],
    '--optimizer': ['SGD', 'Adam', 'LBFGS', 'SdLBFGS', 'RMSprop'],
    '--decay_type': ['step', 'multistep_10_20', 'multistep_x', 'cosine'],
    '--paper': ['zhou2022', 'dang2023', 'dang2024', 'other'],
}
SWITCHES = ['--no-bias', '--ETF', '--SOTA', '--sep_decay', '--data_augmentation', '--force', '--resume']
SCRIPTS = {
    'train_1st_order': dict(parser=cli.get_train_parser, kwargs=dict(allowed=('zhou2022', 'dang2023'))),
    'train_1st_order_unbalanced': dict(parser=cli.get_train_parser,
                                       kwargs=dict(unbalanced=True, allowed=('dang2023', 'dang2024'))),
    'validate_NC': dict(parser=cli.get_eval_parser, kwargs=dict(evaluation=True, allowed=('zhou2022', 'dang2023'))),
}

values = st.one_of(st.integers(-3, 5000).map(str), st.floats(-1, 10).map(str), st.just('nan'),
                   st.sampled_from(['', 'x', '-1', '1e-5', '0']))
flag = st.one_of(
    st.tuples(st.sampled_from(INT_FLAGS + FLOAT_FLAGS), values),
    st.sampled_from(sorted(CHOICE_FLAGS)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(CHOICE_FLAGS[name]))),
    st.tuples(st.sampled_from(SWITCHES)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.sampled_from(sorted(SCRIPTS)), flags=st.lists(flag, max_size=8))
def test_random_flags_resolve_or_fail_in_one_line(script, flags):
    argv = [token for pair in flags for token in pair]
    spec = SCRIPTS[script]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = cli.parse(spec['parser'](), argv, **spec['kwargs'])
        except SystemExit as stop:
            assert stop.code == 2
            lines = stderr.getvalue().strip().splitlines()
            assert len(lines) == 1 and 'error' in lines[0], stderr.getvalue()
            return
    # parsed: building the model either works or is a one-line usage error (built on the meta
    # device: shapes and checks without allocating a 5000-wide network's weights)
    try:
        with torch.device('meta'):
            model = models.build_model(args, 10, (3, 32, 32), unbalanced='unbalanced' in script)
    except cli.UsageError as error:
        assert '\n' not in str(error) and '--model' in str(error)
        return
    except ValueError as error:           # e.g. wide_resnet depth rule
        assert '\n' not in str(error)
        return
    assert len(model.head_layers()) >= 1
