"""zero.cli: the step scripts' common options and where their files go."""
from pathlib import Path

from zero.cli import checkpoint_path, out_dir, step_checkpoint, step_parser


def test_a_quick_run_writes_beside_a_real_runs_files_never_over_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = step_parser("a step", training=True)
    script = "steps/step07_vae/1_vae.py"
    real, quick = parser.parse_args([]), parser.parse_args(["--quick"])
    assert checkpoint_path(real, script) == Path("checkpoints/step07_vae_1_vae.npz")
    assert checkpoint_path(quick, script) == Path("checkpoints/quick/step07_vae_1_vae.npz")
    assert out_dir(real, script) == Path("figures/step07_vae/1_vae")
    assert out_dir(quick, script) == Path("figures/quick/step07_vae/1_vae")
    assert (tmp_path / "figures/quick/step07_vae/1_vae").is_dir() and (tmp_path / "checkpoints/quick").is_dir()
    chosen = parser.parse_args(["--quick", "--checkpoint", "mine.npz", "--out", "pictures"])
    assert checkpoint_path(chosen, script) == Path("mine.npz") and out_dir(chosen, script) == Path("pictures")
    # a run on other data keeps its own checkpoint (step 11.3: one model per digit left out)
    anomaly = "steps/step11_appendix_autoencoder/3_anomaly.py"
    assert checkpoint_path(real, anomaly, variant="_without_8") == Path(
        "checkpoints/step11_appendix_autoencoder_3_anomaly_without_8.npz")
    # another step's checkpoint is read from the same world: a quick run reads that step's quick run
    assert step_checkpoint("step07_vae/1_vae", real) == Path("checkpoints/step07_vae_1_vae.npz")
    assert step_checkpoint("step07_vae/1_vae", quick) == Path("checkpoints/quick/step07_vae_1_vae.npz")
