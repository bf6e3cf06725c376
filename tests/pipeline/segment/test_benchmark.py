from pipeline.segment import benchmark


def test_the_benchmark_reports_a_failing_segmentation_and_returns_1(tmp_path, capsys):
    # a CT that is not there: the child exits 2 with spectdose's one-line error, which is shown
    assert benchmark.main(["--ct", str(tmp_path / "missing.nii.gz"), "--repeat", "1"]) == 1
    out = capsys.readouterr().out
    assert "spectdose segment failed (exit 2)" in out and "missing.nii.gz" in out


def test_median_of_odd_and_even_counts():
    assert benchmark._median([3.0, 1.0, 2.0]) == 2.0
    assert benchmark._median([4.0, 1.0, 2.0, 3.0]) == 2.5
