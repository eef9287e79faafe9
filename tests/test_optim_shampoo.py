"""course_lib's Shampoo (rules.shampoo_update, optim.Shampoo) against pytorch_optimizer.ScalableShampoo (4.1).

Float64, 40 steps of a small network (a 1-D convolution, whose 3-D kernel is read as a matrix or kept as a tensor,
and two linear layers) in three param groups under an lr scheduler: the same numbers over a grid of the supported
options. Adam grafting, which the reference lacks, against torch.optim.Adam run on the same gradients, and the
direction against roots computed by SciPy; ``inverse_root`` against closed forms and the SVD; the signature and
defaults of the reference; state dicts, closures and the refusals.
"""

import copy
import inspect

import numpy as np
import pytest
import scipy.linalg
import torch
from pytorch_optimizer import ScalableShampoo

from course_lib import optim, rules

TOLERANCE = 1e-10
STEPS = 40

pytestmark = pytest.mark.usefixtures("one_thread")

#: Every case starts from these (and runs with exact roots and with Schur-Newton's): small blocks so that the small
#: layers get factors (a (6, 2·3) kernel, 5 × 6 and 1 × 5 weights as read), the first roots at step 1 and Shampoo's
#: direction from step 3.
BASE = dict(lr=0.01, block_size=8, start_preconditioning_step=3, preconditioning_compute_steps=1)
GRID = [
    dict(),  # the reference's SGD graft, Nesterov momentum
    dict(graft_type=rules.ShampooGraft.NONE, preconditioning_compute_steps=5),
    dict(graft_type=rules.ShampooGraft.ADAGRAD, betas=(0.8, 0.99), nesterov=False),
    dict(graft_type=rules.ShampooGraft.RMSPROP, moving_average_for_momentum=True, statistics_compute_steps=2),
    dict(graft_type=rules.ShampooGraft.SQRTN, moving_average_for_momentum=True, nesterov=False, weight_decay=0.05),
    dict(weight_decay=0.1, decoupled_weight_decay=True, preconditioning_compute_steps=5,
         start_preconditioning_step=10),
    dict(graft_type=rules.ShampooGraft.RMSPROP, decoupled_learning_rate=False, weight_decay=0.01),
    dict(decoupled_learning_rate=False, moving_average_for_momentum=True, decoupled_weight_decay=True,
         weight_decay=0.1),
    dict(inverse_exponent_override=2, matrix_eps=1e-3),
    dict(shape_interpretation=False, block_size=512),  # the kernel as a 3-D tensor: three factors, roots −1/6
    dict(pre_conditioner_type=1, shape_interpretation=False, block_size=512),  # INPUT: every axis but the last
    dict(pre_conditioner_type=2),  # OUTPUT: the last axis only
    dict(skip_preconditioning_rank_lt=3, shape_interpretation=False, block_size=0),  # only the kernel
    dict(no_preconditioning_for_layers_with_dim_gt=5, graft_type=rules.ShampooGraft.ADAGRAD),
    dict(start_preconditioning_step=1, statistics_compute_steps=3, preconditioning_compute_steps=2),
    dict(betas=(0.0, 0.9), maximize=True, matrix_eps=0.0, diagonal_eps=1e-6),
    # blocks: the 5 × 6 weight read as 1 × 5 × 6 and cut into 4 blocks of three factors (its bias of 5 as 1 × 5, in
    # two blocks), the kernel as 3 × 2 × 3
    dict(block_size=4, graft_type=rules.ShampooGraft.RMSPROP, preconditioning_compute_steps=3),
    dict(block_size=3, shape_interpretation=False, statistics_compute_steps=2),
    # (INPUT with blocks of unequal sizes crashes the reference: it stacks blocks whose factors match in shape)
    dict(block_size=4, shape_interpretation=False, pre_conditioner_type=2, graft_type=rules.ShampooGraft.SQRTN),
]


def _case_id(kwargs):
    return "-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"


