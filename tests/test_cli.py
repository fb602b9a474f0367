"""Command-line entry points: a train -> evaluate round trip on tiny data, and one-line user errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import moo_compress.cli as cli
from moo_compress.cli import evaluate, train
from moo_compress.models import create_model
from tests.conftest import make_image_folder


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> Path:
    """A 10-class ImageFolder tree standing in for CIFAR-10."""
    return make_image_folder(tmp_path / "cifar10-tiny", classes=10, per_split={"train": 4, "test": 2})


def test_train_then_evaluate(tiny_cifar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r20.pt"
    assert train.main(["--arch", "resnet20", "--data-root", str(tiny_cifar), "--epochs", "1", "--batch-size", "16",
                       "--out", str(out), "--no-progress", "--device", "cpu", "--precision", "fp32"]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["arch"] == "resnet20" and ckpt["dataset"] == "cifar10" and ckpt["num_classes"] == 10
    assert ckpt["recipe"]["epochs"] == 1 and len(ckpt["mean"]) == 3 and 0 <= ckpt["test_accuracy"] <= 1
    assert not out.with_name(out.name + ".state.pt").exists()  # removed once training finished
    assert evaluate.main(["--arch", "resnet20", "--weights", str(out), "--data-root", str(tiny_cifar)]) == 0
    printed = capsys.readouterr().out
    match = re.search(r"20 images: top-1 ([\d.]+)%", printed)
    assert match and float(match.group(1)) == pytest.approx(100 * ckpt["test_accuracy"], abs=0.006)
    assert cli.main(["evaluate", "--arch", "resnet20", "--weights", str(out), "--data-root", str(tiny_cifar),
                     "--limit", "10"]) == 0
    assert "10 images" in capsys.readouterr().out


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--arch", "vgg91"], r"unknown architecture 'vgg91'; did you mean 'vgg19'"),
        (["--arch", "resnet20", "--dataset", "cifar11"], r"unknown dataset 'cifar11'"),
        (["--arch", "resnet20", "--weights", "/nonexistent/w.pt"], r"--weights /nonexistent/w.pt does not exist"),
        (["--arch", "resnet20", "--bogus"], r"unrecognized arguments: --bogus"),
        (["--arch", "resnet20", "--precision", "fp8"], r"invalid choice: 'fp8'"),
    ],
)
def test_user_errors_are_one_line_with_status_2(argv: list[str], expected: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # argparse errors exit; ours return 2
        raise SystemExit(evaluate.main(argv))
    assert info.value.code == 2
    assert re.search(expected, _one_line_error(capsys))


def test_bad_checkpoint_and_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_text("nope")
    assert evaluate.main(["--arch", "resnet20", "--weights", str(junk), "--data-root", str(tmp_path)]) == 2
    assert "cannot read checkpoint" in _one_line_error(capsys)
    good = tmp_path / "r20.pt"
    torch.save(create_model("resnet20").state_dict(), good)
    assert evaluate.main(["--arch", "resnet20", "--weights", str(good), "--data-root", str(tmp_path / "no")]) == 2
    assert "does not exist" in _one_line_error(capsys)


def test_console_script_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    assert "evaluate" in capsys.readouterr().out
    assert cli.main(["evalute"]) == 2
    assert "did you mean 'evaluate'" in _one_line_error(capsys)
    assert cli.main(["models", "vgg1*"]) == 0
    assert "vgg19" in capsys.readouterr().out
