"""optimizers.SdLBFGS: hand-computed first steps, damping, the two-loop recursion against the
explicit BFGS inverse update, convergence on a quadratic, exits, and exact resume."""
import math

import pytest
import torch

from nc_repro.optimizers import SdLBFGS

DTYPE = torch.float64


def quadratic_closure(optimizer, x, A, b):
    """f(x) = 1/2 x'Ax - b'x, gradient Ax - b."""
    def closure():
        optimizer.zero_grad()
        loss = 0.5 * x @ A @ x - b @ x
        loss.backward()
        return loss
    return closure


def spd_problem(n=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=DTYPE))
    A = Q @ torch.diag(torch.tensor([1.0, 2.0, 3.0, 5.0, 10.0][:n], dtype=DTYPE)) @ Q.T
    b = torch.randn(n, generator=generator, dtype=DTYPE)
    return A, b, torch.linalg.solve(A, b)


def test_first_two_steps_by_hand():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=DTYPE)
    b = torch.tensor([1.0, 0.0], dtype=DTYPE)
    lr = 0.5
    x = torch.tensor([1.0, 1.0], dtype=DTYPE, requires_grad=True)
    optimizer = SdLBFGS([x], lr=lr, lr_decay=False, history_size=10)
    closure = quadratic_closure(optimizer, x, A, b)

    # step 1: g0 = A x0 - b = (3, 3); d0 = -g0/|g0|_2; t0 = min(1, 1/|g0|_1) lr = 0.5/6
    optimizer.step(closure)
    t0 = min(1.0, 1.0 / 6.0) * lr
    d0 = (-1 / math.sqrt(2), -1 / math.sqrt(2))
    x1 = (1.0 + t0 * d0[0], 1.0 + t0 * d0[1])
    assert x.detach().tolist() == pytest.approx(x1, abs=1e-15)

    # step 2: s = t0 d0, y = g1 - g0; y's / s's = d0'A d0 = 3.5 >= 0.25, so theta = 1, ybar = y
    optimizer.step(closure)
    g0 = (3.0, 3.0)
    g1 = (3 * x1[0] + x1[1] - 1.0, x1[0] + 2 * x1[1])
    s = (t0 * d0[0], t0 * d0[1])
    y = (g1[0] - g0[0], g1[1] - g0[1])
    ys, ss = y[0] * s[0] + y[1] * s[1], s[0] ** 2 + s[1] ** 2
    assert ys >= 0.25 * ss
    theta = 1.0
    ybar = (theta * y[0] + (1 - theta) * s[0], theta * y[1] + (1 - theta) * s[1])
    # two-loop recursion with one pair and H0 = I
    rho = 1.0 / (ybar[0] * s[0] + ybar[1] * s[1])
    q = (-g1[0], -g1[1])
    alpha = rho * (s[0] * q[0] + s[1] * q[1])
    q = (q[0] - alpha * ybar[0], q[1] - alpha * ybar[1])
    beta = rho * (ybar[0] * q[0] + ybar[1] * q[1])
    r = (q[0] + (alpha - beta) * s[0], q[1] + (alpha - beta) * s[1])
    norm = math.hypot(r[0], r[1])
    d1 = (r[0] / norm, r[1] / norm)
    x2 = (x1[0] + lr * d1[0], x1[1] + lr * d1[1])
    assert x.detach().tolist() == pytest.approx(x2, abs=1e-14)

    # the same d1 from the explicit BFGS inverse update H1 = V'V + rho s s', V = I - rho y s'
    s_t, y_t, g1_t = (torch.tensor(v, dtype=DTYPE) for v in (s, y, g1))
    V = torch.eye(2, dtype=DTYPE) - rho * torch.outer(y_t, s_t)
    H1 = V.T @ V + rho * torch.outer(s_t, s_t)
    d1_matrix = -H1 @ g1_t
    torch.testing.assert_close(d1_matrix / d1_matrix.norm(), torch.tensor(d1, dtype=DTYPE))


def test_damped_pair_exact_cases():
    s = torch.tensor([1.0, -2.0, 2.0], dtype=DTYPE)                 # s's = 9
    ybar, theta = SdLBFGS.damped_pair(s, -s)   # y's = -9: theta = 0.75*9/18 = 0.375
    assert theta.item() == 0.375
    torch.testing.assert_close(ybar, 0.25 * s, rtol=0, atol=1e-15)
    ybar, theta = SdLBFGS.damped_pair(s, s)    # y's = s's: no damping (and no nan from 0/0)
    assert theta.item() == 1.0
    assert torch.equal(ybar, s)
    # at the threshold: s = (2, 0), s's = 4; y's = 1 = 0.25 s's is not damped, y's = 0.875 is
    s = torch.tensor([2.0, 0.0], dtype=DTYPE)
    y = torch.tensor([0.5, 1.0], dtype=DTYPE)
    ybar, theta = SdLBFGS.damped_pair(s, y)
    assert theta.item() == 1.0 and torch.equal(ybar, y)
    y = torch.tensor([0.4375, 1.0], dtype=DTYPE)
    ybar, theta = SdLBFGS.damped_pair(s, y)
    assert theta.item() == pytest.approx(0.75 * 4 / (4 - 0.875), rel=1e-15)   # 0.96
    assert torch.dot(ybar, s).item() == pytest.approx(0.25 * 4, rel=1e-15)


