"""Distillation as the anchors run it: where each loss term sends its gradient, the dearer-first order by counted
MACs, and what --distill-temperature and --distill-weight do to the loss."""
import pytest
import torch
from torch import nn

from resizable import count_macs, create_model
from resizable.training.cost import TrainingCost
from resizable.training.options import TrainOptions
from resizable.training.step import (EnsembleWeights, ensemble_member_losses, pass_order, soft_label_loss,
                                     soft_targets, train_step)
from resizable.training.teacher import frozen_copy, teacher_probs

FACTORS = (0.5, 0.75, 1.0)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = create_model("resnet20", widths=[4, 4, 8], factors=FACTORS, num_classes=10, in_chans=1).train()
    return model, torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))


def _grads(model, extra=()):
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, [p.grad.clone() if p.grad is not None else None for p in extra]


def test_the_ensemble_cross_entropy_trains_only_the_ensemble_weights(setup):
    model, images, labels = setup
    configs = [(0.5, 0.5, 0.5), (1.0, 1.0, 1.0), (0.75, 0.75, 0.75)]
    ensemble = EnsembleWeights(3)
    with torch.no_grad():
        ensemble.alpha.copy_(torch.tensor([0.4, -0.1, 0.2]))
    opt = torch.optim.SGD(list(model.parameters()) + list(ensemble.parameters()), lr=0.0)
    # w = 0: the step's loss is the members' CE plus the ensemble's CE
    train_step(model, images, labels, configs, opt, nn.CrossEntropyLoss(), distill="ensemble", distill_weight=0.0,
               ensemble=ensemble)
    got, (alpha_grad,) = _grads(model, [ensemble.alpha])

    model.zero_grad(set_to_none=True)
    zs = []
    for c in sorted(configs, key=lambda c: -sum(c)):
        with model.using(c):
            zs.append(model(images))
    sum(nn.functional.cross_entropy(z, labels) for z in zs).backward()  # the members' CE alone
    members_only, _ = _grads(model)
    assert got.keys() == members_only.keys()
    for k in got:  # nothing more: the ensemble's CE gave the network no gradient
        assert torch.allclose(got[k], members_only[k], rtol=1e-4, atol=1e-7), k
    # ...and it is all of alpha's gradient
    alpha = ensemble.alpha.detach().clone().requires_grad_(True)
    w = alpha.softmax(0)
    nn.functional.cross_entropy(sum(w[r] * z.detach() for r, z in enumerate(zs)), labels).backward()
    assert alpha_grad.abs().sum() > 0 and torch.allclose(alpha_grad, alpha.grad, rtol=1e-4, atol=1e-7)


def test_top_down_teaches_the_cheaper_configuration_and_leaves_the_dearer_one_alone():
    torch.manual_seed(1)
    big, small = torch.randn(5, 10, requires_grad=True), torch.randn(5, 10, requires_grad=True)
    labels = torch.randint(0, 10, (5,))
    ens = soft_targets(0.5 * big + 0.5 * small)
    ce = nn.CrossEntropyLoss()

    def grads(top_down):
        big.grad = small.grad = None
        sum(ensemble_member_losses([big, small], labels, ce, ens, 1.0, 1.0, top_down)).backward()
        return big.grad.clone(), small.grad.clone()

    big_td, small_td = grads(True)
    big_plain, small_plain = grads(False)
    scale = 2 / 3  # 2 / (k + 1): one KD term per member on average
    # the dearer one's gradient is its own CE and ensemble KD only (the top-down term's teacher is detached)
    big.grad = None
    (ce(big, labels) + scale * soft_label_loss(big, ens)).backward()
    assert torch.allclose(big_td, big.grad, atol=1e-6)
    # the cheaper one also learns from the dearer one's soft labels
    small.grad = None
    (ce(small, labels) + scale * (soft_label_loss(small, ens) + soft_label_loss(small, soft_targets(big)))).backward()
    assert torch.allclose(small_td, small.grad, atol=1e-6)
    assert not torch.allclose(small_td, small_plain, atol=1e-4)
    # dense: with three members the cheapest learns from both dearer ones
    mid = torch.randn(5, 10, requires_grad=True)
    losses = ensemble_member_losses([big, mid, small], labels, ce, ens, 1.0)
    expected = ce(small, labels) + 0.5 * (soft_label_loss(small, ens) + soft_label_loss(small, soft_targets(big))
                                          + soft_label_loss(small, soft_targets(mid)))
    assert torch.allclose(losses[2], expected)


def test_the_ensemble_ranks_by_counted_macs(setup):
    model, _, _ = setup
    cost = TrainingCost(model)
    configs = [(0.5, 1.0, 1.0), (1.0, 0.75, 0.5), (0.75, 0.5, 0.75)]
    macs = {c: count_macs(model, c, 28).total_macs for c in configs}
    order = pass_order(model, configs, "ensemble", cost.ranker((28, 28)))
    assert [macs[c] for c in order] == sorted(macs.values(), reverse=True)
    assert order != pass_order(model, configs, "ensemble")  # the sum of factors ranks these otherwise


def test_temperature_and_weight_change_the_loss_as_stated(setup):
    torch.manual_seed(2)
    z, zt = torch.randn(4, 10), torch.randn(4, 10)
    for t in (1.0, 2.0, 4.0):
        p = (zt / t).softmax(1)
        assert torch.allclose(soft_targets(zt, t), p)
        expected = -(p * (z / t).log_softmax(1)).sum(1).mean() * t * t
        assert torch.allclose(soft_label_loss(z, p, t), expected)
        # the T^2-scaled KL vanishes when the student's logits are the teacher's
        assert soft_label_loss(zt, p, t) == pytest.approx(float(-(p * p.log()).sum(1).mean() * t * t), abs=1e-5)
    model, images, labels = setup
    full, small = (1.0, 1.0, 1.0), (0.5, 0.5, 0.5)
    with torch.no_grad(), model.using(full):
        z_full = model(images)
    with torch.no_grad(), model.using(small):
        z_small = model(images)
    ce = nn.functional.cross_entropy(z_small, labels)
    for w, t in ((0.0, 1.0), (1.0, 1.0), (0.3, 3.0)):
        passes = []
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        train_step(model, images, labels, [small, full], opt, nn.CrossEntropyLoss(), distill="full",
                   distill_weight=w, temperature=t, losses=passes)
        taught = dict(passes)[small]
        kd = soft_label_loss(z_small, soft_targets(z_full, t), t)
        assert float(taught) == pytest.approx(float((1 - w) * ce + w * kd), rel=1e-4)
    # a frozen teacher's soft labels at the run's temperature
    teacher = frozen_copy(model)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        plain = teacher(images)  # eval mode: its BN running averages
    assert torch.allclose(teacher_probs(teacher, images, temperature=2.0), (plain / 2.0).softmax(1), atol=1e-6)


def test_distillation_options():
    cfg = TrainOptions()
    assert cfg.distill_temperature == 1.0 and cfg.distill_top_down  # today's behaviour for --distill full, --teacher
    assert not TrainOptions(distill="ensemble", distill_top_down=False).distill_top_down
    with pytest.raises(ValueError, match=r"--distill-temperature 0.0: expected a number > 0"):
        TrainOptions(distill_temperature=0.0)
