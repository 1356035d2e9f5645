"""Stochastic damped L-BFGS (SdLBFGS), the second-order optimiser of Zhou et al. (ICML 2022).

Wang, Ma, Goldfarb & Liu, "Stochastic quasi-Newton methods for nonconvex stochastic
optimization", SIAM J. Optim. 27(2), 2017, §3 (SdLBFGS), as coded in J's
``optim_local/sdlbfgs.py``: H_0 = I (gamma = 1), Powell-type
damping of y with the constants 0.25 / 0.75, the L-BFGS two-loop recursion, a unit-length
direction and a fixed step of length ``lr`` (no line search).

Used by ``train_2nd_order.py --optimizer SdLBFGS`` through ``training.make_optimizer``
(J: ``lr=--lr, history_size=--history_size, lr_decay=False``), one ``step(closure)`` per
mini-batch; the closure returns the loss with its explicit L2 penalty (J's train_2nd_order.py).

Differences from J, none of which changes the trajectory with J's settings (weight_decay 0,
no line search): the strong-Wolfe line search is not provided (J never uses it); a nonzero
weight decay is subtracted from the direction unless ``faithful_weight_decay_sign=True``
(J adds it, docs/original_code.md, J-B11); ``step`` always returns the closure's first loss (J returns a
float when it exits early on a small gradient).
"""
import math

import torch