def test_damping_triggers_on_negative_curvature():
    # f = 1/2 (-x0^2 + 2 x1^2): from (1, 0.1) the first step runs along negative curvature
    A = torch.diag(torch.tensor([-1.0, 2.0], dtype=DTYPE))
    x = torch.tensor([1.0, 0.1], dtype=DTYPE, requires_grad=True)
    optimizer = SdLBFGS([x], lr=0.1, lr_decay=False)
    closure = quadratic_closure(optimizer, x, A, torch.zeros(2, dtype=DTYPE))
    optimizer.step(closure)
    optimizer.step(closure)
    state = optimizer.state[x]
    (s,), (ybar,) = state['steps'], state['damped_grad_diffs']
    y = A @ s                                                       # gradient change of a quadratic
    ys, ss = torch.dot(y, s).item(), torch.dot(s, s).item()
    assert ys < 0.25 * ss
    # d0 = (1, -0.2)/|.|: y's/s's = d0'A d0 = (-1 + 2*0.04)/1.04; theta = 0.75/(1 - that)
    curvature = (-1 + 2 * 0.04) / 1.04
    assert ys / ss == pytest.approx(curvature, rel=1e-12)
    theta = 0.75 / (1 - curvature)
    assert theta < 1
    torch.testing.assert_close(ybar, theta * y + (1 - theta) * s, rtol=1e-12, atol=0)
    assert torch.dot(ybar, s).item() == pytest.approx(0.25 * ss, rel=1e-12)


