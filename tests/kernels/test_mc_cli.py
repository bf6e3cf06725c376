"""``spectdose kernel generate`` argument handling (no Monte Carlo run)."""

from kernels.mc.cli import DEFAULT_VOXEL_SIZES_MM, build_parser, default_histories, main


def test_parser_defaults_follow_the_data_contract():
    args = build_parser().parse_args(["Lu-177"])
    assert args.medium == ["tissue"]
    assert tuple(args.voxel_size_mm) == DEFAULT_VOXEL_SIZES_MM == (3.0, 3.9, 4.42, 4.7952, 4.8)
    assert args.electron_variant == "full" and args.photon_half_width == 20
    args = build_parser().parse_args(["Y-90", "--medium", "water", "tissue", "--voxel-size-mm", "6",
                                      "--histories", "4e5", "--seed", "3"])
    assert args.medium == ["water", "tissue"] and args.voxel_size_mm == [6.0] and args.histories == 4e5


def test_default_histories_scale_with_beta_energy():
    assert default_histories("Y-90", "electron") < default_histories("Lu-177", "electron")
    assert default_histories("Lu-177", "photon") == 10_000_000


def test_bad_arguments_exit_2_before_any_run(tmp_path, capsys):
    assert main(["Lu-177", "--histories", "5", "--out", str(tmp_path)]) == 2
    assert "--histories" in capsys.readouterr().err
    assert main(["Lu-177", "--voxel-size-mm", "-1", "--out", str(tmp_path)]) == 2
    assert main(["Xx-999", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_mc_modules_import_without_loading_the_engine():
    # ompmc is optional: importing the generation code must not import it (CI has no ompmc).
    import subprocess
    import sys

    code = ("import sys, kernels.mc.cli, kernels.mc.engine, kernels.mc.svalues, kernels.mc.pointkernel, "
            "kernels.mc.store, kernels.kernel_data, kernels.registry; print('ompmc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
