from pipeline.segment import benchmark


def test_the_benchmark_reports_a_failing_segmentation_and_returns_1(tmp_path, capsys):
    # a CT that is not there: the child exits 2 with spectdose's one-line error, which is shown
    argv = ["--ct", str(tmp_path / "missing.nii.gz"), "--atlas", str(tmp_path), "--repeat", "1"]
    assert benchmark.main(argv) == 1
    out = capsys.readouterr().out
    assert "spectdose segment failed (exit 2)" in out and "missing.nii.gz" in out


def test_the_benchmark_refuses_to_time_the_rules_when_no_atlas_is_found(tmp_path, capsys):
    assert benchmark.main(["--ct", str(tmp_path / "ct.nii.gz"), "--atlas", "none"]) == 1
    assert "no atlas found" in capsys.readouterr().out