class _Net(torch.nn.Module):
    """Conv1d(2 → 3, kernel 3) on length 4, flattened (6) → Linear 5 + Tanh → Linear 1."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 3, 3)
        self.hidden = torch.nn.Linear(6, 5)
        self.out = torch.nn.Linear(5, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(torch.tanh(self.conv(x)).flatten(1))))


def _network(seed=0):
    torch.manual_seed(seed)
    return _Net().double()


def _data(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(64, 2, 4, dtype=torch.float64, generator=generator),
            torch.randn(64, 1, dtype=torch.float64, generator=generator))


def _groups(model, lr):
    """Three param groups with their own lr (and the middle one its own weight decay where there is some)."""
    return [{"params": list(model.conv.parameters())},
            {"params": list(model.hidden.parameters()), "lr": lr * 0.5},
            {"params": list(model.out.parameters()), "lr": lr * 2}]


def _loss(model, step):
    inputs, targets = _data()
    rows = slice((step * 16) % 64, (step * 16) % 64 + 16)
    return ((model(inputs[rows]) - targets[rows]) ** 2).mean()


def _train(model, optimizer, steps=STEPS, start=0, scheduler=None, frozen=()):
    """``steps`` steps; the parameters in ``frozen`` get no gradient (None) on steps 10-14. Seeded: Schur-Newton's
    power iterations start at torch.randn."""
    torch.manual_seed(7)
    for step in range(start, start + steps):
        optimizer.zero_grad()
        _loss(model, step).backward()
        if 10 <= step < 15:
            for param in frozen:
                param.grad = None
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return model


def _max_difference(model_a, model_b):
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def _pair(kwargs, use_svd=True):
    """Our class and the reference, each on its own copy of the network, with a StepLR schedule."""
    options = {**BASE, "use_svd": use_svd, **kwargs}
    runs = []
    for cls in (optim.Shampoo, ScalableShampoo):
        model = _network()
        optimizer = cls(_groups(model, options["lr"]), **options)
        runs.append((model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.7)))
    return runs


@pytest.mark.parametrize("use_svd", [True, False], ids=["svd", "schur_newton"])
@pytest.mark.parametrize("kwargs", GRID, ids=_case_id)
def test_the_class_equals_scalable_shampoo(kwargs, use_svd):
    (ours, mine, my_schedule), (theirs, reference, their_schedule) = _pair(kwargs, use_svd)
    _train(ours, mine, scheduler=my_schedule, frozen=[ours.conv.weight])
    _train(theirs, reference, scheduler=their_schedule, frozen=[theirs.conv.weight])
    difference = _max_difference(ours, theirs)
    print(f"worst difference {difference:.2e}")  # shown with -s
    assert difference <= TOLERANCE, difference
    assert _max_difference(ours, _network()) > 1e-3  # it moved
    assert [group["step"] for group in mine.param_groups] == [group["step"] for group in reference.param_groups]
    # the factors and the roots are the reference's too
    for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters()):
        pre = reference.state[p_theirs]["pre_conditioner"]
        assert len(mine.state[p_ours]["statistics"]) == len(pre.statistics)
        for a, b in zip(mine.state[p_ours]["statistics"] + mine.state[p_ours]["pre_conditioners"],
                        list(pre.statistics) + list(pre.pre_conditioners)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_the_grid_reaches_every_kind_of_layout():
    """The grid preconditions a merged kernel, a 3-D kernel and one-sided factors (not only the graft)."""
    model = _network()
    counts = {}
    for kwargs in GRID:
        rule = rules.shampoo(**{**BASE, **kwargs})
        counts[_case_id(kwargs)] = [len(rule.init(p)["statistics"]) for p in model.parameters()]
    assert counts["defaults"] == [2, 0, 2, 0, 0, 0]  # kernel read as 6 × 3; the 1 × 5 weight as one axis
    assert counts["shape_interpretation=False-block_size=512"] == [3, 0, 2, 0, 2, 0]
    assert counts["pre_conditioner_type=1-shape_interpretation=False-block_size=512"] == [2, 0, 1, 0, 1, 0]
    assert counts["skip_preconditioning_rank_lt=3-shape_interpretation=False-block_size=0"] == [3, 0, 0, 0, 0, 0]
    assert counts[_case_id(GRID[-3])] == [3, 0, 4 * 3, 2 * 2, 2 * 2, 0]  # (1, 5, 6): 5 → 4 + 1, 6 → 4 + 2
    assert counts[_case_id(GRID[-2])] == [3, 0, 2 * 2 * 2, 0, 1 * 2 * 2, 0]  # (5, 6) in 2 × 2 blocks; (3, 2, 3) in 1
    assert counts[_case_id(GRID[-1])] == [1, 0, 2 * 2, 0, 2, 0]  # OUTPUT: one factor per block


def test_layout_merges_and_cuts_axes_as_the_reference():
    """The shape read (pytorch-optimizer's merge_small_dims) and the blocks (its BlockPartitioner), shape by shape."""
    from pytorch_optimizer.optimizer.utils.partition import BlockPartitioner
    from pytorch_optimizer.optimizer.utils.shape import merge_small_dims

    for shape in [(64, 32, 3, 3), (1, 2, 512, 1, 2048, 1, 3, 4), (12, 20), (5, 6), (3, 2, 3), (700,), (40, 3, 9)]:
        for block_size in (0, 4, 8, 100, 512, 1024):
            layout = rules.shampoo_layout(shape, block_size=block_size, no_preconditioning_for_layers_with_dim_gt=10**9)
            read = merge_small_dims(shape, block_size)
            assert (layout is None) == (len(read) < 2), (shape, block_size)
            if layout is None:
                continue
            assert layout[0] == read and layout[2] == 2 * len(read)
            x = torch.arange(float(np.prod(read))).reshape(read)
            pieces = BlockPartitioner(x, len(read), block_size, 0).partition(x)
            assert [tuple(x[block].shape) for block in layout[3]] == [tuple(p.shape) for p in pieces]
            assert all(torch.equal(x[block], piece) for block, piece in zip(layout[3], pieces))


def test_the_rule_on_numpy_arrays_equals_the_reference():
    """The pure rule on NumPy float64 arrays (a 3-D tensor, a matrix, a vector) against the reference on tensors."""
    generator = torch.Generator().manual_seed(3)
    shapes = [(3, 2, 3), (5, 6), (4,)]
    for kwargs in (dict(use_svd=True), dict(shape_interpretation=False, block_size=512, use_svd=True,
                                            graft_type=rules.ShampooGraft.RMSPROP, moving_average_for_momentum=True,
                                            weight_decay=0.1)):
        options = {**BASE, **kwargs}
        start = [torch.randn(*shape, dtype=torch.float64, generator=generator) for shape in shapes]
        params = [p.clone().requires_grad_() for p in start]
        reference = ScalableShampoo(params, **options)
        rule = rules.shampoo(**options)
        arrays = [p.numpy().copy() for p in start]
        states = [rule.init(x) for x in arrays]
        for _ in range(STEPS):
            reference.zero_grad()
            sum((p.sin() * p + 0.1 * p**4).sum() for p in params).backward()
            reference.step()
            for i, x in enumerate(arrays):
                arrays[i], states[i] = rule.update(x, np.sin(x) + x * np.cos(x) + 0.4 * x**3, states[i])
        for x, p in zip(arrays, params):
            assert isinstance(x, np.ndarray)
            np.testing.assert_allclose(x, p.detach().numpy(), rtol=0, atol=TOLERANCE)


# ---- Adam grafting (the reference has none): torch.optim.Adam's step length -------------------------------------
def test_adam_grafting_before_preconditioning_is_adam_with_beta1_zero():
    """Before the first Shampoo step the update is the graft's: torch.optim.Adam(betas=(0, β₂), eps=diagonal_eps)."""
    options = dict(lr=0.01, betas=(0.0, 0.99), diagonal_eps=1e-8, graft_type=rules.ShampooGraft.ADAM, use_svd=True,
                   start_preconditioning_step=STEPS + 1, block_size=8)
    ours, theirs = _network(), _network()
    mine = optim.Shampoo(_groups(ours, 0.01), **options)
    adam = torch.optim.Adam(_groups(theirs, 0.01), lr=0.01, betas=(0.0, 0.99), eps=1e-8)
    _train(ours, mine, scheduler=torch.optim.lr_scheduler.StepLR(mine, 10, 0.7))
    _train(theirs, adam, scheduler=torch.optim.lr_scheduler.StepLR(adam, 10, 0.7))
    assert _max_difference(ours, theirs) <= TOLERANCE


def test_adam_grafting_takes_adams_step_length_in_shampoos_direction():
    """Every step from the first: ‖Δθ‖ = ‖Adam's step on the same gradient‖ (a copy stepped by torch.optim.Adam),
    and Δθ points along S^{-1/4} G T^{-1/4}, with the factors summed here and their roots taken by SciPy."""
    lr, beta2, eps_m = 0.02, 0.95, 1e-4
    model = _network()
    weight = model.hidden.weight  # 5 × 6
    mine = optim.Shampoo([weight], lr=lr, betas=(0.0, beta2), graft_type=rules.ShampooGraft.ADAM, use_svd=True,
                         start_preconditioning_step=1, preconditioning_compute_steps=1, matrix_eps=eps_m,
                         shape_interpretation=False)  # not read as one axis of 30: a factor per axis
    copy_of_weight = weight.detach().clone().requires_grad_()
    adam = torch.optim.Adam([copy_of_weight], lr=lr, betas=(0.0, beta2), eps=1e-10)
    left, right = eps_m * np.eye(5), eps_m * np.eye(6)
    for step in range(STEPS):
        mine.zero_grad()
        _loss(model, step).backward()
        grad = weight.grad.detach().clone()
        before, adam_before = weight.detach().clone(), copy_of_weight.detach().clone()
        mine.step()
        copy_of_weight.grad = grad.clone()
        adam.step()
        ours_step = (before - weight.detach()).numpy()
        adam_step = (adam_before - copy_of_weight.detach()).numpy()
        np.testing.assert_allclose(np.linalg.norm(ours_step), np.linalg.norm(adam_step), rtol=TOLERANCE)
        g = grad.numpy()
        left, right = beta2 * left + (1 - beta2) * g @ g.T, beta2 * right + (1 - beta2) * g.T @ g
        direction = np.real(scipy.linalg.fractional_matrix_power(left, -0.25) @ g
                            @ scipy.linalg.fractional_matrix_power(right, -0.25))
        np.testing.assert_allclose(ours_step / np.linalg.norm(ours_step), direction / np.linalg.norm(direction),
                                   rtol=0, atol=1e-8)


# ---- inverse_root ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_inverse_root_closed_forms(backend):
    def as_backend(array):
        return torch.tensor(array) if backend == "torch" else np.array(array)

    def as_numpy(x):
        return x.numpy() if backend == "torch" else x

    diagonal = np.array([4.0, 0.0625, 81.0])
    for power in (2, 4, 6):
        np.testing.assert_allclose(as_numpy(rules.inverse_root(as_backend(np.diag(diagonal)), power)),
                                   np.diag(diagonal ** (-1 / power)), rtol=1e-13, atol=1e-15)
    a, b, angle = 16.0, 0.01, 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation @ np.diag([a, b]) @ rotation.T
    expected = rotation @ np.diag([a ** -0.25, b ** -0.25]) @ rotation.T
    np.testing.assert_allclose(as_numpy(rules.inverse_root(as_backend(matrix), 4)), expected, rtol=1e-12, atol=1e-13)
    with_eps = rotation @ np.diag([(a + 0.5) ** -0.25, (b + 0.5) ** -0.25]) @ rotation.T
    np.testing.assert_allclose(as_numpy(rules.inverse_root(as_backend(matrix), 4, eps=0.5)), with_eps, rtol=1e-12)
    stacked = rules.inverse_root(as_backend(np.stack([matrix, np.diag([a, b])])), 4)
    np.testing.assert_allclose(as_numpy(stacked)[0], expected, rtol=1e-12, atol=1e-13)


def test_inverse_root_equals_the_svd_in_float64():
    """Symmetric PSD matrices Q diag(h) Qᵀ with condition numbers κ = 1 … 10¹²: eigh equals the reference's SVD
    (``compute_power_svd``'s formula, torch) to 1e-10 up to κ = 10⁶; beyond, no method can (a small eigenvalue is
    known to u‖A‖ only, u the unit roundoff), and both stay within 20·u·κ of the exact root Q diag(h^{-1/4}) Qᵀ."""
    generator = np.random.default_rng(0)
    unit_roundoff = np.finfo(np.float64).eps
    for size in (2, 5, 16, 64):
        for decades in (0, 3, 6, 9, 12):
            q, _ = np.linalg.qr(generator.standard_normal((size, size)))
            eigenvalues = np.logspace(-decades, 0, size)
            matrix = (q * eigenvalues) @ q.T
            matrix = (matrix + matrix.T) / 2
            exact = (q * eigenvalues ** -0.25) @ q.T
            u, s, vh = torch.linalg.svd(torch.tensor(matrix))
            by_svd = ((u * s.pow(-0.25).unsqueeze(-2)) @ vh).numpy()
            ours = rules.inverse_root(torch.tensor(matrix), 4).numpy()
            scale = np.abs(exact).max()
            if decades <= 6:
                assert np.abs(ours - by_svd).max() / scale <= 1e-10, (size, decades)
            for result in (ours, by_svd, rules.inverse_root(matrix, 4)):
                assert np.abs(result - exact).max() / scale <= 20 * unit_roundoff * 10.0**decades, (size, decades)


def test_inverse_root_refuses_bad_input():
    with pytest.raises(ValueError, match="power must be > 0"):
        rules.inverse_root(np.eye(2), 0)
    with pytest.raises(ValueError, match="square matrix"):
        rules.inverse_root(np.ones((2, 3)), 4)
    with pytest.raises(ValueError, match="square matrix"):
        rules.inverse_root(np.ones(3), 4)


def test_schur_newton_inverse_root_is_the_references_and_close_to_the_exact_root():
    """torch: pytorch-optimizer's compute_power_schur_newton (same random start); both backends within the
    iteration's tolerance of the exact root of A + h_max ε I."""
    from pytorch_optimizer.optimizer.utils.matrix import compute_power_schur_newton

    generator = np.random.default_rng(1)
    for size, power, ridge in ((1, 4, 1e-6), (2, 4, 1e-6), (6, 4, 1e-3), (16, 6, 1e-6), (40, 2, 1e-4)):
        g = generator.standard_normal((size, 2 * size))
        matrix = g @ g.T / size + 1e-3 * np.eye(size)
        torch.manual_seed(3)
        theirs = compute_power_schur_newton(torch.tensor(matrix), power, ridge_epsilon=ridge)
        torch.manual_seed(3)
        ours = rules.schur_newton_inverse_root(torch.tensor(matrix), power, ridge_epsilon=ridge)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        largest = np.linalg.eigvalsh(matrix)[-1]
        exact = rules.inverse_root(matrix, power, eps=largest * ridge) if size > 1 else (matrix + ridge * matrix) ** (
            -1 / power)
        for result in (ours.numpy(), rules.schur_newton_inverse_root(matrix, power, ridge_epsilon=ridge)):
            assert np.abs(result - exact).max() <= 1e-3 * np.abs(exact).max(), (size, power)
    with pytest.raises(ValueError, match="whole power"):
        rules.schur_newton_inverse_root(np.eye(2), 2.5)
    with pytest.raises(ValueError, match="one square matrix"):
        rules.schur_newton_inverse_root(np.ones((2, 3)), 4)


# ---- the class as a torch optimizer ------------------------------------------------------------------------------
def test_signature_and_defaults_are_the_references():
    ours = inspect.signature(optim.Shampoo.__init__).parameters
    theirs = inspect.signature(ScalableShampoo.__init__).parameters
    reference = [(name, p.default) for name, p in theirs.items() if p.kind is not p.VAR_KEYWORD]
    assert [(name, p.default) for name, p in ours.items() if p.kind is not p.KEYWORD_ONLY] == reference
    factory = inspect.signature(rules.shampoo).parameters
    assert [(name, p.default) for name, p in factory.items()] == reference[2:]  # without self, params


def test_state_dict_round_trip_continues_identically():
    options = {**BASE, "graft_type": rules.ShampooGraft.ADAM, "preconditioning_compute_steps": 3, "use_svd": True}
    straight = _network()
    optimizer = optim.Shampoo(_groups(straight, 0.01), **options)
    _train(straight, optimizer, steps=STEPS)

    first = _network()
    optimizer = optim.Shampoo(_groups(first, 0.01), **options)
    _train(first, optimizer, steps=STEPS // 2)
    saved_model, saved = copy.deepcopy(first.state_dict()), copy.deepcopy(optimizer.state_dict())
    names = {"momentum", "graft_momentum", "graft_statistics", "statistics", "pre_conditioners"}
    assert set(saved["state"][0]) == names
    assert [group["step"] for group in saved["param_groups"]] == [STEPS // 2] * 3

    resumed = _network(seed=5)
    resumed.load_state_dict(saved_model)
    optimizer = optim.Shampoo(_groups(resumed, 0.01), **options)
    optimizer.load_state_dict(saved)
    _train(resumed, optimizer, steps=STEPS - STEPS // 2, start=STEPS // 2)
    assert _max_difference(resumed, straight) == 0.0


def test_closure_maximize_and_missing_gradients():
    options = {**BASE, "maximize": True, "use_svd": True}
    ours, theirs = _network(), _network()
    mine, reference = optim.Shampoo(ours.parameters(), **options), ScalableShampoo(theirs.parameters(), **options)
    for step in range(10):
        losses = []
        for model, optimizer in ((ours, mine), (theirs, reference)):
            def closure(model=model, optimizer=optimizer, step=step):
                optimizer.zero_grad()
                loss = -_loss(model, step)
                loss.backward()
                model.out.bias.grad = None  # a parameter without a gradient: no state, no step
                return loss
            losses.append(optimizer.step(closure))
        assert losses[0].item() == pytest.approx(losses[1].item(), abs=TOLERANCE)
    assert _max_difference(ours, theirs) <= TOLERANCE
    assert ours.out.bias not in mine.state and torch.equal(ours.out.bias, _network().out.bias)


def test_bad_inputs_are_refused_with_reasons():
    params = list(_network().parameters())
    shampoo = optim.Shampoo(params[:2])  # the reference's defaults
    with pytest.raises(ValueError, match="graft_type"):
        shampoo.add_param_group({"params": params[2:], "graft_type": 9})
    assert len(shampoo.param_groups) == 1
    for bad, match in ((dict(lr=-1.0), "learning rate"), (dict(betas=(1.0, 0.9)), "beta1"),
                       (dict(betas=(0.9, 1.0)), "beta2"), (dict(betas=(0.9,)), "pair"),
                       (dict(weight_decay=-0.1), "weight_decay"), (dict(graft_type=6), "graft_type"),
                       (dict(graft_type=1.0), "graft_type"), (dict(pre_conditioner_type=3), "pre_conditioner_type"),
                       (dict(start_preconditioning_step=0), "start_preconditioning_step"),
                       (dict(preconditioning_compute_steps=0), "preconditioning_compute_steps"),
                       (dict(statistics_compute_steps=2.5), "statistics_compute_steps"),
                       (dict(inverse_exponent_override=-1), "inverse_exponent_override"),
                       (dict(diagonal_eps=-1.0), "epsilon"), (dict(matrix_eps=-1.0), "matrix_eps")):
        with pytest.raises(ValueError, match=match):
            optim.Shampoo(params, **{"use_svd": True, **bad})
    with pytest.raises(ValueError, match="fused=True"):
        optim.Shampoo(params, use_svd=True, fused=True)
    with pytest.raises(TypeError):
        optim.Shampoo(params, use_svd=True, foo=1)  # the reference ignores unknown keywords


def test_the_rule_is_pure():
    rule = rules.shampoo(**{**BASE, "graft_type": rules.ShampooGraft.RMSPROP, "use_svd": True})
    params = torch.randn(5, 6, dtype=torch.float64)
    state = rule.init(params)
    for _ in range(4):
        state = rule.update(params, torch.randn(5, 6, dtype=torch.float64), state)[1]
    frozen = copy.deepcopy((params, state))
    rule.update(params, torch.randn(5, 6, dtype=torch.float64), state)
    assert torch.equal(params, frozen[0])
    for name, value in frozen[1].items():
        if isinstance(value, tuple):
            assert all(torch.equal(a, b) for a, b in zip(state[name], value))
        elif isinstance(value, torch.Tensor):
            assert torch.equal(state[name], value), name

