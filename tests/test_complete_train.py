"""Training the completion GAN: the run's files, validation metrics, resume, held-out faces, CLI and export.

Everything runs on real fitted faces (the astronaut and Grace Hopper photos and their mirror images) with a
tiny network at 64x64, so a whole run takes about a second.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import typer
from typer.testing import CliRunner

from uvaug.cli.train import EPILOG, EXPORT_EPILOG, export_command, train_command
from uvaug.complete.discriminators import DiscriminatorConfig
from uvaug.complete.export import load_checkpoint, load_generator_checkpoint
from uvaug.complete.network import GeneratorConfig
from uvaug.complete.onnx_runtime import SIZE_METADATA
from uvaug.complete.pairs import SelfOcclusionPairs, training_faces
from uvaug.complete.tensors import INPUT_NAME, from_network_output, known_mask, to_network_input
from uvaug.complete.train import (
    VALIDATION_SEED,
    TrainConfig,
    TrainError,
    hidden_and_whole_scores,
    holdout_names,
    is_fit_output,
    lr_factor,
    prepare_training_data,
    region_scores,
    resize_rgba,
    resolve_device,
    split_names,
    train,
)
from uvaug.fit.run import fit_inputs
from uvaug.io import discover_inputs, write_image_atomic

TINY = TrainConfig(
    generator=GeneratorConfig(widths=(8, 8, 16)),
    discriminator=DiscriminatorConfig(width=8, max_width=16),
    uv_size=64,
    batch_size=2,
    epochs=2,
    workers=0,
    threads=1,  # tiny batches: a second thread only adds synchronisation on busy cores
    adversarial_warmup_epochs=1,  # epoch 1 reconstruction only, epoch 2 with the discriminators
)
TRAIN = ["astronaut.png", "astronaut_mirror.png", "hopper.png"]
VAL = ["hopper_mirror.png"]
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut, hopper) -> Path:
    folder = tmp_path_factory.mktemp("train") / "photos"
    for name, image in (("astronaut", astronaut), ("hopper", hopper)):
        write_image_atomic(folder / f"{name}.png", image)
        write_image_atomic(folder / f"{name}_mirror.png", np.ascontiguousarray(image[:, ::-1]))
    return folder


@pytest.fixture(scope="module")
def fit_dir(photos: Path) -> Path:
    out = photos.parent / "fit"
    fit_inputs(discover_inputs(photos), out)
    assert [f.input for f in training_faces(out)] == sorted(TRAIN + VAL)
    return out


@pytest.fixture(scope="module")
def run(fit_dir: Path) -> tuple[Path, dict]:
    run_dir = fit_dir.parent / "run"
    return run_dir, train(TINY, fit_dir, run_dir, TRAIN, VAL)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def losses(path: Path) -> list[dict[str, str]]:
    """steps.csv without its wall times."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_csv(path)]


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_a_run_writes_metrics_checkpoints_and_a_model(run):
    run_dir, result = run
    rows = read_csv(run_dir / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        assert 5.0 < float(row["val_psnr"]) < 60.0
        assert 0.0 < float(row["val_ssim"]) <= 1.0
        assert int(row["val_maps"]) == 1 and float(row["samples_per_s"]) > 0
        assert math.isfinite(float(row["loss_g"])) and math.isfinite(float(row["reconstruction"]))
    # Warm-up: no discriminator terms in epoch 1, both in epoch 2.
    assert rows[0]["gan"] == "0" and rows[0]["loss_d"] == "" and rows[0]["adversarial_global"] == ""
    assert rows[1]["gan"] == "1" and math.isfinite(float(rows[1]["loss_d"]))
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert [row["epoch"] for row in summary["epochs"]] == [1, 2]
    assert summary["best"]["val_psnr"] == max(row["val_psnr"] for row in summary["epochs"])
    assert summary["best"]["epoch"] == result["best_epoch"]
    # Baselines: the mean fill always; the symmetric one exactly when its module imports.
    try:
        import uvaug.complete.symmetric  # noqa: F401

        expected = {"mean_fill", "symmetric"}
    except ImportError:
        expected = {"mean_fill"}
    assert set(summary["baselines"]) == expected
    assert all(math.isfinite(summary["baselines"][name]["psnr"]) for name in expected)
    assert float(rows[0]["mean_fill_psnr"]) == summary["baselines"]["mean_fill"]["psnr"]
    # Per-step losses: 3 training faces in batches of 2 -> 2 steps per epoch.
    steps = read_csv(run_dir / "steps.csv")
    assert [(s["epoch"], s["step"]) for s in steps] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    for name in ("last.pt", "best.pt", "model.onnx", "config.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "val.txt").read_text().split() == VAL
    assert (run_dir / "train.txt").read_text().split() == TRAIN
    config = json.loads((run_dir / "config.json").read_text())
    assert TrainConfig.from_dict(config["config"]) == TINY
    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 2 and set(last["optimizers"]) == {"generator", "discriminators"}
    assert [row["epoch"] for row in last["history"]] == [1, 2]


def test_the_onnx_model_completes_a_validation_map_and_keeps_known_texels(run, fit_dir):
    run_dir, _ = run
    session = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map[SIZE_METADATA] == "64"
    source, _ = SelfOcclusionPairs(training_faces(fit_dir, names=VAL), seed=VALIDATION_SEED)[0]
    rgba = resize_rgba(source, 64)[None]
    x = to_network_input(rgba)
    (output,) = session.run(None, {INPUT_NAME: x})
    assert output.shape == (1, 3, 64, 64) and np.isfinite(output).all()
    completed = from_network_output(output, rgba)
    known = known_mask(rgba)
    assert known.sum() > 500 and (~known).sum() > 500
    np.testing.assert_array_equal(completed[known][:, :3], rgba[known][:, :3])
    # The model is best.pt's generator.
    generator = load_generator_checkpoint(run_dir / "best.pt")
    with torch.no_grad():
        expected = generator(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(output, expected, atol=1e-4)


def test_resume_continues_to_a_later_epoch_and_keeps_the_history(run, fit_dir, tmp_path):
    run_dir, _ = run
    resumed = copy_run(run_dir, tmp_path)
    result = train(dataclasses.replace(TINY, epochs=3), fit_dir, resumed, TRAIN, VAL, resume=True)
    assert result["resumed_from"] == 2
    rows, before = read_csv(resumed / "metrics.csv"), read_csv(run_dir / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert rows[:2] == before
    assert len(read_csv(resumed / "steps.csv")) == 6
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 3
    # Networks, optimisers and data order all continue: the same steps as a run that was never interrupted.
    straight = train(dataclasses.replace(TINY, epochs=3), fit_dir, tmp_path / "straight", TRAIN, VAL)
    assert straight["resumed_from"] is None
    assert losses(resumed / "steps.csv") == losses(tmp_path / "straight" / "steps.csv")


def test_lr_decay_anneals_the_last_epochs_along_a_half_cosine():
    config = dataclasses.replace(TINY, epochs=4, lr_decay_epochs=2)
    factors = [lr_factor(config, epoch, step, 10) for epoch in range(1, 5) for step in range(1, 11)]
    assert factors[:21] == [1.0] * 21  # epochs 1-2 and the first step of epoch 3 at the full rate
    assert all(a > b for a, b in itertools.pairwise(factors[20:]))  # then strictly falling
    assert lr_factor(config, 3, 6, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # a quarter in
    assert lr_factor(config, 4, 1, 10) == pytest.approx(0.5)  # half way
    assert 0.0 < factors[-1] < 0.01  # the last step almost at zero
    assert {lr_factor(TINY, e, s, 10) for e in (1, 2) for s in range(1, 11)} == {1.0}  # no decay: constant
    with pytest.raises(ValueError, match="lr_decay_epochs 3 exceeds epochs 2"):
        dataclasses.replace(TINY, lr_decay_epochs=3)


def test_a_resumed_run_can_anneal_its_learning_rate(run, fit_dir, tmp_path):
    run_dir, _ = run
    resumed = copy_run(run_dir, tmp_path)
    config = dataclasses.replace(TINY, epochs=3, lr_decay_epochs=1)
    train(config, fit_dir, resumed, TRAIN, VAL, resume=True)
    lrs = [float(row["lr"]) for row in read_csv(resumed / "steps.csv")]
    # Epochs 1-2 (kept from the first run) and epoch 3's first step at 2e-4, its second step half way down.
    assert lrs == pytest.approx([2e-4] * 5 + [1e-4])
    last = load_checkpoint(resumed / "last.pt")
    for name in ("generator", "discriminators"):
        assert last["optimizers"][name]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert TrainConfig.from_dict(json.loads((resumed / "config.json").read_text())["config"]) == config


def test_resume_refuses_another_architecture_and_a_run_folder_is_not_overwritten(run, fit_dir, tmp_path):
    run_dir, _ = run
    resumed = copy_run(run_dir, tmp_path)
    wider = dataclasses.replace(TINY, epochs=3, generator=GeneratorConfig(widths=(8, 16, 16)))
    with pytest.raises(TrainError, match=r"cannot resume .*widths"):
        train(wider, fit_dir, resumed, TRAIN, VAL, resume=True)
    with pytest.raises(TrainError, match=r"cannot resume .*validation faces differ"):
        train(dataclasses.replace(TINY, epochs=3), fit_dir, resumed, VAL, TRAIN, resume=True)
    with pytest.raises(TrainError, match="already holds a training run"):
        train(TINY, fit_dir, resumed, TRAIN, VAL)
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 2  # nothing was touched


def test_training_and_validation_faces_never_overlap(fit_dir, tmp_path):
    with pytest.raises(TrainError, match="both the training and the validation set"):
        train(TINY, fit_dir, tmp_path / "run", ["astronaut.png", "hopper.png"], ["hopper.png"])
    assert not (tmp_path / "run").exists()
    lists = tmp_path / "train.txt", tmp_path / "val.txt"
    lists[0].write_text("# training\nastronaut.png\nhopper.png\n\n")
    lists[1].write_text("hopper.png\n")
    with pytest.raises(TrainError, match="both"):
        split_names(fit_dir, *lists)
    # Without a validation list: every 20th face, or the last one of fewer than 20; never also trained on.
    split = split_names(fit_dir, train_list=lists[0])
    assert split.val == ["hopper_mirror.png"] and split.train == ["astronaut.png", "hopper.png"]
    assert "every 20th" in split.note
    split = split_names(fit_dir)
    assert split.val == ["hopper_mirror.png"] and split.train == TRAIN
    names = [f"{i:03d}.jpg" for i in range(45)]
    assert holdout_names(names[::-1]) == ["019.jpg", "039.jpg"]


def test_the_same_seed_gives_the_same_first_epoch(run, fit_dir, tmp_path):
    run_dir, _ = run
    one_epoch = dataclasses.replace(TINY, epochs=1)
    train(one_epoch, fit_dir, tmp_path / "same", TRAIN, VAL)
    train(dataclasses.replace(one_epoch, seed=1), fit_dir, tmp_path / "other", TRAIN, VAL)
    first = [row for row in losses(run_dir / "steps.csv") if row["epoch"] == "1"]
    assert losses(tmp_path / "same" / "steps.csv") == first
    assert losses(tmp_path / "other" / "steps.csv") != first
    assert (
        read_csv(tmp_path / "same" / "metrics.csv")[0]["val_psnr"]
        == read_csv(run_dir / "metrics.csv")[0]["val_psnr"]
    )


def test_region_scores_look_only_at_hidden_texels_the_photo_showed():
    rng = np.random.default_rng(0)
    target = np.zeros((64, 64, 4), np.uint8)
    target[8:56, 8:56, :3] = rng.integers(0, 256, (48, 48, 3))
    target[8:56, 8:56, 3] = 255
    source = target.copy()
    source[8:56, 32:56] = 0
    perfect = target[..., :3].copy()
    perfect[:8] = 255  # texels the photo never showed do not count
    psnr, ssim = region_scores(perfect, source, target)
    assert psnr == pytest.approx(100.0) and ssim == pytest.approx(1.0)
    off = target[..., :3].astype(int)
    off[8:56, 32:56] += 10
    psnr, ssim = region_scores(np.clip(off, 0, 255).astype(np.uint8), source, target)
    assert 25.0 < psnr < 30.5 and ssim < 1.0
    assert region_scores(target[..., :3], target, target) is None  # nothing hidden
    # Over the whole map the known half is exact, so the same error weighs half as much (+3 dB).
    hidden, whole = hidden_and_whole_scores(np.clip(off, 0, 255).astype(np.uint8), source, target)
    assert hidden == (psnr, ssim)
    assert whole[0] == pytest.approx(psnr + 10 * np.log10(2), abs=0.05) and ssim < whole[1] < 1.0
    assert hidden_and_whole_scores(target[..., :3], target, target)[0] is None


def test_resize_keeps_known_texels_known_and_their_colour():
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[64:192, 64:192] = (200, 120, 80, 255)
    small = resize_rgba(rgba, 64)
    known = small[..., 3] == 255
    assert known[20:44, 20:44].all() and not known[:14].any()
    assert (small[known][:, :3] == (200, 120, 80)).all()  # no black bleeding in at the rim
    assert (small[~known] == 0).all()


def test_data_preparation_uses_a_fit_output_as_it_is(fit_dir, photos):
    assert is_fit_output(fit_dir) and not is_fit_output(photos)
    assert prepare_training_data(fit_dir, fit_dir.parent / "unused") == fit_dir
    assert not (fit_dir.parent / "unused").exists()
    with pytest.raises(TrainError, match="not found"):
        prepare_training_data(photos.parent / "missing", fit_dir.parent / "unused")


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainError, match="device cuda"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False)
    app.command("train", epilog=EPILOG)(train_command)
    app.command("export", epilog=EXPORT_EPILOG)(export_command)

    def invoke(*args: str):
        return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)

    return invoke


def test_cli_trains_from_photos_resumes_and_exports(cli, photos, tmp_path):
    run_dir = tmp_path / "run"
    options = ["--widths", "8,8,16", "--d-width", "8", "--size", "64", "--batch-size", "2", "--threads", "1"]
    result = cli("train", photos, "-o", run_dir, "--epochs", "1", "--workers", "1", *options)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir)  # stdout: the run folder only
    assert "every 20th" in result.stderr and "val PSNR" in result.stderr and "uvaug train" in result.stderr
    assert is_fit_output(run_dir / "fit") and (run_dir / "model.onnx").is_file()
    # --resume: the run's own settings and faces, one more epoch, which here also anneals the learning rate.
    result = cli(
        "train", run_dir / "fit", "-o", run_dir, "--resume", "--epochs", "2", "--workers", "0",
        "--lr-decay-epochs", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr
    assert [row["epoch"] for row in read_csv(run_dir / "metrics.csv")] == ["1", "2"]
    assert json.loads((run_dir / "config.json").read_text())["config"]["lr_decay_epochs"] == 1
    assert float(read_csv(run_dir / "steps.csv")[-1]["lr"]) < 2e-4
    result = cli("train", run_dir / "fit", "-o", run_dir, "--resume", "--widths", "8,16,16")
    assert result.exit_code == 2 and "cannot resume" in result.stderr

    model = tmp_path / "exported.onnx"
    result = cli("export", run_dir / "best.pt", model, "--size", "32")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(model)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [8, 32, 32]


def test_cli_errors_are_one_line(cli, fit_dir, tmp_path):
    (tmp_path / "val.txt").write_text("hopper.png\n")
    (tmp_path / "train.txt").write_text("hopper.png\nastronaut.png\n")
    (tmp_path / "not.pt").write_bytes(b"not a checkpoint")
    cases = [
        (
            [
                "train",
                fit_dir,
                "-o",
                tmp_path / "r",
                "--train-list",
                tmp_path / "train.txt",
                "--val-list",
                tmp_path / "val.txt",
            ],
            "both the training and the validation set",
        ),
        (["train", fit_dir, "-o", tmp_path / "r", "--widths", "8,x"], "--widths"),
        (["train", fit_dir, "-o", tmp_path / "r", "--width", "tiny", "--size", "60"], "multiple of 8"),
        (["export", tmp_path / "not.pt", tmp_path / "m.onnx"], "not a uvaug completion checkpoint"),
        (["export", tmp_path / "missing.pt", tmp_path / "m.onnx"], "checkpoint not found"),
    ]
    for args, message in cases:
        result = cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert message in lines[0], lines[0]
        assert result.stdout == ""
    assert not (tmp_path / "r").exists() and not (tmp_path / "m.onnx").exists()


def test_help_has_examples(cli):
    result = cli("train", "--help")
    assert result.exit_code == 0 and "Examples" in result.stdout and "--resume" in result.stdout
    assert "uvaug export run/best.pt" in cli("export", "--help").stdout
