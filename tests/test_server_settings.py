"""Settings come from flags, then ``VOXWIRE_*`` variables, then defaults; bad values are refused."""

from __future__ import annotations

import argparse

import pytest
import torch

from voxwire.engine.build import (
    GPU_MAX_BATCH_SENTENCES,
    GPU_MAX_BATCH_WINDOWS,
    check_workers,
    default_dtype,
    default_first_window,
    default_max_batch,
)
from voxwire.engine.scheduler import FIRST_WINDOW_FRAMES, GPU_FIRST_WINDOW_FRAMES
from voxwire.server.settings import add_arguments, build_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ = {"VOXWIRE_PORT": "9000", "VOXWIRE_MAX_BATCH": "4"}
    settings = build_settings(parse("--port", "9100"), environ)
    assert settings.port == 9100
    assert settings.max_batch == 4
    assert build_settings(parse(), {}).max_batch == 0


@pytest.mark.parametrize("tokens", ["", ",", " , ,"])
def test_tokens_set_but_naming_none_refuse_to_start(tokens: str) -> None:
    with pytest.raises(ValueError, match="names no token"):
        build_settings(parse(), {"VOXWIRE_TOKENS": tokens})
    with pytest.raises(ValueError, match="names no token"):
        build_settings(parse("--tokens", tokens), {})
    assert build_settings(parse(), {}).tokens == ()  # unset: no auth, said in the log at start


def test_switches_read_true_and_false() -> None:
    assert build_settings(parse("--allow-raw-phonemes", "yes"), {}).allow_raw_phonemes is True
    assert build_settings(parse(), {"VOXWIRE_ALLOW_RAW_PHONEMES": "false"}).allow_raw_phonemes is False
    assert build_settings(parse(), {}).allow_raw_phonemes is False
    with pytest.raises(ValueError, match="true or false"):
        build_settings(parse("--allow-raw-phonemes", "maybe"), {})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--max-batch", "-1"), "max_batch"),
        (("--max-batch", "two"), "max_batch"),
        (("--device", "tpu"), "device"),
        (("--dtype", "fp8"), "dtype"),
        (("--idle-timeout-s", "0"), "idle_timeout_s"),
        (("--max-sentence-ids", "4"), "max_sentence_ids"),
        (("--admission-headroom", "0"), "admission_headroom"),
        (("--admission-headroom", "1.5"), "admission_headroom"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_settings(parse(*argv), {})


def test_batches_default_to_one_item_on_a_cpu_and_more_on_a_gpu() -> None:
    assert default_max_batch(torch.device("cpu")) == (1, 1)
    assert default_max_batch(torch.device("cuda", 0)) == (GPU_MAX_BATCH_WINDOWS, GPU_MAX_BATCH_SENTENCES)
    assert GPU_MAX_BATCH_WINDOWS > 1 and GPU_MAX_BATCH_SENTENCES > 1


def test_the_first_window_defaults_to_16_frames_on_a_cpu_and_32_on_a_gpu() -> None:
    assert default_first_window(torch.device("cpu")) == FIRST_WINDOW_FRAMES == 16
    assert default_first_window(torch.device("cuda", 0)) == GPU_FIRST_WINDOW_FRAMES == 32


def test_precision_defaults_to_tf32_on_cuda_and_float32_on_a_cpu() -> None:
    assert build_settings(parse(), {}).engine_config().dtype == "auto"
    assert default_dtype(torch.device("cpu")) == "float32"
    assert default_dtype(torch.device("cuda", 0)) == "tf32"


def test_admission_headroom_reaches_the_engine() -> None:
    assert build_settings(parse(), {}).engine_config().admission_headroom == 0.8
    environ = {"VOXWIRE_ADMISSION_HEADROOM": "0.9"}
    assert build_settings(parse(), environ).engine_config().admission_headroom == 0.9


def test_cuda_graphs_are_on_by_default_and_can_be_turned_off() -> None:
    assert build_settings(parse(), {}).engine_config().cuda_graphs
    assert not build_settings(parse("--cuda-graphs", "false"), {}).engine_config().cuda_graphs
    assert not build_settings(parse(), {"VOXWIRE_CUDA_GRAPHS": "0"}).engine_config().cuda_graphs


def test_workers_never_share_cuda_graphs() -> None:
    cuda = torch.device("cuda", 0)
    with pytest.raises(ValueError, match="one worker per GPU"):
        check_workers(cuda, 2, cuda_graphs=True)
    check_workers(cuda, 1, cuda_graphs=True)
    check_workers(cuda, 2, cuda_graphs=False)
    check_workers(torch.device("cpu"), 2, cuda_graphs=True)  # ignored on a CPU