def test_two_loop_matches_explicit_bfgs_inverse():
    generator = torch.Generator().manual_seed(3)
    n, pairs = 6, 4
    steps = [torch.randn(n, generator=generator, dtype=DTYPE) for _ in range(pairs)]
    ybars = [s + 0.3 * torch.randn(n, generator=generator, dtype=DTYPE) for s in steps]
    assert all(torch.dot(y, s) > 0 for s, y in zip(steps, ybars))
    grad = torch.randn(n, generator=generator, dtype=DTYPE)
    H = torch.eye(n, dtype=DTYPE)                                   # H0 = I
    for s, y in zip(steps, ybars):                                  # oldest pair first
        rho = 1 / torch.dot(y, s)
        V = torch.eye(n, dtype=DTYPE) - rho * torch.outer(y, s)
        H = V.T @ H @ V + rho * torch.outer(s, s)
    direction = SdLBFGS.two_loop_direction(grad, steps, ybars)
    torch.testing.assert_close(direction, -H @ grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('schedule', ['lr_decay', 'geometric'])
def test_converges_on_convex_quadratic(schedule):
    A, b, optimum = spd_problem()
    x = torch.zeros(5, dtype=DTYPE, requires_grad=True)
    optimizer = SdLBFGS([x], lr=1.0 if schedule == 'lr_decay' else 0.5,
                        lr_decay=schedule == 'lr_decay', history_size=5)
    closure = quadratic_closure(optimizer, x, A, b)
    for _ in range(300):
        optimizer.step(closure)
        if schedule == 'geometric':                                 # as an LR scheduler would
            optimizer.param_groups[0]['lr'] *= 0.9
    assert (x.detach() - optimum).norm().item() < 1e-3
    assert len(optimizer.state[x]['steps']) == 5                    # memory capped at history_size


def test_fixed_step_stays_within_lr_of_optimum():
    A, b, optimum = spd_problem()
    x = torch.zeros(5, dtype=DTYPE, requires_grad=True)
    optimizer = SdLBFGS([x], lr=0.5, lr_decay=False, history_size=5)
    closure = quadratic_closure(optimizer, x, A, b)
    start = (x.detach() - optimum).norm().item()
    for _ in range(50):
        before = x.detach().clone()
        optimizer.step(closure)
        assert (x.detach() - before).norm().item() == pytest.approx(0.5, rel=1e-12) or \
            optimizer.state[x]['n_iter'] == 1                       # first step is shorter
    assert start > 2 * 0.5 and (x.detach() - optimum).norm().item() <= 0.5


def test_max_iter_equals_repeated_single_steps_on_fixed_closure():
    A, b, _ = spd_problem()
    results = []
    for max_iter, calls in ((4, 1), (1, 4)):
        x = torch.zeros(5, dtype=DTYPE, requires_grad=True)
        optimizer = SdLBFGS([x], lr=0.3, lr_decay=False, history_size=3, max_iter=max_iter)
        closure = quadratic_closure(optimizer, x, A, b)
        for _ in range(calls):
            optimizer.step(closure)
        assert optimizer.state[x]['n_iter'] == 4 and optimizer.state[x]['func_evals'] == 4
        results.append(x.detach().clone())
    assert torch.equal(results[0], results[1])


def _mini_batch(index):
    generator = torch.Generator().manual_seed(100 + index)
    inputs = torch.randn(16, 4, generator=generator)
    return inputs, torch.sin(inputs.sum(1, keepdim=True))


def _train(model, optimizer, batch_indices):
    for index in batch_indices:
        inputs, targets = _mini_batch(index)

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            return loss
        optimizer.step(closure)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


@pytest.mark.parametrize('lr_decay', [False, True])
def test_state_dict_round_trip_resumes_identically(tmp_path, lr_decay):
    options = dict(lr=0.05, lr_decay=lr_decay, history_size=3)
    model = _model()
    optimizer = SdLBFGS(model.parameters(), **options)
    _train(model, optimizer, range(10))

    model_a = _model()
    optimizer_a = SdLBFGS(model_a.parameters(), **options)
    _train(model_a, optimizer_a, range(5))
    path = tmp_path / 'checkpoint.pth'
    torch.save({'model': model_a.state_dict(), 'optimizer': optimizer_a.state_dict()}, path)

    model_b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer_b = SdLBFGS(model_b.parameters(), **options)
    checkpoint = torch.load(path)
    model_b.load_state_dict(checkpoint['model'])
    optimizer_b.load_state_dict(checkpoint['optimizer'])
    assert optimizer_b.state[next(model_b.parameters())]['n_iter'] == 5
    _train(model_b, optimizer_b, range(5, 10))
    for uninterrupted, resumed in zip(model.parameters(), model_b.parameters()):
        assert torch.equal(uninterrupted, resumed)


def test_weight_decay_sign():
    for faithful, expected_first in ((False, -0.5), (True, 0.5)):
        # loss = x1, so g = (0, 1); d = -g -/+ wd x = (-/+ 0.5, -1), |d| = sqrt(1.25)
        x = torch.tensor([1.0, 0.0], dtype=DTYPE, requires_grad=True)
        optimizer = SdLBFGS([x], lr=0.1, lr_decay=False, weight_decay=0.5,
                            faithful_weight_decay_sign=faithful)

        def closure():
            optimizer.zero_grad()
            loss = x[1] * 1.0
            loss.backward()
            return loss
        optimizer.step(closure)
        norm = math.sqrt(1.25)                                      # t0 = min(1, 1/1) * 0.1
        assert x.detach().tolist() == pytest.approx([1.0 + 0.1 * expected_first / norm,
                                                     -0.1 / norm], abs=1e-15)


def test_exits_on_small_gradient_and_on_ascent_direction():
    x = torch.tensor([0.0, 1.0], dtype=DTYPE, requires_grad=True)
    optimizer = SdLBFGS([x], lr=0.1, lr_decay=False)

    def flat_closure():
        optimizer.zero_grad()
        loss = (x * 0.0).sum() + 1e-6 * x[1]                        # |g|_1 = 1e-6 <= 1e-5
        loss.backward()
        return loss
    optimizer.step(flat_closure)
    assert x.detach().tolist() == [0.0, 1.0] and optimizer.state[x]['n_iter'] == 0

    # J's '+' weight decay turns d = (0, -1e-3) + 1 * (0, 1) into an ascent direction: g'd > 0
    optimizer = SdLBFGS([x], lr=0.1, lr_decay=False, weight_decay=1.0,
                        faithful_weight_decay_sign=True)

    def small_closure():
        optimizer.zero_grad()
        loss = 1e-3 * x[1]
        loss.backward()
        return loss
    optimizer.step(small_closure)
    assert x.detach().tolist() == [0.0, 1.0] and optimizer.state[x]['n_iter'] == 1


def test_bad_arguments_raise_clear_errors():
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match='line_search_fn'):
        SdLBFGS([x], line_search_fn='strong_wolfe')
    with pytest.raises(ValueError, match='one parameter group'):
        SdLBFGS([{'params': [x]}, {'params': [torch.zeros(1, requires_grad=True)]}])
    with pytest.raises(ValueError, match='closure'):
        SdLBFGS([x]).step()