class SdLBFGS(torch.optim.Optimizer):
    """Stochastic damped L-BFGS over all parameters of a single group, as flat vectors.

    Per ``step(closure)`` (as J's SdLBFGS.step), with g the flat gradient of the closure's loss:

    1. stop if ||g||_1 <= tolerance_grad;
    2. first iteration ever: d = -g. Later: s = t_prev d_prev, y = g - g_prev, damped
       ybar = theta y + (1 - theta) s with theta = 0.75 s's / (s's - y's) if y's < 0.25 s's
       else 1 (so ybar's >= 0.25 s's > 0); (s, ybar) joins a memory of ``history_size``
       pairs and d = -H g by the two-loop recursion with H_0 = I;
    3. weight decay (0 in J): d <- d - wd * params (J: d + wd * params, see
       ``faithful_weight_decay_sign``);
    4. d <- d / ||d||_2, so ``lr`` is a step length in parameter space;
    5. t = lr / sqrt(n_iter) if ``lr_decay`` else (min(1, 1/||g||_1) * lr on the first
       iteration ever, lr afterwards);
    6. stop if g'd > -tolerance_change, else params <- params + t d.

    Up to ``max_iter`` such iterations on the same closure (J: 1); further iterations
    re-evaluate the closure and also stop on ``max_eval`` evaluations, a step with
    ||t d||_1 <= tolerance_change or a loss change below tolerance_change.

    Defaults are J's constructor defaults (lr 1, lr_decay True, history_size 100); J's
    trainer passes lr, history_size and lr_decay=False. All memory lives in
    ``self.state`` (keyed by the first parameter), so ``state_dict()`` /
    ``load_state_dict()`` resume a run exactly.
    """

    needs_closure = True        # training.train_one_epoch drives the step with a closure

    def __init__(self, params, lr=1.0, lr_decay=True, weight_decay=0.0, max_iter=1,
                 max_eval=None, tolerance_grad=1e-5, tolerance_change=1e-9, history_size=100,
                 line_search_fn=None, faithful_weight_decay_sign=False):
        if line_search_fn is not None:
            raise ValueError('SdLBFGS: line_search_fn=%r is not supported (J never uses its '
                             'strong-Wolfe search); pass line_search_fn=None' % (line_search_fn,))
        if not lr > 0:
            raise ValueError('SdLBFGS: lr must be positive, got %r' % (lr,))
        if weight_decay < 0:
            raise ValueError('SdLBFGS: weight_decay must be >= 0, got %r' % (weight_decay,))
        if int(max_iter) < 1 or int(history_size) < 1:
            raise ValueError('SdLBFGS: max_iter and history_size must be >= 1, got %r and %r'
                             % (max_iter, history_size))
        if max_eval is None:
            max_eval = max_iter * 5 // 4          # J and torch.optim.LBFGS: 1 for max_iter 1
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, max_iter=max_iter,
                        max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size,
                        faithful_weight_decay_sign=faithful_weight_decay_sign)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError('SdLBFGS: only one parameter group is supported, got %d; pass a '
                             'plain list of parameters' % len(self.param_groups))
        self._params = self.param_groups[0]['params']

    # ---- flat views of parameters and gradients ------------------------------------------

    def _flat_grad(self):
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(p.new_zeros(p.numel()))
            elif p.grad.is_sparse:
                views.append(p.grad.to_dense().reshape(-1))
            else:
                views.append(p.grad.reshape(-1))
        return torch.cat(views)                                   # (P,)

    def _flat_params(self):
        return torch.cat([p.reshape(-1) for p in self._params])   # (P,)

    def _add_to_params(self, step_length, direction):
        """params <- params + step_length * direction, direction flat (P,)."""
        offset = 0
        for p in self._params:
            numel = p.numel()
            p.add_(direction[offset:offset + numel].view_as(p), alpha=step_length)
            offset += numel

    # ---- the quasi-Newton direction ------------------------------------------------------

    @staticmethod
    def damped_pair(s, y, out=None):
        """Powell-type damping of Wang et al. (2017) §3 with H_0 = I (gamma = 1).

        theta = 0.75 s's / (s's - y's) if y's < 0.25 s's, else 1; ybar = theta y + (1-theta) s,
        which guarantees ybar's >= 0.25 s's (equality when damped). s, y: (P,); ``out`` may
        be y itself. Returns (ybar, theta) with theta a 0-dim tensor (no host sync).
        """
        ys = torch.dot(y, s)
        ss = torch.dot(s, s)
        damped = ys < 0.25 * ss
        # the unselected branch may divide by zero (y = s); torch.where discards it
        theta = torch.where(damped, 0.75 * ss / (ss - ys), torch.ones_like(ss))
        ybar = torch.lerp(s, y, theta, out=out)                     # (P,) s + theta (y - s)
        return ybar, theta

    @staticmethod
    def two_loop_direction(grad, steps, damped_grad_diffs, rhos=None):
        """d = -H g by the L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4) with
        H_0 = I and the pairs (s_i, ybar_i), oldest first; rho_i = 1 / (ybar_i' s_i) (computed
        when not given). grad and each pair: (P,)."""
        if rhos is None:
            rhos = [1.0 / torch.dot(ybar, s) for s, ybar in zip(steps, damped_grad_diffs)]
        q = grad.neg()                                                # (P,)
        alphas = [None] * len(steps)
        for i in range(len(steps) - 1, -1, -1):
            alphas[i] = torch.dot(steps[i], q) * rhos[i]
            q.addcmul_(damped_grad_diffs[i], alphas[i], value=-1)
        r = q                                                         # H_0 = I
        for i in range(len(steps)):
            beta = torch.dot(damped_grad_diffs[i], r) * rhos[i]
            r.addcmul_(steps[i], alphas[i] - beta)
        return r

    # ---- the step -------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        """One SdLBFGS step (as J's SdLBFGS.step) on the loss of ``closure`` (which zeroes the
        gradients, computes the loss and calls backward). Returns the closure's first loss."""
        if closure is None:
            raise ValueError('SdLBFGS.step needs a closure that zeroes the gradients, computes '
                             'the loss, calls backward() and returns the loss')
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group['lr'], group['max_iter'], group['max_eval']
        tolerance_grad, tolerance_change = group['tolerance_grad'], group['tolerance_change']
        weight_decay, history_size = group['weight_decay'], group['history_size']

        state = self.state[self._params[0]]
        state.setdefault('func_evals', 0)
        state.setdefault('n_iter', 0)
        state.setdefault('steps', [])               # s_i, oldest first
        state.setdefault('damped_grad_diffs', [])   # ybar_i, oldest first
        state.setdefault('rhos', [])                # 1 / (ybar_i' s_i), 0-dim tensors

        first_loss = closure()
        state['func_evals'] += 1
        evals = 1
        grad = self._flat_grad()                                      # (P,)
        grad_l1 = float(torch.linalg.vector_norm(grad, 1))
        if grad_l1 <= tolerance_grad:
            return first_loss
        loss = float(first_loss) if max_iter > 1 else None  # only the loss-change test reads it

        direction = state.get('direction')
        step_length = state.get('step_length')
        prev_grad = state.get('prev_grad')
        steps, ybars, rhos = state['steps'], state['damped_grad_diffs'], state['rhos']
        for inner in range(1, max_iter + 1):
            state['n_iter'] += 1
            if state['n_iter'] == 1:
                direction = grad.neg()
            else:
                s_buffer = y_buffer = None
                if len(steps) == history_size:   # drop the oldest pair, reuse its memory
                    s_buffer, y_buffer = steps.pop(0), ybars.pop(0)
                    rhos.pop(0)
                s = torch.mul(direction, step_length, out=s_buffer)  # (P,) step actually taken
                y = torch.sub(grad, prev_grad, out=y_buffer)          # (P,)
                ybar, _ = self.damped_pair(s, y, out=y)
                steps.append(s)
                ybars.append(ybar)
                rhos.append(1.0 / torch.dot(ybar, s))
                direction = self.two_loop_direction(grad, steps, ybars, rhos)
            prev_grad = grad                 # a fresh tensor (torch.cat copies), never mutated
            prev_loss = loss

            if weight_decay > 0:
                # J adds +wd*params to the descent direction (docs/original_code.md, J-B11), which pushes the
                # weights away from 0; the descent direction of wd/2 ||params||^2 is -wd*params.
                sign = 1.0 if group['faithful_weight_decay_sign'] else -1.0
                direction.add_(self._flat_params(), alpha=sign * weight_decay)
            direction.div_(direction.norm())      # direction is a fresh tensor in both branches

            if group['lr_decay']:
                step_length = lr / math.sqrt(state['n_iter'])
            elif state['n_iter'] == 1:
                step_length = min(1.0, 1.0 / grad_l1) * lr
            else:
                step_length = lr

            # J stores this direction and step even when it stops here without moving
            if float(torch.dot(grad, direction)) > -tolerance_change:
                break
            self._add_to_params(step_length, direction)
            if inner == max_iter:
                break
            # further iterations re-evaluate the closure on the same mini-batch
            loss = float(closure())
            grad = self._flat_grad()
            grad_l1 = float(torch.linalg.vector_norm(grad, 1))
            evals += 1
            state['func_evals'] += 1
            if evals >= max_eval or grad_l1 <= tolerance_grad:
                break
            if step_length * float(torch.linalg.vector_norm(direction, 1)) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state['direction'] = direction
        state['step_length'] = step_length
        state['prev_grad'] = prev_grad
        return first_loss
