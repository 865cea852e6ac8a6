"""The training cost counter: count_macs of every pass that ran, times the images, forward plus backward (twice the
forward), teacher forwards and the extra pass of in-place distillation included."""
import pytest
import torch

from resizable import count_macs, create_model
from resizable.checkpoint import save_checkpoint
from resizable.sampling import ConfigSampler
from resizable.training.cost import BACKWARD_FACTOR, TrainingCost
from resizable.training.trainer import TrainOptions, TrainingRun

FACTORS = (0.5, 0.75, 1.0)
FULL = (1.0, 1.0, 1.0)


def cfg_of(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, factors=FACTORS, dataset="fashion-mnist",
                data_dir=data_dir, epochs=1, batch_size=32, lr=0.05, out_dir=str(out_dir), progress=False,
                max_steps_per_epoch=2, eval_calibrate_bn=0, eval_configs="1,1,1", bn_bank=False, channels_last=False,
                seed=4)
    base.update(kw)
    return TrainOptions(**base)


def _macs(model, config):
    report = count_macs(model, config, 28)
    return report.macs, report.interp_macs


def test_a_pass_costs_three_forwards_per_image_and_ranks_add_their_images():
    model = create_model("resnet20", widths=[4, 8, 8], factors=FACTORS, num_classes=10, in_chans=1)
    cost = TrainingCost(model, world_size=2)
    passes = [(0.5, 1.0, 0.75), FULL]
    cost.add_step(passes, torch.zeros(16, 1, 28, 28))  # 16 images on each of 2 ranks
    macs = sum(_macs(model, c)[0] for c in passes) * (1 + BACKWARD_FACTOR) * 32
    interp = sum(_macs(model, c)[1] for c in passes) * 3 * 32
    assert BACKWARD_FACTOR == 2 and cost.total == [macs, interp] and interp > 0
    record = cost.end_epoch()
    assert (record["macs"], record["total_macs"], record["interp_macs"]) == (macs, macs, interp)
    assert cost.end_epoch()["macs"] == 0 and cost.total[0] == macs  # the epoch restarts, the total goes on
    again = TrainingCost(model)
    again.load_state_dict(cost.state_dict(), step=7)
    assert again.total == cost.total and "counted_from_step" not in again.end_epoch()
    again.load_state_dict(None, step=7)  # a checkpoint from before costs were counted
    assert again.total == [0, 0] and again.end_epoch()["counted_from_step"] == 7


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*has no statistics bank")
def test_the_counted_cost_of_a_run_is_count_macs_times_images_and_passes(tiny_fmnist, tmp_path):
    # a frozen teacher of another width: its forwards are counted at its own cost, once per step, no backward
    torch.manual_seed(0)
    teacher = create_model("resnet20", widths=[8, 8, 16], factors=FACTORS, num_classes=10, in_chans=1)
    kwargs = {"widths": [8, 8, 16], "factors": FACTORS, "num_classes": 10, "in_chans": 1}
    save_checkpoint(tmp_path / "teacher.pt", teacher, "resnet20", kwargs)
    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name="t", teacher=str(tmp_path / "teacher.pt")))
    got = run.train_epoch(0)["cost"]
    sampler = ConfigSampler(FACTORS, 3, "fair", seed=4)
    trained = [c for t in range(2) for c in sampler.sample(t)]
    macs = sum(_macs(run.model, c)[0] for c in trained) * 3 * 32 + 2 * 32 * _macs(teacher, FULL)[0]
    interp = sum(_macs(run.model, c)[1] for c in trained) * 3 * 32 + 2 * 32 * _macs(teacher, FULL)[1]
    assert (got["macs"], got["interp_macs"], got["total_macs"]) == (macs, interp, macs)

    # in-place distillation under fair sampling: the full configuration's extra pass is counted too
    run = TrainingRun(cfg_of(tiny_fmnist, tmp_path, name="d", distill="full"))
    got = run.train_epoch(0)["cost"]
    passes = [c for t in range(2) for c in sampler.sample(t) + ([FULL] if FULL not in sampler.sample(t) else [])]
    assert len(passes) > len(trained)  # the seed draws no full configuration in these steps
    assert got["macs"] == sum(_macs(run.model, c)[0] for c in passes) * 3 * 32
